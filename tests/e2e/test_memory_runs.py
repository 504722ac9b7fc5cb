"""Our CPU runs predict their memory at a larger batch, and runs at that batch measure it from their traces' own
memory events (the CPU's count starts with the profiler, so a run's peak is its model states, which it counts,
plus the transient its trace records)."""

import json

import pytest
from conftest import TINY, analyze, run_script

from profiler.settings import MEMORY_USABLE

ARGS = [a for a in TINY if not a.startswith("--batch_size")]


@pytest.fixture(scope="module")
def runs(tiny_run, tmp_path_factory):
    """Reports of TINY runs at batch 4 (the suite's tiny run), 8, 10 and 16, by batch."""
    root = tmp_path_factory.mktemp("memory")
    out = {4: (tiny_run[0], json.loads((tiny_run[0] / "report.json").read_text()))}
    for batch in (8, 10, 16):
        result = run_script(*ARGS, f"--batch_size={batch}", f"--out={root / str(batch)}")
        assert result.returncode == 0, result.stderr[-2000:]
        out[batch] = (root / str(batch), json.loads((root / str(batch) / "report.json").read_text()))
    return out


def measured_peak(report: dict) -> float:
    m = report["memory"]
    return m["parts"]["model_states"] + m["transient_peak_bytes"]


def test_a_run_predicts_the_peak_at_four_times_its_batch_within_ten_percent(runs):
    memory = runs[4][1]["memory"]
    assert memory["source"] == "cpu" and memory["capacity_source"] in ("machine memory", "cgroup limit")
    predicted = memory["parts"]["predicted_peak_bytes_by_batch"]["16"]
    assert measured_peak(runs[16][1]) == pytest.approx(predicted, rel=0.10)
    # and at its own batch, the micro-step measured before training against the steps the trace recorded
    assert measured_peak(runs[4][1]) == pytest.approx(memory["parts"]["predicted_peak_bytes_by_batch"]["4"], rel=0.10)


def test_under_a_capacity_the_fix_proposes_the_largest_batch_that_fits(runs, tmp_path):
    folder, report = runs[4]
    peaks = report["memory"]["parts"]["predicted_peak_bytes_by_batch"]
    at_10 = (peaks["8"] + peaks["12"]) / 2  # linear in the batch
    capacity = (peaks["8"] / MEMORY_USABLE + at_10) / 2  # batch 8 fits its planned share, batch 10 overflows it
    assert peaks["8"] < capacity * MEMORY_USABLE < peaks["12"] and at_10 > capacity
    status, out, err = analyze("analyze", folder, "--json", tmp_path / "capped.json",
                               f"--memory-capacity={capacity:.0f}")
    assert status == 0, err
    capped = json.loads((tmp_path / "capped.json").read_text())
    small_batch = next(b for b in capped["bottlenecks"] if b["cause"] == "small_batch")
    assert small_batch["fix_config"] == {"batch_size": 8} and small_batch["facts"]["fit_factor"] == 2
    assert "(batch 8: " in small_batch["fix"] and "MB predicted)" in small_batch["fix"]
    # the runs at that batch and at 1.25x it, measured from their traces
    assert measured_peak(runs[8][1]) < capacity < measured_peak(runs[10][1])
