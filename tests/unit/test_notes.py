"""The warnings as data: every note a stage can give has its sentence, every sentence is given by some stage, and
a sentence quotes its note's numbers as they are."""

import re

import pytest
from conftest import ROOT, warnings_are_their_numbers

from profiler.facts import Note
from profiler.report.notes import NOTES, WHY_NO_MFU, note_data, note_text

GIVEN = re.compile(r"Note\(\"(\w+)\"")


def test_every_note_given_has_its_sentence_and_every_sentence_is_given():
    given = {m.group(1) for p in (ROOT / "profiler").rglob("*.py") for m in GIVEN.finditer(p.read_text())}
    worded = set(NOTES) | set(WHY_NO_MFU)
    assert given - worded == set()  # a note with no sentence would fail the report
    assert worded - given == {"time_ledger"} - given  # no sentence that nothing says (time_ledger wraps a why)


def test_a_note_is_worded_from_its_numbers_and_names_its_ranks():
    note = Note("steps_spread", {"min_ms": 1.0, "max_ms": 3.0, "cv_pct": 47.14, "first": "other", "first_low": 0.0,
                                 "first_high": 70.0, "second": "small_batch", "second_low": 10.0, "second_high": 30.0})
    text = note_text(note)
    assert text.startswith("the analysed steps ranged 1.00-3.00 ms (coefficient of variation 47%")
    assert "other ranging 0.0-70.0 points over the steps and small_batch 10.0-30.0" in text
    assert note_text(note.of_ranks("0-3, 5")) == "rank 0-3, 5: " + text
    assert note_text(note.of_ranks("all")) == "all ranks: " + text
    assert note_data(note.of_ranks("all")) == {"code": "steps_spread", "numbers": note.numbers, "ranks": "all"}


def test_a_time_ledger_note_words_why_from_the_same_numbers():
    note = Note("time_ledger", {"why": "mostly_uncounted", "uncounted_pct": 96.4, "step_ms": 0.95})
    assert note_text(note) == (
        "most of the matmul time (96%) ran in ops whose FLOPs the trace does not let us count: F_counted would make "
        "their time look like matmul_efficiency: the ledger is in points of step time (100 = the 0.95 ms step), each "
        "what-if a step time and a speed-up; matmul_efficiency needs FLOPs and a peak and is left out")


def test_the_check_catches_a_number_the_note_does_not_hold():
    report = {"warnings": ["the FLOPs per step need 2.00 ms at P, more than the 1.50 ms the matmuls took"],
              "warnings_data": [{"code": "flops_beyond_matmul_time", "numbers": {"ideal_ms": 2.0, "matmul_ms": 1.0}}]}
    with pytest.raises(AssertionError):
        warnings_are_their_numbers(report)
    report["warnings_data"][0]["numbers"]["matmul_ms"] = 1.5
    warnings_are_their_numbers(report)


def test_equal_notes_share_a_key_and_different_numbers_do_not():
    assert Note("negative_durations", {"events": 3}).key() == Note("negative_durations", {"events": 3}).key()
    assert Note("negative_durations", {"events": 3}).key() != Note("negative_durations", {"events": 4}).key()
