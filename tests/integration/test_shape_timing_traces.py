"""Precision timed at a trace's own shapes, through the whole pipeline: where it was recorded here, and where
not."""

import pytest

from profiler.mfu import inputs
from profiler.mfu.cpupeak import this_machine
from profiler.mfu.shapetime import ShapeTiming
from profiler.pipeline import analyze_path
from profiler.settings import Options
from tests.integration.test_cpu_peak_runs import cpu_run_trace


def timed(fast: float) -> ShapeTiming:
    """A fake measurement: the trace's 4 ms/step of mm in float32, and `fast` ms in bfloat16."""
    return ShapeTiming(run_dtype="float32", us_by_dtype={"float32": 4000.0, "bfloat16": 1000 * fast},
                       counted_us=4000.0, flops=268e6, isolated_us={"float32": 3500.0,
                                                                                        "bfloat16": 900 * fast},
                       shapes=1)


def recorded(tmp_path, machine: str):
    """Our API's CPU trace (no micro-step measurement) recorded on `machine`: 4 ms of mm (268 MFLOP) in a 10 ms
    step, the peaks 100 and 200 GFLOP/s: F/P = 1.34 ms, F/P_run - F/P = 1.34 ms would be the table's precision,
    and the matmul time beyond F/P, 2.66 ms, caps what a measurement can give it."""
    trace = cpu_run_trace(tmp_path / "run.pt.trace.json", 100e9, 268e6, machine=machine, vocabulary="config",
                          config={"dtype": "float32", "batch_size": 8})
    return trace


@pytest.mark.parametrize("fast_ms, points", [(2.0, 20.0), (6.0, 0.0)])
def test_precision_is_what_the_shapes_timed_here_save(tmp_path, monkeypatch, fast_ms, points):
    """bfloat16 at half the time saves 2 of the 10 ms step (20 points); slower than float32, it saves nothing,
    and matmul_efficiency's evidence says why precision took none of the matmul time."""
    monkeypatch.setattr(inputs, "timed_shapes", lambda *args: timed(fast_ms))
    report = analyze_path(recorded(tmp_path, this_machine()), Options())
    ledger = {e["cause"]: e["points"] for e in report["ledger"]}
    assert ledger["precision"] == pytest.approx(points)
    said = {b["cause"]: b for b in report["bottlenecks"]}
    if points:
        assert "bfloat16 saves 50% of it, which sets this cause's points" in said["precision"]["evidence"]
        assert said["precision"]["fix_config"] == {"dtype": "bfloat16"}
    else:
        assert "precision" not in said
        assert ("precision takes none of it: timed on this machine at the trace's own 1 matmul and attention shapes"
                in said["matmul_efficiency"]["evidence"])
        assert "no precision is faster than float32 at these shapes" in said["matmul_efficiency"]["evidence"]


def test_a_trace_from_another_machine_is_not_timed_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "timed_shapes", lambda *args: pytest.fail("timed a trace from elsewhere"))
    report = analyze_path(recorded(tmp_path, "another-host|Some CPU"), Options())
    precision = next(b for b in report["bottlenecks"] if b["cause"] == "precision")
    assert "not measured at the run's shapes" in precision["evidence"]
    assert precision["points"] == pytest.approx(100 * (268e6 / 100e9 - 268e6 / 200e9) / 0.010)
