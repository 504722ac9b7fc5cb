"""The analyzer on real traces from other programs (../shared/traces, issue 9): what a reader of each would say.

Independent figure for each: the device busy share over the whole trace, computed straight from the JSON
(../shared/traces/README.md).
"""

import pytest
from conftest import SHARED_TRACES, analyze, invariants_hold, note, shared_trace

from profiler.pipeline import analyze_path
from profiler.settings import Options

BUSY = {"mi210_gpu_only": 89.36, "b200_vllm_moe_eager": 13.73, "h100_timesformer_infer": 99.03,
        "kineto2021_resnet50_autograd": 18.68}


def report_of(name: str) -> dict:
    shared_trace(name)  # skips when ../shared is absent
    return analyze_path(SHARED_TRACES / name, Options())


@pytest.mark.parametrize("name", BUSY)
def test_device_busy_share_matches_the_independent_figure(name):
    report = report_of(name)
    assert 100 * report["device_utilization"]["busy_fraction"] == pytest.approx(BUSY[name], abs=0.01)
    invariants_hold(report)


def test_mi210_device_only_trace_is_read_and_says_what_it_cannot_compute():
    report = report_of("mi210_gpu_only")
    code, out, err = analyze("analyze", SHARED_TRACES / "mi210_gpu_only")  # it crashed with an IndexError
    assert code == 0 and err == "" and "AMD Instinct MI210 (rocm)" in out
    assert report["device"]["peak_flops"] == 181e12
    # MIOpen's igemm kernels are matmuls by name; nothing can say more without host ops
    assert report["breakdown"]["matmul"]["ms"] == pytest.approx(1.62, abs=0.01)
    assert note(report, "no_host_ops") == {} and report["ledger_unit"] == "step_time"
    # a device-only trace: the gaps between short kernels are most likely launch overhead, with the caveat said
    first = report["bottlenecks"][0]
    assert first["cause"] == "small_batch" and "the host was not recorded" in first["evidence"]


def test_b200_vllm_decode_step_is_host_bound_with_its_all_reduce_counted_as_communication():
    report = report_of("b200_vllm_moe_eager")
    ms = {c: b["ms"] for c, b in report["breakdown"].items()}
    assert ms["communication"] == pytest.approx(2.14, abs=0.01)  # 73 multimem all-reduces, 2.12 ms of kernels
    assert ms["matmul"] > 6.5  # includes the MoE bmm_E4m3 / E2m1 kernels (5.2 ms)
    assert report["matmul_without_flops_ms"] == pytest.approx(5.95, abs=0.01)
    assert "vllm::moe_forward" in [op["name"] for op in note(report, "uncounted_matmul")["largest"]]
    first = report["bottlenecks"][0]
    assert first["cause"] == "small_batch" and first["points"] > 80  # the B200 idles 86% of the step
    assert "batch more requests" in first["fix"] and "block_size" not in first["fix"]


def test_timesformer_preprocessing_is_data_loading_named_in_the_evidence():
    report = report_of("h100_timesformer_infer")
    assert report["breakdown"]["data_loading"]["ms"] == pytest.approx(217.47, abs=0.01)
    assert report["breakdown"]["idle"]["ms"] < 1
    io = report["bottlenecks"][0]
    assert io["cause"] == "io" and io["points"] == pytest.approx(56.85, abs=0.01)
    assert "video_classification.py(129): preprocess" in io["evidence"]
    non_fused = next(b for b in report["bottlenecks"] if b["cause"] == "non_fused")
    assert "unfused attention" in non_fused["evidence"]  # softmax and bmm, no SDPA


def test_kineto_2021_resnet50_iterations_flops_and_missing_device():
    report = report_of("kineto2021_resnet50_autograd")
    assert report["source"]["steps"] == [1, 2, 3, 4, 5, 6]  # six SGD steps, no ProfilerStep
    # ResNet-50 at batch 32: 4.09 GMAC forward per 224² image, ×2 FLOPs, ×3 for forward and backward
    assert report["mfu"]["flops_per_step"]["counted"] == pytest.approx(32 * 3 * 2 * 4.09e9, rel=0.01)
    assert report["per_step"][0]["ms"] > 20 * max(s["ms"] for s in report["per_step"][1:])  # warm-up
    assert note(report, "first_step_warmup")["ratio"] > 20
    assert note(report, "no_device_named") == {} and note(report, "no_input_shapes") is None


def test_dlrm_8_ranks_job_figures_are_over_the_ranks():
    report = report_of("dlrm_v100_8rank")
    ranks = report["per_rank"]
    assert len(ranks) == 8 and ranks[0]["device_utilization"]["busy_fraction"] == pytest.approx(0.5066, abs=1e-4)
    job_busy = report["device_utilization"]["busy_fraction"]
    assert job_busy == pytest.approx(sum(r["device_utilization"]["busy_fraction"] for r in ranks) / 8)
    all_to_all = next(o for o in report["top_ops"] if o["name"] == "nccl:all_to_all")
    per_rank = [next(o["ms"] for o in r["top_ops"] if o["name"] == "nccl:all_to_all") for r in ranks]
    assert all_to_all["ms"] == pytest.approx(sum(per_rank) / 8)
    assert report["job_aggregation"]["device_utilization"] == "mean over ranks"
    comm = next(b for b in report["bottlenecks"] if b["cause"] == "communication")
    assert comm["points"] == pytest.approx(100 * report["breakdown"]["communication"]["fraction"], abs=0.01)
    # fbgemm's embedding kernels are not GEMMs
    assert report["breakdown"]["matmul"]["ms"] < 0.25
    invariants_hold(report)


# --- the shared traces from the wild: what a careful reader names (../shared/traces/README.md) ---


@pytest.mark.parametrize("name, cause, said", [
    ("t4_resnet50_fp32_train_step", "precision", "volta_sgemm_64x64_nt"),
    ("2x4090_tp_llama_fwd_2ranks", "communication", "most likely a one-off"),
    ("4090_neuralpde_fp64_sparse_fwd", "other", "26 cudaStreamSynchronize, 1 cudaDeviceSynchronize per step, "
                                                "made in aten::_coalesce"),
])
def test_traces_from_the_wild_get_the_cause_a_careful_reader_names(name, cause, said):
    shared_trace(name)
    report = analyze_path(SHARED_TRACES / name, Options())
    invariants_hold(report)
    assert report["ledger_unit"] == "step_time"
    first = report["bottlenecks"][0]
    assert first["cause"] == cause and said in first["evidence"]


def test_the_llama_window_names_its_lazy_kernel_loading_as_warmup():
    """Both ranks' first launches of a kernel module hold the host for 343 ms and more with the GPU idle."""
    shared_trace("2x4090_tp_llama_fwd_2ranks")
    report = analyze_path(SHARED_TRACES / "2x4090_tp_llama_fwd_2ranks", Options())
    warmup = next(b for b in report["bottlenecks"] if b["cause"] == "warmup")
    assert 35 < warmup["points"] < 50 and "cudaLaunchKernel" in warmup["evidence"]
    communication = next(e for e in report["ledger"] if e["cause"] == "communication")
    assert communication["points"] == pytest.approx(52.47, abs=0.05)  # the breakdown's 52.47% (README)
