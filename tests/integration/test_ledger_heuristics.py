"""The ledger's heuristics on small synthetic traces run through the whole pipeline: the short-gap option, op
categories, each cause's range over the steps, the profiler's own cost, and a step with no matmul."""

import numpy as np
import pytest
from conftest import note
from synth import kernel, launch, op, step, write

from profiler.pipeline import analyze_path
from profiler.settings import Options
from profiler.trace import classify


@pytest.mark.parametrize("short_gap_us, small_batch_ms", [(1000.0, 0.3), (5000.0, 2.3)])
def test_the_short_gap_length_is_an_option(tmp_path, short_gap_us, small_batch_ms):
    """Device idle 300 µs and 2,000 µs between two kernels: under the limit it is per-op overhead."""
    mm = {"Input Dims": [[64, 64], [64, 64]], "Input type": ["c10::BFloat16"] * 2}
    events = [step(1, 0, 3000), op("aten::mm", 0, 10, **mm), launch(1, 5, 1), kernel("nvjet_a", 0, 400, 1),
              op("aten::mm", 20, 10, **mm), launch(21, 5, 2), kernel("nvjet_b", 700, 300, 2)]
    report = analyze_path(write(tmp_path / "t.json", events), Options(short_gap_us=short_gap_us))
    ledger = {e["cause"]: e["ms"] for e in report["ledger"]}
    assert ledger["small_batch"] == pytest.approx(small_batch_ms, abs=1e-6)
    assert ledger["other"] == pytest.approx(2.3 - small_batch_ms, abs=1e-6)


def test_op_categories_from_names_and_what_an_op_passes_down(tmp_path):
    names = ("aten::addmm", "aten::copy_", "nccl:all_reduce", "aten::view", "aten::gelu",
             "enumerate(DataLoader)#_SingleProcessDataLoaderIter.__next__")
    assert [classify.op_category(n) for n in names] == \
        [classify.MATMUL, classify.MEMORY, classify.COMMUNICATION, classify.HOST_OVERHEAD, None, classify.DATA_LOADING]
    # a copy inside a matmul op is the matmul's time; a copy on its own is memory
    events = [step(1, 0, 1000), op("aten::mm", 0, 400), op("aten::copy_", 100, 200), op("aten::copy_", 500, 100)]
    report = analyze_path(write(tmp_path / "t.json", events, device=None), Options(peak_flops=1e12))
    assert report["breakdown"]["matmul"]["ms"] == 0.4 and report["breakdown"]["memory"]["ms"] == 0.1


def test_each_cause_has_its_range_over_the_steps_and_a_noisy_run_is_flagged(tmp_path):
    """Two 1 ms steps and one of 3 ms whose extra time is idle: `other` ranges from 0 to 2/3 of a step, and the
    steps vary enough (CV 47%) that other and matmul_efficiency could trade places."""
    mm = {"Input Dims": [[256, 256], [256, 256]], "Input type": ["float", "float"]}
    events = []
    for k, (start, length) in enumerate(((0, 1000), (1000, 1000), (2000, 3000))):
        events += [step(k + 1, start, length), op("aten::mm", start, 900, **mm)]
    report = analyze_path(write(tmp_path / "t.json", events, device=None), Options(peak_flops=1e12))
    times = report["step_time_ms"]
    assert times["cv"] == pytest.approx(np.std([1, 1, 3]) / np.mean([1, 1, 3]))
    entries = {e["cause"]: e for e in report["ledger"]}
    assert entries["other"]["interval"] == pytest.approx([0, 100 * 2.1 / 3])
    for e in entries.values():
        assert e["interval"][0] - 1e-9 <= e["points"] <= e["interval"][1] + 1e-9  # a weighted mean of the steps
    spread = note(report, "steps_spread")
    assert (spread["min_ms"], spread["max_ms"]) == pytest.approx((1, 3)) and spread["first"] == "matmul_efficiency"


def test_the_profilers_own_cost_comes_out_of_small_batch_and_the_step(tmp_path):
    """Two recorded ops per step at 50 µs of recording each (run metadata): 0.1 ms/step leaves small_batch and
    the step time; MFU rises by the step's ratio and the ledger still adds up to 100 - MFU. A cost larger than
    small_batch and other hold takes only what they hold."""
    mm = {"Input Dims": [[64, 64], [64, 64]], "Input type": ["c10::BFloat16"] * 2}
    events = [step(1, 0, 3000), op("aten::mm", 0, 10, **mm), launch(1, 5, 1), kernel("nvjet_a", 0, 400, 1),
              op("aten::mm", 20, 10, **mm), launch(21, 5, 2), kernel("nvjet_b", 700, 300, 2)]
    plain = analyze_path(write(tmp_path / "a.json", events), Options())
    report = analyze_path(write(tmp_path / "b.json", events, mfu_analyzer={"recording_cost_us_per_op": 50.0}),
                          Options())
    assert plain["profiler_cost"] is None
    assert report["profiler_cost"] == {"us_per_op": 50.0, "ops_per_step": 2.0, "ms_per_step": pytest.approx(0.1)}
    before, after = ({e["cause"]: e["ms"] for e in r["ledger"]} for r in (plain, report))
    assert after["small_batch"] == pytest.approx(before["small_batch"] - 0.1)
    assert {c: ms for c, ms in after.items() if c != "small_batch"} == pytest.approx(
        {c: ms for c, ms in before.items() if c != "small_batch"})
    step_ms = plain["step_time_ms"]["mean"]
    assert report["mfu"]["counted"] == pytest.approx(plain["mfu"]["counted"] * step_ms / (step_ms - 0.1))
    assert sum(e["points"] for e in report["ledger"]) == pytest.approx(100 - 100 * report["mfu"]["counted"])
    assert note(report, "profiler_cost") == {"ms_per_step": pytest.approx(0.1), "ops_per_step": 2.0, "us_per_op": 50.0}
    small_batch = next(b for b in report["bottlenecks"] if b["cause"] == "small_batch")
    assert "less the profiler's own recording cost, 0.10 ms/step, taken out" in small_batch["evidence"]
    huge = analyze_path(write(tmp_path / "c.json", events, mfu_analyzer={"recording_cost_us_per_op": 1e6}), Options())
    assert huge["profiler_cost"]["ms_per_step"] == pytest.approx(before["small_batch"] + before["other"])
    assert {e["cause"]: e["ms"] for e in huge["ledger"] if e["cause"] in ("small_batch", "other")} == pytest.approx(
        {"small_batch": 0.0, "other": 0.0})


def test_flops_for_a_step_that_ran_no_matmul_are_named_not_divided_by(tmp_path):
    """A profiler cycle cut short by a stop can hold a step with no matmul at all: the model's FLOPs cannot fit
    it, and the report says so instead of dividing by its zero matmul time; the time ledger stands in."""
    report = analyze_path(write(tmp_path / "t.json", [step(8, 0, 350), op("aten::relu", 10, 20)]),
                          Options(flops_per_step=3e7))
    assert report["mfu"]["analytic"] is None and report["ledger_unit"] == "step_time"
    points = {e["cause"]: e["points"] for e in report["ledger"]}
    # a 330 us gap (under 1 ms) and one op alone, charged a near-empty op's cost: all of it is small_batch
    assert points["small_batch"] == pytest.approx(100) and sum(points.values()) == pytest.approx(100)
    why = note(report, "time_ledger")
    assert why["why"] == "implausible_flops" and why["ratio"] is None and why["span_ms"] == 0.0
