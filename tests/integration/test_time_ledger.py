"""Every trace gets a diagnosis: the time ledger where MFU cannot be formed, precision from kernel names, the
one-off costs of a window (warmup), syncs in a single window; each rule on a small trace whose answer is known,
then the shared traces from the wild against what a careful reader of them names."""

import pytest
from conftest import invariants_hold, note
from synth import kernel, launch, no_shapes_gpu_window, op, python, step, write

from profiler.mfu.peak import table_peaks
from profiler.pipeline import analyze_path
from profiler.settings import Options
from profiler.trace.classify import fp32_simt_kernel

# --- precision from the kernels' names: a test per family ---


@pytest.mark.parametrize("name", [
    "volta_sgemm_64x64_nt", "ampere_sgemm_128x64_tn", "maxwell_sgemm_128x128_raggedMn_nn",  # cuBLAS SIMT sgemm
    "void cutlass::Kernel<cutlass_80_simt_sgemm_128x128_8x4_nn_align1>(cutlass_80_simt_sgemm_128x128_8x4_nn_align1"
    "::Params)",  # cutlass SIMT
    "cudnn_turing_scudnn_128x64_stridedB_splitK_xregs_large_nn_v1", "volta_scudnn_128x32_relu_interior_nn_v1",
    "sm80_xmma_gemm_f32f32_f32f32_f32_nn_n_tilesize128x128x8_stage3_warpsize2x2x1_ffma_aligna4_alignc4_execute",
    "void cudnn::cnn::wgrad_alg1_engine<float, float, 512, 6, 5, 3, 3, 3, false, false>(int, int, int)",
    "void cudnn::detail::dgrad_engine<float, 512, 6, 5, 3, 3, 3, false>(int, int, int, float const*)",
    "void cudnn::winograd_nonfused::winogradForwardData4x4<float, float>(cudnn::winograd_nonfused::Params)",
    "void explicit_convolve_sgemm<float, int, 128, 5, 5, 3, 3, 3, 0, false>(int, int, int, float const*)",
    "void implicit_convolve_sgemm<float, float, 128, 5, 5, 3, 3, 3, 1, false, false, true>(int, int, int)",
    "void gemv2T_kernel_val<int, int, float, float, float, float, 128, 16, 4, 4, false, false>(float)",
])
def test_float32_simt_kernels_are_named_by_family(name):
    assert fp32_simt_kernel(name)


@pytest.mark.parametrize("name", [
    "volta_h884gemm_64x64_ldg8_nn", "turing_fp16_s1688gemm_fp16_128x128_ldg8_f2f_tn",  # half on tensor cores
    "ampere_bf16_s16816gemm_bf16_128x64_ldg8_f2f_tn", "ampere_tf32_s1688gemm_tf32_128x128_ldg4_f2f_tn",
    "sm80_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x32_stage4_warpsize2x2x1_tensor16x8x16_execute",
    "sm90_xmma_gemm_f16f16_f16f32_f32_tn_n_tilesize128x128x64_cgasize1x2x1_warpgroupsize1x1x1_execute_wgmma",
    "void cutlass::Kernel<cutlass_80_tensorop_s1688gemm_64x64_16x4_tn_align4>(cutlass_80_tensorop_s1688gemm)",
    "nvjet_tst_128x256_64x4_2x1_v_bz_coopA_NNT", "Cijk_Ailk_Bljk_HHS_BH_MT128x128x32_MI32x32x8x1_mfma",
    "igemm_fwd_gtcx2_nhwc_bf16_bx0_ex1_bt32x256x32", "void cutlass::Kernel<cutlass_80_tensorop_d884gemm_32x32>()",
    "ncclDevKernel_AllGather_RING_LL(ncclDevComm*, unsigned long, ncclWork*)",
])
def test_tensor_core_and_other_kernels_are_not_float32_simt(name):
    assert not fp32_simt_kernel(name)


# --- the time ledger on small traces ---


def test_a_trace_without_shapes_gets_a_time_ledger_with_precision_from_kernel_names(tmp_path):
    report = analyze_path(write(tmp_path / "t.json", no_shapes_gpu_window(), device="Tesla T4"), Options())
    assert report["mfu"]["counted"] is None and report["ledger_unit"] == "step_time"
    invariants_hold(report)
    points = {e["cause"]: e["points"] for e in report["ledger"]}
    step_us = report["step_time_ms"]["mean"] * 1000
    # the T4 does 8.1 TFLOP/s in float32 against 65 in float16: the fp32 SIMT kernel loses 1 - 8.1/65 of its time
    assert points["precision"] == pytest.approx(100 * 600 * (1 - 8.1 / 65) / step_us)
    assert points["useful"] == pytest.approx(100 * 600 * 8.1 / 65 / step_us)
    first = report["bottlenecks"][0]
    assert first["cause"] == "precision" and "wgrad_alg1_engine<float, float" in first["evidence"]
    assert "float16" in first["fix"] and "GradScaler" in first["fix"]  # the T4 has no bfloat16
    assert first["speedup"] == pytest.approx(step_us / (step_us - 600 * (1 - 8.1 / 65)))
    assert first["what_if_mfu"] is None


def test_an_unknown_device_gets_a_time_ledger_and_no_precision(tmp_path):
    report = analyze_path(write(tmp_path / "t.json", no_shapes_gpu_window(), device="Some Future Accelerator"),
                          Options())
    invariants_hold(report)
    assert report["device"]["peak_flops"] is None and report["ledger_unit"] == "step_time"
    points = {e["cause"]: e["points"] for e in report["ledger"]}
    assert points["precision"] == 0 and report["bottlenecks"]  # no table: no rate to price float32 by
    assert note(report, "time_ledger")["why"] == "no_peak"


def test_compilation_inside_the_window_is_warmup_and_left_out_of_the_other_what_ifs(tmp_path):
    """torch.compile compiling for 8 ms of a 10 ms window while the device idles, then a 1 ms kernel."""
    events = [
        op("Torch-Compiled Region: 0/0", 0, 10_000, cat="user_annotation"),
        op("_compile.compile_inner (dynamo_timed)", 100, 8_000, cat="user_annotation"),
        python("torch/_inductor/compile_fx.py(1400): compile_fx_inner", 200, 7_000),
        op("aten::mm", 8_500, 100), launch(8_520, 10, 1),
        kernel("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_execute_wgmma", 8_600, 1_000, 1),
        op("aten::add", 9_600, 50), launch(9_610, 10, 2), kernel("triton_poi_fused_add_0", 9_700, 300, 2),
    ]
    report = analyze_path(write(tmp_path / "t.json", events, device="NVIDIA H100 80GB HBM3"), Options())
    invariants_hold(report)
    entries = {e["cause"]: e for e in report["ledger"]}
    # the compile span, device idle throughout, and the region's own first-call time outside it while the
    # device idles (0-100, 8,100-8,500 and 9,650-9,700 us)
    assert entries["warmup"]["ms"] == pytest.approx(8.0 + 0.55, abs=0.01)
    first = report["bottlenecks"][0]
    assert first["cause"] == "warmup" and "_compile.compile_inner (dynamo_timed) 8.00 ms" in first["evidence"]
    assert "schedule(wait=1, warmup=1" in first["fix"]
    step = report["step_time_ms"]["mean"]
    steady = step - 8.55
    assert entries["warmup"]["what_if_step_ms"] == pytest.approx(steady, abs=0.01)
    other = entries["non_fused"]  # the elementwise kernel: steady state without it, warmup left out
    assert other["what_if_step_ms"] == pytest.approx(steady - other["ms"], abs=0.01)
    assert other["speedup"] == pytest.approx(steady / (steady - other["ms"]), rel=1e-6)


def test_a_compiled_regions_first_call_is_warmup_on_a_cpu_trace_without_dynamo_spans(tmp_path):
    """A CPU trace of three steps whose first call of the compiled region holds the host 50 ms beyond its ops
    (compilation, with no dynamo span recorded); the later calls hold it 0.2 ms: only the first is warmup, and
    dynamo's frame on the Python stack (`convert_frame.py: _compile`) counts whole."""
    mm = {"Input Dims": [[64, 64], [64, 64]], "Input type": ["float", "float"]}
    events = []
    for n, own in ((1, 50_000), (2, 200), (3, 200)):
        t0 = n * 100_000
        events += [step(n, t0, 60_000), op("Torch-Compiled Region: 0/0", t0, own + 1_000, cat="user_annotation"),
                   op("aten::mm", t0 + own, 1_000, **mm)]
    events.append(python("torch/_dynamo/convert_frame.py(1045): _compile", 100_000, 10_000))
    report = analyze_path(write(tmp_path / "t.json", events, device=None), Options(peak_flops=1e12))
    invariants_hold(report)
    warmup = next(b for b in report["bottlenecks"] if b["cause"] == "warmup")
    assert warmup["ms"] == pytest.approx(50.0 / 3, abs=0.01)  # the first region's own 50 ms, over three steps
    assert "Torch-Compiled Region: 0/0 16.67 ms" in warmup["evidence"]
    assert "_compile 3.33 ms" in warmup["evidence"]


def test_a_cold_first_call_and_lazy_kernel_loading_are_warmup(tmp_path):
    """A first cudnn_convolution that holds the host 5 ms (cuDNN's heuristics) and a first launch of 3 ms (lazy
    loading): warmup; the second call of the same op, 50 us, is not."""
    events = [
        op("aten::cudnn_convolution", 0, 5_050), launch(5_000, 40, 1),
        kernel("void implicit_convolve_hhgemm_tensorop_kernel<__half>()", 5_050, 500, 1),
        op("aten::cudnn_convolution", 5_600, 50), launch(5_610, 10, 2),
        kernel("void implicit_convolve_hhgemm_tensorop_kernel<__half>()", 5_650, 500, 2),
        op("aten::relu", 6_200, 3_010), launch(6_210, 3_000, 3, "cudaLaunchKernel"),
        kernel("void at::native::vectorized_elementwise_kernel<4, at::native::relu>()", 9_210, 100, 3),
    ]
    report = analyze_path(write(tmp_path / "t.json", events), Options())
    invariants_hold(report)
    warmup = next(b for b in report["bottlenecks"] if b["cause"] == "warmup")
    assert warmup["ms"] == pytest.approx(5.05 + 3.0, abs=0.01)  # the first call's own 5.05 ms, the 3 ms launch
    assert "aten::cudnn_convolution 5.05 ms" in warmup["evidence"] and "cudaLaunchKernel 3.00 ms" in warmup["evidence"]


def test_host_syncs_in_a_single_window_are_named_with_the_op_that_made_them(tmp_path):
    events = [op("aten::_coalesce", 0, 4_000), launch(10, 5, 1),
              kernel("void at::native::apply::coalesceValuesKernel<double, double>()", 20, 10, 1),
              launch(100, 3_000, 0, "cudaStreamSynchronize"),
              op("aten::add", 4_000, 20), launch(4_005, 5, 2),
              kernel("void at::native::vectorized_elementwise_kernel<4, add>()", 4_020, 10, 2)]
    report = analyze_path(write(tmp_path / "t.json", events, device="NVIDIA GeForce RTX 4090"), Options())
    first = report["bottlenecks"][0]
    assert first["cause"] == "other" and "1 cudaStreamSynchronize per step, made in aten::_coalesce" in \
        first["evidence"]
    assert first["ms"] == pytest.approx(3.0, abs=0.01)


def test_convolutions_without_flops_are_not_charged_as_a_low_rate(tmp_path):
    """A model whose matmul time is mostly convolutions without shapes, and one small counted mm: with F_model
    unknown the MFU ledger would charge the convolutions to matmul_efficiency; the time ledger stands, saying
    why."""
    mm = {"Input Dims": [[8, 8], [8, 8]], "Input type": ["float", "float"]}
    events = [op("aten::cudnn_convolution", 0, 20), launch(5, 10, 1),
              kernel("void implicit_convolve_sgemm<float, float, 128>()", 20, 900, 1),
              op("aten::mm", 930, 20, **mm), launch(935, 10, 2), kernel("volta_sgemm_32x32_nn", 950, 40, 2)]
    report = analyze_path(write(tmp_path / "t.json", events, device="NVIDIA GeForce RTX 2080 Ti"), Options())
    assert report["mfu"]["counted"] is not None and report["ledger_unit"] == "step_time"
    assert "matmul_efficiency" not in {e["cause"] for e in report["ledger"]}
    why = note(report, "time_ledger")
    assert why["why"] == "mostly_uncounted" and round(why["uncounted_pct"]) == 96


@pytest.mark.parametrize("name, fp16, fp32", [
    ("NVIDIA GeForce RTX 4090 Laptop GPU", 79.4, 39.7),  # not the desktop 4090's 165.2
    ("NVIDIA GeForce RTX 4090", 165.2, 82.6),
    ("NVIDIA RTX 500 Ada Generation Laptop GPU", 33.2, 8.29),  # a workstation part: tensor cores 4x float32
    ("NVIDIA GeForce RTX 3080 Ti Laptop GPU", 47.2, 23.6),
    ("Orin", 42.5, 5.3),
    ("Tesla T4", 65, 8.1),
])
def test_laptop_and_embedded_gpus_are_in_the_device_table(name, fp16, fp32):
    rates = table_peaks(name)
    assert rates["float16"] == fp16 * 1e12 and rates["float32"] == fp32 * 1e12


# --- one-off JIT compilation that is not dynamo's: a test per family, and what must stay what it is ---


def scripted_steps(slow_calls: dict, signatures: bool):
    """Three GPU steps, each calling a scripted `forward` and an elementwise op. `slow_calls` maps a
    step to its `forward`'s host time; that call holds TorchScript's fusion-group and fallback ops where
    `signatures`, and the device idles under it (its kernel runs after it)."""
    events, corr = [], 0
    for n in (1, 2, 3):
        t0, us = n * 400_000, slow_calls.get(n, 1_000)
        events += [step(n, t0, us + 1_200), op("forward", t0, us)]
        if signatures and n in slow_calls:
            events += [op("prim::TensorExprGroup", t0 + 1_000, us // 2), op("fallback_function", t0 + 2_000 + us // 2,
                                                                           us // 4)]
        corr += 1
        events += [launch(t0 + us - 20, 10, corr), kernel("void fused_kernel<float>()", t0 + us + 10, 500, corr)]
        corr += 1
        events += [op("aten::add", t0 + us + 600, 100), launch(t0 + us + 610, 10, corr),
                   kernel("void at::native::vectorized_elementwise_kernel<4>()", t0 + us + 700, 200, corr)]
    return events


def test_torchscript_fusing_a_scripted_function_on_its_second_call_is_warmup(tmp_path):
    """The profiling executor optimises on the second call: 300 ms on the host, fusion groups inside, the device
    idle; the first and third calls take 1 ms."""
    report = analyze_path(write(tmp_path / "t.json", scripted_steps({2: 300_000}, True)), Options())
    invariants_hold(report)
    first = report["bottlenecks"][0]
    assert first["cause"] == "warmup" and first["ms"] == pytest.approx(100.0, abs=0.5)  # 300 ms over 3 steps
    assert "forward (compiling fallback_function, prim::TensorExprGroup) 100.00 ms" in first["evidence"]


@pytest.mark.parametrize("signatures", [False, True])
def test_a_scripted_function_slow_every_call_stays_what_it_is(tmp_path, signatures):
    """300 ms every call, with or without fusion groups inside: nothing compiled once, nothing is warmup."""
    report = analyze_path(write(tmp_path / "t.json", scripted_steps({1: 300_000, 2: 300_000, 3: 300_000},
                                                                     signatures)), Options())
    invariants_hold(report)
    assert "warmup" not in {b["cause"] for b in report["bottlenecks"]}
    assert report["bottlenecks"][0]["cause"] in ("small_batch", "other")


def test_nvrtc_lazy_module_loading_and_cpp_extension_builds_are_warmup(tmp_path):
    """An op that compiles with NVRTC (40 ms), a lazy module load (20 ms) and a load_inline build (a Python
    frame, 60 ms), in one window while the device idles."""
    events = [step(1, 0, 200_000),
              op("my_ext::op", 1_000, 41_000), launch(1_500, 40_000, 1, "nvrtcCompileProgram"),
              launch(50_000, 20_000, 2, "cuModuleLoadData", cat="cuda_driver"),
              python("torch/utils/cpp_extension.py(1723): load_inline", 80_000, 60_000),
              op("aten::add", 150_000, 100), launch(150_010, 10, 3),
              kernel("void at::native::vectorized_elementwise_kernel<4>()", 150_100, 200, 3)]
    report = analyze_path(write(tmp_path / "t.json", events), Options())
    invariants_hold(report)
    warmup = next(b for b in report["bottlenecks"] if b["cause"] == "warmup")
    assert warmup["ms"] == pytest.approx(41 + 20 + 60, abs=0.5)
    for part in ("my_ext::op (compiling nvrtcCompileProgram) 41.00 ms", "cuModuleLoadData 20.00 ms",
                 "load_inline 60.00 ms"):
        assert part in warmup["evidence"]


def test_triton_autotuning_is_warmup_and_its_cached_run_is_not(tmp_path):
    """Triton benchmarking its configs (_bench) is one-off; Autotuner.run, called every step, is not."""
    events = [step(1, 0, 100_000),
              python("triton/runtime/autotuner.py(120): _bench", 1_000, 30_000),
              python("triton/runtime/autotuner.py(180): run", 40_000, 2_000),
              op("aten::add", 50_000, 100), launch(50_010, 10, 1),
              kernel("void at::native::vectorized_elementwise_kernel<4>()", 50_100, 200, 1)]
    report = analyze_path(write(tmp_path / "t.json", events), Options())
    warmup = next(b for b in report["bottlenecks"] if b["cause"] == "warmup")
    assert warmup["ms"] == pytest.approx(30.0, abs=0.5) and "_bench 30.00 ms" in warmup["evidence"]
    assert "run" not in [o["name"] for o in warmup["facts"]["one_offs"]]
