"""A CPU run's own measured peak through the whole pipeline: a run that beats it, and a CPU that emulates
bfloat16."""

import json

import pytest
from synth import op, step, write

from profiler.mfu import cpupeak
from profiler.mfu.cpupeak import cpu_measurement
from profiler.pipeline import analyze_path
from profiler.settings import Options
from tests.unit.test_cpu_peak import FakeGemm


@pytest.fixture(autouse=True)
def no_reference(monkeypatch):
    """The fake GEMMs' rates are made up: no instruction-set reference of this machine holds them."""
    monkeypatch.setattr(cpupeak, "clock_mhz", lambda: None)


def cpu_run_trace(path, peak_run: float, flops_per_step: float, mm_us=4000, step_us=10_000, dtype="float32",
                  **meta):
    """Our run's CPU trace (metadata with a peak measured on this machine) with one 256 x 512 x 1024 aten::mm
    (268 MFLOP) of mm_us and an aten::add per step of step_us: by default 4 ms of matmul at 67 GFLOP/s."""
    mm = {"Input Dims": [[256, 512], [512, 1024]],
          "Input type": ["float", "float"] if dtype == "float32" else ["c10::BFloat16", "c10::BFloat16"]}
    events = []
    for n in range(1, 4):
        t0 = n * step_us
        events += [step(n, t0, step_us), op("aten::mm", t0 + 100, mm_us, **mm),
                   op("aten::add", t0 + 200 + mm_us, (step_us - mm_us) // 2)]
    meta = {"flops_per_step": flops_per_step, "dtype": dtype, "threads": 3, "tokens_per_step": 1,
            "vocabulary": "profile_run",
            "peak": {"device": cpupeak.cpu_name(), "dtype": dtype, "peak_flops": 2 * peak_run,
                     "peak_flops_run": peak_run, "source": "measured", "fastest": "bfloat16"}, **meta}
    return write(path, events, device=None, mfu_analyzer=meta)


def test_a_run_whose_matmuls_beat_the_measured_peak_gets_a_full_report(tmp_path):
    """The peak measured under load (30 GFLOP/s) is below what the run did. F_model (275 MFLOP) credits more
    than F_counted (268 MFLOP; within FLOPS_GAP, so no contradiction): P_run is raised to F_model over the matmul
    time, 68.75 GFLOP/s, so matmul_efficiency is 0, not negative, and MFU, the ledger and the diagnosis are all
    there."""
    cpu_measurement(3, None, FakeGemm({"float32": 30e9, "bfloat16": 60e9}))
    report = analyze_path(cpu_run_trace(tmp_path / "run.pt.trace.json", 30e9, 275e6), Options())
    assert report["device"]["peak_flops_run"] == pytest.approx(275e6 / 4e-3)
    assert report["device"]["peak_flops"] == pytest.approx(2 * 275e6 / 4e-3)
    ledger_points = {e["cause"]: e["points"] for e in report["ledger"]}
    assert ledger_points["matmul_efficiency"] == pytest.approx(0, abs=1e-9)
    assert min(ledger_points.values()) >= 0 and report["bottlenecks"]
    assert report["mfu"]["analytic"] == pytest.approx(275e6 / (0.010 * 2 * 68.75e9))
    assert cpu_measurement(3, None, FakeGemm({}))["rates"]["float32"] == pytest.approx(68.75e9)  # the cache learnt


def test_precision_points_to_float32_where_the_cpu_emulates_bfloat16(tmp_path):
    """An AVX2-only CPU: bfloat16 GEMMs at 1.5 GFLOP/s, float32 at 40. A bfloat16 run spends 200 ms of a 250 ms
    step in its matmul; our run measured a micro-step at 12 ms in float32 and 210 ms in bfloat16: precision is
    the principal cause, and its fix is float32."""
    trace = cpu_run_trace(tmp_path / "bf16.pt.trace.json", 1.5e9, 256 * 512 * 1024 * 2, mm_us=200_000,
                          step_us=250_000, dtype="bfloat16", step_ms_by_dtype={"float32": 12.0, "bfloat16": 210.0})
    meta = json.loads(trace.read_text())
    meta["mfu_analyzer"]["peak"].update(peak_flops=40e9, fastest="float32")
    trace.write_text(json.dumps(meta))
    report = analyze_path(trace, Options())
    first = report["bottlenecks"][0]
    assert first["cause"] == "precision" and first["fix_config"] == {"dtype": "float32"}
    assert "train in float32" in first["fix"] and "210.00 ms in bfloat16 and 12.00 ms in float32" in first["evidence"]
    # the 198 ms that float32 saves, capped by the matmul time beyond the FLOPs at P (200 - 6.7 ms)
    assert first["ms"] == pytest.approx(200 - 1000 * 256 * 512 * 1024 * 2 / 40e9, rel=1e-6)
