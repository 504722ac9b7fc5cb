"""The FLOP account and what it decides, on small hand-made GPU traces: recomputation told apart by its two
signatures, fp8 GEMMs read from their names, the counts standing in for F_model, and an F the counts contradict.

Every GEMM below is [64, 128] x [128, 256]: 2 · 64 · 128 · 256 = 4,194,304 FLOPs, one kernel of 100 µs each.
"""

import pytest
from conftest import invariants_hold
from synth import kernel, launch, op, step, write

from profiler.pipeline import analyze_path
from profiler.settings import Options

GEMM = 2 * 64 * 128 * 256
ADDMM = {"Input Dims": [[256], [64, 128], [128, 256]], "Input type": ["c10::BFloat16"] * 3}
MM = {"Input Dims": [[64, 128], [128, 256]], "Input type": ["c10::BFloat16"] * 2}
BF16_GEMM = "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64"


def gemm(name, ts, correlation, shapes, kernel_name=BF16_GEMM):
    """An op launching one 100 µs GEMM kernel, 200 µs after its launch."""
    return [op(name, ts, 10, **shapes), launch(ts + 2, 5, correlation), kernel(kernel_name, ts + 200, 100, correlation)]


def node(name, ts, dur):
    return op(f"autograd::engine::evaluate_function: {name}", ts, dur)


def training_step(reentrant: bool | None):
    """One step of 2 ms: a forward linear, then its backward (two mm); with checkpointing the linear runs again
    in the backward: non-reentrant, inside the first backward node; reentrant, inside CheckpointFunctionBackward,
    whose own backward nodes follow."""
    events = [step(1, 0, 2000), op("aten::linear", 10, 30), *gemm("aten::addmm", 15, 1, ADDMM)]
    backward = [*gemm("aten::mm", 700, 3, MM), *gemm("aten::mm", 900, 4, MM)]
    if reentrant is None:
        return events + [node("AddmmBackward0", 690, 400), op("AddmmBackward0", 695, 390), *backward]
    rerun = [op("aten::linear", 500, 30), *gemm("aten::addmm", 505, 2, ADDMM)]
    if reentrant:
        return events + [node("CheckpointFunctionBackward", 490, 700), op("CheckpointFunctionBackward", 495, 690),
                         *rerun, node("AddmmBackward0", 690, 400), op("AddmmBackward0", 695, 390), *backward]
    return events + [node("AddmmBackward0", 490, 700), op("AddmmBackward0", 495, 690), *rerun, *backward]


@pytest.mark.parametrize("reentrant", [False, True])
def test_recomputation_by_either_signature(tmp_path, reentrant):
    report = analyze_path(write(tmp_path / "t.json", training_step(reentrant)), Options())
    flops = report["mfu"]["flops_per_step"]
    assert (flops["forward"], flops["backward"], flops["recomputed"]) == (GEMM, 2 * GEMM, GEMM)
    # no F given: three times the forward stands in, so the re-run forward is no model FLOP
    assert flops["analytic"] == 3 * GEMM and report["mfu"]["analytic_from"] == "3 × the forward's counted FLOPs"
    assert report["mfu"]["hfu"] == pytest.approx(report["mfu"]["analytic"] * 4 / 3)
    entry = next(e for e in report["ledger"] if e["cause"] == "recomputation")
    assert entry["ms"] == pytest.approx(0.1)  # the re-run GEMM's kernel, out of matmul_efficiency
    invariants_hold(report)


def test_without_checkpointing_there_is_no_recomputation(tmp_path):
    report = analyze_path(write(tmp_path / "t.json", training_step(None)), Options())
    assert report["mfu"]["flops_per_step"]["recomputed"] == 0
    assert "recomputation" not in [e["cause"] for e in report["ledger"]]
    assert report["mfu"]["flops_per_step"]["analytic"] == report["mfu"]["flops_per_step"]["counted"] == 3 * GEMM


def test_an_f_model_the_counts_contradict_is_not_the_headline(tmp_path):
    """F 5x every FLOP that ran (a sequence length taken from max_position_embeddings, say): the counts stand
    in, and a warning says which figure is trusted and why."""
    path = write(tmp_path / "t.json", training_step(None))
    report = analyze_path(path, Options(flops_per_step=5 * 3 * GEMM))
    assert report["mfu"]["flops_per_step"]["analytic"] == 3 * GEMM
    warning = next(w for w in report["warnings_data"] if w["code"] == "model_flops_contradicted")
    assert warning["numbers"]["ratio"] == pytest.approx(5.0)
    assert report["mfu"]["analytic"] <= report["mfu"]["hfu"] + 1e-12
    within = analyze_path(path, Options(flops_per_step=1.04 * 3 * GEMM))  # within the gap: the given F stands
    assert within["mfu"]["flops_per_step"]["analytic"] == pytest.approx(1.04 * 3 * GEMM)


FP8_KERNEL = "sm90_xmma_gemm_e4m3e4m3_bf16f32_f32_tn_n_tilesize128x128x128_warpgroupsize1x1x1_execute_segment_k_off"


def test_fp8_gemms_are_read_from_their_names(tmp_path):
    """No recorded shapes or types: the GEMM kernels' names say e4m3, so the run's precision is float8 and P_run
    the H100's fp8 rate (P stays the 16-bit peak: MFU's convention, stated)."""
    events = [step(1, 0, 2000)]
    for i in range(3):
        events += [op("aten::_scaled_mm", 10 + 300 * i, 10), launch(12 + 300 * i, 5, i + 1),
                   kernel(FP8_KERNEL, 200 + 300 * i, 200, i + 1)]
    report = analyze_path(write(tmp_path / "t.json", events), Options())
    device = report["device"]
    assert device["dtype"] == "float8"
    assert (device["peak_flops"], device["peak_flops_run"]) == (989e12, 1979e12)
    assert any("float8" in c and "16-bit peak" in c for c in report["conventions"])
