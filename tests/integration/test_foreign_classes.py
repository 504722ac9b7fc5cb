"""One small synthetic trace for each class of foreign trace that issue 9 found misread, with its answer by hand.

Each test fails without the fix for its class: a missing side of the trace, impossible inputs, several host
threads, other accelerators and unknown categories, old formats, new collectives and GEMMs, Python inside the
step, iterations without ProfilerStep, allocator calls and syncs, advice in the trace's own terms, device
coverage, and multi-rank job figures.
"""

import pytest
from conftest import note
from synth import TID, kernel, launch, op, python, step, write

from profiler.mfu.consistency import violations
from profiler.mfu.records import Figures, LedgerEntry, Mfu, Share, StepTimes
from profiler.pipeline import analyze_path
from profiler.settings import Options

MM = {"Input Dims": [[64, 64], [64, 64]], "Input type": ["c10::BFloat16", "c10::BFloat16"]}


def ms(report):
    return {c: round(b["ms"], 6) for c, b in report["breakdown"].items()}


def test_a_trace_with_device_events_and_no_host_ops_is_analysed(tmp_path):
    events = [launch(0, 10, 1, "hipLaunchKernel", cat="cuda_runtime"), kernel("igemm_fwd_gtcx_nhwc_bf16", 20, 100, 1),
              launch(150, 10, 2, "hipLaunchKernel"), kernel("SubTensorOpWithScalar1d", 200, 50, 2)]
    report = analyze_path(write(tmp_path / "t.json", events, device="AMD Instinct MI210"), Options())
    assert report["device"]["kind"] == "rocm" and report["device"]["peak_flops"] == 181e12
    # matmul by the kernel's name, the runtime calls are host time, the rest idle
    assert ms(report) == {"matmul": 0.1, "other_compute": 0.05, "memory": 0.0, "communication": 0.0,
                          "data_loading": 0.0, "host_overhead": 0.02, "idle": 0.08, "unrecorded": 0.0}
    assert note(report, "no_host_ops") == {}
    # no FLOPs: a time ledger; the gaps between the kernels (no host recorded to tell) and the lone elementwise
    # kernel's fixed cost are small_batch, 150 of the 250 us; the matmul kernel is the useful work
    assert report["mfu"]["analytic"] is None and report["ledger_unit"] == "step_time"
    points = {e["cause"]: e["points"] for e in report["ledger"] if e["points"]}
    assert points == pytest.approx({"small_batch": 60.0, "useful": 40.0})
    assert report["bottlenecks"][0]["cause"] == "small_batch"
    assert "the host was not recorded" in report["bottlenecks"][0]["evidence"]


def cpu_matmul_step(tmp_path, shapes=True):
    """A 1 ms CPU step whose 2 GFLOP matmul takes 0.5 ms: 4 TFLOP/s."""
    mm = {"Input Dims": [[1000, 1000], [1000, 1000]], "Input type": ["float", "float"]} if shapes else {}
    return write(tmp_path / "t.json", [step(1, 0, 1000), op("aten::mm", 0, 500, **mm)], device=None)


def test_a_peak_too_low_for_what_the_trace_did_is_named_and_mfu_left_empty(tmp_path):
    report = analyze_path(cpu_matmul_step(tmp_path), Options(peak_flops=1e12))
    assert report["mfu"]["analytic"] is None and report["mfu"]["counted"] is None  # it would read 200%
    assert report["ledger_unit"] == "step_time"  # no MFU points: the time ledger, with the input named
    problem = note(report, "time_ledger")
    assert problem["why"] == "implausible_peak" and problem["ratio"] == pytest.approx(4.0)
    assert problem["rate_tflops_per_s"] == pytest.approx(4) and problem["peak_run_tflops_per_s"] == pytest.approx(1)
    assert "--peak-flops" in next(w for w in report["warnings"] if "the peak is implausible" in w)


def test_model_flops_that_do_not_fit_the_step_are_named(tmp_path):
    """Where the trace counts its matmuls, an F 10x what ran is contradicted and the counts stand in; where it
    cannot count them (no shapes), the F that cannot fit the step is named and no MFU is printed."""
    counted = analyze_path(cpu_matmul_step(tmp_path), Options(peak_flops=10e12, flops_per_step=2e10))
    assert counted["mfu"]["analytic"] == pytest.approx(0.2)  # 2 GFLOP in 1 ms at 10 TFLOP/s
    assert note(counted, "model_flops_contradicted")["ratio"] == pytest.approx(10)
    report = analyze_path(cpu_matmul_step(tmp_path, shapes=False), Options(peak_flops=10e12, flops_per_step=2e10))
    assert report["mfu"]["analytic"] is None and report["ledger_unit"] == "step_time"
    problem = note(report, "time_ledger")
    assert problem["why"] == "implausible_flops" and problem["span"] == "step"
    assert (problem["ideal_ms"], problem["ratio"], problem["span_ms"]) == pytest.approx((2.0, 2.0, 1.0))
    assert "--flops-per-step" in next(w for w in report["warnings"] if "need 2.00 ms/step" in w)


def test_the_invariant_check_names_what_a_report_breaks():
    mfu = Mfu(analytic=0.2, counted=None, flops_analytic=1.0, flops_counted=1.0, analytic_from=None)
    fields = Figures(step_time_ms=StepTimes(1, 1, 1), device_utilization=None, mfu=mfu,
                     breakdown={"matmul": Share(0.7, 0.7), "idle": Share(0.4, 0.4)},
                     ledger=[LedgerEntry(cause="io", points=90.0, ms=0.9, what_if_mfu=1.5),
                             LedgerEntry(cause="other", points=-5.0, ms=0.0, what_if_mfu=0.19)],
                     bottlenecks=[], top_ops=[], classification_ms=None, copied_bytes_per_step=0.0,
                     matmul_without_flops_ms=0.0, communication=None, per_step=[])
    assert violations(fields) == ["breakdown shares add up to 110.0000%, not 100%",
                                  "ledger points add up to 85.000, not 100 - MFU = 80.000",
                                  "cause other is negative (-5.000 points)", "what-if MFU of io is 150.00%"]


def test_host_threads_running_at_once_count_each_instant_once(tmp_path):
    events = [step(1, 0, 1000), op("aten::mm", 0, 600, **MM),
              op("aten::mm", 200, 600, tid=TID + 1, **MM)]  # the autograd thread, beside the main one
    report = analyze_path(write(tmp_path / "t.json", events, device=None), Options(peak_flops=1e12))
    assert ms(report)["matmul"] == 0.8 and ms(report)["idle"] == 0.2
    assert sum(b["fraction"] for b in report["breakdown"].values()) == pytest.approx(1, abs=1e-9)


def test_mtia_device_events_are_device_time_and_unknown_categories_are_reported(tmp_path):
    events = [step(1, 0, 1000), op("aten::mm", 10, 100, **MM),
              launch(20, 10, 1, "mtiaLaunchKernel", cat="mtia_runtime"),
              kernel("gemm_bf16", 200, 300, 1, cat="mtia_ccp_events"),
              {"ph": "X", "cat": "fancy_new_events", "name": "x", "pid": 1, "tid": 1, "ts": 5, "dur": 1}]
    report = analyze_path(write(tmp_path / "t.json", events, device=None), Options())
    assert report["device"]["kind"] == "mtia"
    assert ms(report)["matmul"] == 0.3  # classified by the op that launched it
    assert note(report, "unknown_categories") == {"categories": [{"category": "fancy_new_events", "events": 1}]}
    assert note(report, "no_device_named") == {}


def test_a_2021_kineto_trace_counts_convolution_flops(tmp_path):
    """Categories Operator / Runtime / Kernel and shapes under "Input dims", no stride or padding recorded."""
    inp, weight, grad = [2, 3, 8, 8], [4, 3, 3, 3], [2, 4, 6, 6]
    events = [op("aten::convolution", 0, 100, cat="Operator", **{"Input dims": [inp, weight, [], [], []]}),
              launch(10, 5, 1, cat="Runtime"), kernel("implicit_convolve_sgemm", 200, 100, 1, cat="Kernel"),
              op("aten::cudnn_convolution_backward", 400, 100, cat="Operator", **{"Input dims": [inp, grad, weight]}),
              launch(410, 5, 2, cat="Runtime"), kernel("wgrad_kernel", 600, 100, 2, cat="Kernel")]
    report = analyze_path(write(tmp_path / "t.json", events, device="Tesla V100-SXM2-32GB"), Options())
    forward = 2 * 2 * 4 * 6 * 6 * 3 * 9  # 2·N·C_out·H_out·W_out·C_in·k²
    assert report["mfu"]["flops_per_step"]["counted"] == 3 * forward
    assert ms(report)["matmul"] == 0.2
    assert note(report, "no_input_shapes") is None and note(report, "convolution_output_unknown") is None


def test_symmetric_memory_collectives_moe_and_fp8_gemms(tmp_path):
    fp8 = {"Input Dims": [[128, 256], [256, 512], [], []], "Input type": ["c10::Float8_e4m3fn"] * 2 + ["float"] * 2}
    events = [step(1, 0, 1000),
              op("symm_mem::multimem_all_reduce_", 10, 20), launch(12, 5, 1),
              kernel("void (anonymous namespace)::multimem_all_reduce_kernel<c10::BFloat16, 16>", 100, 200, 1),
              op("vllm::moe_forward", 40, 30), launch(45, 5, 2),
              kernel("bmm_MxE4m3_MxE2m1MxE4m3_Fp32_t128x16x256", 300, 100, 2),
              op("aten::_scaled_mm", 80, 20, **fp8), launch(85, 5, 3), kernel("nvjet_tst_64x64_fp8", 400, 50, 3)]
    report = analyze_path(write(tmp_path / "t.json", events, device="NVIDIA B200"), Options())
    assert ms(report)["communication"] == 0.2 and ms(report)["matmul"] == 0.15
    assert report["mfu"]["flops_per_step"]["counted"] == 2 * 128 * 256 * 512
    assert report["matmul_without_flops_ms"] == pytest.approx(0.1)
    assert note(report, "uncounted_matmul")["largest"] == [{"name": "vllm::moe_forward", "ms": pytest.approx(0.1)}]


def test_python_preprocessing_inside_the_step_is_data_loading(tmp_path):
    events = [step(1, 0, 1000),
              python("transformers/pipelines/video_classification.py(129): preprocess", 0, 400),
              python("PIL/Image.py(572): size", 100, 50),
              python("transformers/models/x/modeling_x.py(10): forward", 400, 600),
              op("aten::mm", 450, 50, **MM), launch(460, 10, 1), kernel("nvjet_tst", 500, 400, 1),
              python("threading.py(359): wait", 0, 1000, tid=999)]  # a background thread that only waits
    report = analyze_path(write(tmp_path / "t.json", events), Options())
    # device idle 0-500 and 900-1000: preprocessing 0-400, the model's Python and its op 400-500, 900-1000
    assert ms(report) == {"matmul": 0.4, "other_compute": 0.0, "memory": 0.0, "communication": 0.0,
                          "data_loading": 0.4, "host_overhead": 0.2, "idle": 0.0, "unrecorded": 0.0}
    io = next(b for b in report["bottlenecks"] if b["cause"] == "io")
    assert "video_classification.py(129): preprocess 0.40 ms" in io["evidence"]
    assert "decode and preprocess ahead of the step" in io["fix"]


def test_iterations_without_profiler_step_are_told_apart_by_the_optimizer(tmp_path):
    events = []
    for k in range(3):
        base = 1000 * k
        events += [op("aten::mm", base, 400, **MM),
                   op("Optimizer.step#SGD.step", base + 500, 300, cat="user_annotation"),
                   op("aten::add_", base + 550, 200)]
    report = analyze_path(write(tmp_path / "t.json", events, device=None), Options(peak_flops=1e12))
    assert report["source"]["steps"] == [1, 2, 3]
    assert [s["ms"] for s in report["per_step"]] == [0.8, 1.0, 1.0]  # each iteration ends with its optimizer step
    assert note(report, "no_step_markers") == {"file": "t.json", "by": "optimizer_step", "iterations": 3,
                                               "optimizer": "Optimizer.step#SGD.step"}


def test_allocator_calls_and_syncs_are_named_and_charged_to_what_removes_them(tmp_path):
    events = [step(1, 0, 1000),
              op("aten::miopen_convolution", 0, 600),
              launch(10, 250, 100, "hipFree"), launch(300, 250, 101, "hipFree"),
              op("aten::mm", 700, 50, **MM), launch(710, 10, 1), kernel("Cijk_gemm", 750, 200, 1),
              op("aten::_local_scalar_dense", 950, 45), launch(955, 40, 102, "hipStreamSynchronize")]
    report = analyze_path(write(tmp_path / "t.json", events, device="AMD Instinct MI300X"), Options())
    causes = {b["cause"]: b for b in report["bottlenecks"]}
    memory = causes["memory_ops"]
    assert memory["points"] == pytest.approx(50, abs=0.01)  # 2 × 250 µs of hipFree with the device idle
    assert "2 hipFree per step, made in aten::miopen_convolution (2)" in memory["evidence"]
    assert "cudnn.benchmark" in memory["fix"] and "PYTORCH_HIP_ALLOC_CONF" in memory["fix"]
    other = causes["other"]
    assert other["points"] == pytest.approx(4, abs=0.01)  # the sync 955-995 after the last kernel
    assert "hipStreamSynchronize" in other["evidence"] and ".item()" in other["fix"]


@pytest.mark.parametrize("training", [False, True])
def test_advice_for_a_foreign_trace_speaks_of_its_batch_not_nanogpt_keys(tmp_path, training):
    events = [step(1, 0, 1000), op("aten::mm", 0, 900, **MM), launch(890, 5, 1), kernel("nvjet_tst", 900, 50, 1)]
    if training:
        events.append(op("autograd::engine::evaluate_function: MmBackward0", 960, 10))
    report = analyze_path(write(tmp_path / "t.json", events), Options())
    small = next(b for b in report["bottlenecks"] if b["cause"] == "small_batch")
    assert "block_size" not in small["fix"] and "gradient_accumulation_steps" not in small["fix"]
    assert "fix_config" not in small
    assert ("per-device batch" in small["fix"]) == training and ("batch more requests" in small["fix"]) != training


def test_consumer_gpus_since_volta_have_a_peak_and_an_unknown_device_says_what_to_pass(tmp_path):
    events = [step(1, 0, 1000), op("aten::mm", 0, 100, **MM), launch(10, 5, 1), kernel("turing_h1688gemm", 200, 100, 1)]
    report = analyze_path(write(tmp_path / "a.json", events, device="NVIDIA GeForce RTX 2080 Ti"), Options())
    assert report["device"]["peak_flops"] == 53.8e12
    assert any("full T×T" in c for c in report["conventions"])
    report = analyze_path(write(tmp_path / "b.json", events, device="Acme NPU 9000"), Options())
    assert report["device"]["peak_flops"] is None
    assert note(report, "no_peak_for_device") == {"device": "Acme NPU 9000"}


def test_job_figures_are_over_the_ranks_and_say_how(tmp_path):
    for rank, kernel_us in ((0, 400), (1, 800)):
        events = [step(1, 0, 1000), op("aten::mm", 0, 100, **MM), launch(10, 5, 1),
                  kernel("nvjet_tst", 100, kernel_us, 1)]
        write(tmp_path / f"rank{rank}.pt.trace.json", events, distributedInfo={"rank": rank, "world_size": 2})
    report = analyze_path(tmp_path, Options())
    assert [r["device_utilization"]["busy_fraction"] for r in report["per_rank"]] == [1.0, 1.0]
    assert [r["breakdown"]["matmul"]["ms"] for r in report["per_rank"]] == [0.4, 0.8]
    assert report["breakdown"]["matmul"]["ms"] == pytest.approx(0.6)
    mm = next(o for o in report["top_ops"] if o["name"] == "aten::mm")
    assert mm["ms"] == pytest.approx(0.6)  # the mean of the ranks, not rank 0's 0.4
    assert report["device_utilization"]["window_ms"] == pytest.approx(0.6)
    assert report["job_aggregation"]["top_ops"].startswith("mean over ranks")


def test_a_run_whose_matmuls_beat_its_measured_peak_raises_the_peak_to_what_it_achieved(tmp_path):
    """Our own CPU run measured its peak while the machine was busy: 1 TFLOP/s, then its matmul ran at 4."""
    mm = {"Input Dims": [[1000, 1000], [1000, 1000]], "Input type": ["float", "float"]}
    peak = {"device": "cpu", "dtype": "float32", "peak_flops": 2e12, "peak_flops_run": 1e12, "source": "measured"}
    path = write(tmp_path / "t.json", [step(1, 0, 1000), op("aten::mm", 0, 500, **mm)], device=None,
                 mfu_analyzer={"peak": peak, "flops_per_step": 2e9, "dtype": "float32"})
    report = analyze_path(path, Options())
    device = report["device"]
    assert device["peak_flops_run"] == pytest.approx(4e12) and device["peak_flops"] == pytest.approx(8e12)
    assert report["mfu"]["analytic"] == pytest.approx(2e9 / (1e-3 * 8e12))  # 25%, not 100%
    assert note(report, "measured_peak_raised")["scale"] == pytest.approx(4.0) and report["ledger"]
