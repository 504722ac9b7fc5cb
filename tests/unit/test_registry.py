"""The registry of causes: every cause the ledger can charge has its entry, and its facts are a type that the rule,
the evidence sentence and the JSON agree on."""

import re
import typing
from pathlib import Path

import pytest
from conftest import facts_are_their_type, facts_types

from profiler.diagnosis.causes import CATEGORIES_OF, CAUSES, evidence_sentence, what
from profiler.mfu.ledger import CAUSES as LEDGER_CAUSES
from profiler.mfu.ledger import Cause
from profiler.trace.classify import CATEGORIES


def test_every_cause_of_the_ledger_has_one_entry_with_its_words_and_categories():
    assert set(CAUSES) == set(LEDGER_CAUSES) and Cause.USEFUL not in CAUSES
    for cause, entry in CAUSES.items():
        assert entry.what and what(cause) == entry.what
        assert entry.categories and set(entry.categories) <= set(CATEGORIES), cause
        assert CATEGORIES_OF[cause] == entry.categories
    assert what("useful") == "useful" and CATEGORIES_OF["useful"] == ("matmul",)


def test_each_rule_and_its_sentence_share_one_facts_type():
    for cause, entry in CAUSES.items():
        types = facts_types(cause)
        assert all(typing.is_typeddict(t) for t in types), cause
        sentence = typing.get_type_hints(entry.evidence)["f"]
        assert (typing.get_args(sentence) or (sentence,)) == types, cause


def test_facts_outside_their_type_fail_the_check():
    facts = {"ms": 2.0, "share_pct": 4.0, "lost_kernels_per_step": 3.0, "lost_graphs_per_step": 0.0}
    facts_are_their_type({"cause": "unrecorded", "facts": facts})
    facts_are_their_type({"cause": "unrecorded", "facts": {**facts, "rank": 1}})  # a job names its rank
    with pytest.raises(AssertionError):
        facts_are_their_type({"cause": "unrecorded", "facts": {**facts, "lost_kernel_per_step": 3.0}})  # a typo
    with pytest.raises(AssertionError):
        facts_are_their_type({"cause": "unrecorded", "facts": {"ms": 2.0, "share_pct": 4.0}})  # a key missing
    assert evidence_sentence("unrecorded", facts) == (
        "device work the trace did not record 2.00 ms/step (4.0% of the step): 3.0 kernel launches per step have no "
        "device event; the stretches where that work ran are counted here, not as idle")


def test_precision_facts_are_one_of_its_two_forms():
    kernels = {"fp32_matmul_ms": 5.0, "fp32_kernels": [], "fp32_speed_pct": 50.0, "fp32_lost_pct": 50.0}
    facts_are_their_type({"cause": "precision", "facts": kernels})
    with pytest.raises(AssertionError):  # half of one form and half of the other
        facts_are_their_type({"cause": "precision", "facts": {**kernels, "dtype": "float32"}})


def test_the_front_door_names_every_cause():
    root = Path(__file__).resolve().parents[2]
    for page in ("README.md", "docs/index.md", "docs/DESIGN.md"):
        text = (root / page).read_text()
        assert [c for c in CAUSES if not re.search(rf"\b{c}\b", text)] == [], page
