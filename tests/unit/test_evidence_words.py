"""The evidence is worded from its facts alone: every number a sentence quotes is a fact (conftest's check), and
the check itself fails on a number that is not one."""

import pytest
from conftest import evidence_is_its_facts

from profiler.diagnosis.causes import evidence_sentence


def test_a_sentence_quotes_its_facts_and_the_check_catches_a_number_that_is_none():
    facts = {"kind": "cuda", "ms": 20.0, "share_pct": 20.0, "dataloaders": ["_SingleProcessDataLoaderIter"],
             "num_workers": 0, "pin_memory": False}
    text = evidence_sentence("io", facts)
    assert text == ("the device idles in data loading 20.00 ms/step (20.0% of the step); DataLoader: single-process "
                    "(num_workers=0); the run used num_workers=0, pin_memory=False")
    evidence_is_its_facts({"evidence": text, "facts": facts})
    with pytest.raises(AssertionError):
        evidence_is_its_facts({"evidence": text.replace("20.00 ms", "21.00 ms"), "facts": facts})


def test_a_job_names_the_rank_and_the_ranks_the_others_wait_for():
    facts = {"ms": 7.0, "share_pct": 7.0, "collectives": [{"name": "nccl:all_reduce", "ms": 7.0}], "rank": 3,
             "waited_for": [{"rank": 1, "excess_ms": 12.5, "category": "data_loading"}]}
    text = evidence_sentence("communication", facts)
    assert text == ("rank 3: collectives not overlapped by compute 7.00 ms/step (7.0% of the step); nccl:all_reduce "
                    "7.00 ms; the others wait for rank 1 (+12.50 ms busy, mostly data_loading)")
    evidence_is_its_facts({"evidence": text, "facts": facts})


def test_kernel_names_are_shortened_in_the_sentence_and_kept_whole_in_the_facts():
    name = "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>(int, float)"
    facts = {"ms": 1.0, "share_pct": 1.0, "one_offs": [{"name": name, "ms": 1.0}]}
    text = evidence_sentence("warmup", facts)
    short = "at::native::vectorized_elementwise_kernel<4, at::native::FillFuncto..."  # 70 characters
    assert f": {short} 1.00 ms (their own" in text and facts["one_offs"][0]["name"] == name
    evidence_is_its_facts({"evidence": text, "facts": facts})
