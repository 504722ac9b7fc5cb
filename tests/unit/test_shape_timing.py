"""Precision timed at the trace's own shapes where the trace was recorded here (mfu/shapetime.py), and a fix's
change in the recording program's own words (mfu/vocabulary.py)."""

import json

import pytest

from profiler.mfu import inputs
from profiler.mfu.cpupeak import this_machine
from profiler.mfu.shapetime import ShapeTiming, time_shapes
from profiler.mfu.vocabulary import in_their_words, settings
from profiler.pipeline import analyze_path
from profiler.settings import Options
from profiler.trace.metadata import RunMetadata
from tests.unit.test_cpu_peak import cpu_run_trace

MM = ("aten::mm", json.dumps([[256, 512], [512, 1024]]), json.dumps(["float", "float"]), json.dumps(["", ""]))


def test_each_shape_is_replayed_in_each_precision_and_weighed_by_the_traces_own_time():
    """Two steps of 3 calls of a 256 x 512 x 1024 mm (268 MFLOP each), 9 ms of them in the trace."""
    timing = time_shapes({MM: 6}, {MM: 18_000.0}, 2, "float32", "cpu")
    assert timing is not None and timing.shapes == 1
    assert timing.flops == pytest.approx(3 * 2 * 256 * 512 * 1024)
    assert timing.replayed_us == timing.counted_us == pytest.approx(9000)
    assert timing.us_by_dtype["float32"] == pytest.approx(9000)  # the run's dtype: the trace's own time
    assert set(timing.us_by_dtype) == {"float32", "bfloat16"} and timing.isolated_us["float32"] > 0


def test_a_shape_that_cannot_be_replayed_is_left_out():
    odd = ("aten::mm", json.dumps([[256, 512], [3, 1024]]), "[]", "[]")  # does not multiply
    conv = ("aten::convolution", json.dumps([[1, 3, 8, 8], [4, 3, 3, 3]]), "[]", "[]")
    assert time_shapes({odd: 1, conv: 1}, {odd: 10.0, conv: 10.0}, 1, "float32", "cpu") is None


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


def test_a_change_is_given_in_the_programs_own_keys_and_only_those():
    ours = {"batch_size": 32, "dtype": "bfloat16", "num_workers": 4, "optimizer_impl": "fused", "compile": True}
    nanogpt = RunMetadata(vocabulary="config", config={"batch_size": 8, "dtype": "float32", "compile": False})
    assert in_their_words(ours, nanogpt) == {"batch_size": 32, "dtype": "bfloat16", "compile": True}
    assert in_their_words({"compile": "yes"}, nanogpt) is None  # a value of another type than the user's
    hf = RunMetadata(vocabulary="hf",
                     config={"per_device_train_batch_size": 8, "bf16": False, "optim": "adamw_torch"})
    assert in_their_words(ours, hf) == {"per_device_train_batch_size": 32, "bf16": True, "dataloader_num_workers": 4,
                                        "optim": "adamw_torch_fused", "torch_compile": True}
    assert settings(hf) == {"batch_size": 8, "optimizer_impl": "foreach"}
    lightning = RunMetadata(vocabulary="lightning", config={"precision": "32-true", "accumulate_grad_batches": 1})
    assert in_their_words(ours, lightning) == {"precision": "bf16-mixed"}
    assert settings(lightning) == {"dtype": "float32", "gradient_accumulation_steps": 1}
    assert in_their_words(ours, RunMetadata(tokens_per_step=512)) is None  # the API without a config: fixes stay code
