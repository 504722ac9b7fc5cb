"""The analyzer on small hand-made traces whose every microsecond is known."""

import gzip
import json

import pytest
from conftest import ROOT, analyze, invariants_hold, note
from synth import kernel, launch, op, step, write

from profiler.pipeline import analyze_path
from profiler.settings import Options


def gpu_step_events():
    mm_shapes = {"Input Dims": [[64, 32], [32, 16]], "Input type": ["c10::BFloat16", "c10::BFloat16"]}
    return [
        step(1, 0, 1000),
        op("aten::mm", 10, 40, **mm_shapes), launch(20, 10, 1),
        kernel("nvjet_tst_128x256_64x4_2x1_v_bz_coopA_NNT", 100, 200, 1),  # new cuBLAS name, known by its op
        op("aten::add_", 60, 20), launch(65, 10, 2),
        kernel("triton_poi_fused_add_0", 300, 50, 2),  # elementwise, by its op
        op("CompiledFunction", 100, 100), launch(110, 10, 3),
        kernel("triton_tem_fused_mm_1", 350, 100, 3),  # a compiled matmul template, by its name
        launch(210, 10, 4), kernel("ncclDevKernel_AllReduce_Sum_f32_RING_LL", 450, 150, 4),  # no op: by name
        launch(222, 5, 5), kernel("mystery_kernel", 600, 50, 5),  # no op, unknown name: unclassified
        op("aten::copy_", 230, 30), launch(235, 10, 6, "cudaMemcpyAsync"),
        kernel("Memcpy HtoD (Pinned -> Device)", 650, 50, 6, cat="gpu_memcpy", bytes=1000),
        op("enumerate(DataLoader)#_SingleProcessDataLoaderIter.__next__", 700, 200, cat="user_annotation"),
    ]


def test_every_microsecond_of_a_gpu_step_is_placed(tmp_path):
    report = analyze_path(write(tmp_path / "t.json", gpu_step_events()), Options())
    ms = {c: round(b["ms"], 6) for c, b in report["breakdown"].items()}
    assert ms == {"matmul": 0.3, "other_compute": 0.1, "memory": 0.05, "communication": 0.15,
                  "data_loading": 0.2, "host_overhead": 0.06, "idle": 0.14, "unrecorded": 0.0}
    assert report["step_time_ms"]["mean"] == 1.0
    assert report["classification_ms"] == pytest.approx({"by_op": 0.3, "by_name": 0.25, "unclassified": 0.05})
    assert report["copied_bytes_per_step"] == 1000
    assert report["device_utilization"] == {"window_ms": 0.6, "busy_fraction": 1.0}
    mm = next(o for o in report["top_ops"] if o["name"] == "aten::mm")
    assert mm["flops"] == 2 * 64 * 32 * 16 and mm["tflops_per_s"] == pytest.approx(2 * 64 * 32 * 16 / 200e-6 / 1e12)
    assert report["device"]["dtype"] == "bfloat16" and report["device"]["peak_flops"] == 989e12


def test_steps_extend_to_their_device_work_and_a_cut_last_step_is_dropped(tmp_path):
    events = [step(1, 0, 100), step(2, 100, 100), step(3, 200, 100)]
    corr = 0
    for host_ts, kernels in ((10, [(150, 100), (250, 150)]), (110, [(400, 50), (450, 10)]), (210, [(470, 10)])):
        for i, (ts, dur) in enumerate(kernels):
            corr += 1
            events += [launch(host_ts + 10 * i, 5, corr), kernel("k", ts, dur, corr)]
    report = analyze_path(write(tmp_path / "t.json", events), Options())
    assert report["source"]["steps"] == [1, 2]
    assert [s["ms"] for s in report["per_step"]] == [0.4, 0.06]  # [0, 400] and [400, 460]
    assert note(report, "last_step_dropped") == {"step": 3, "device_share_pct": 80.0}


def test_trace_without_step_markers_is_one_window(tmp_path):
    events = [op("aten::mm", 0, 50, **{"Input Dims": [[8, 8], [8, 8]], "Input type": ["float", "float"]}),
              op("aten::relu", 60, 40)]
    report = analyze_path(write(tmp_path / "t.json", events, device=None), Options(peak_flops=1e12))
    assert report["step_time_ms"]["mean"] == 0.1
    assert report["breakdown"]["matmul"]["ms"] == 0.05 and report["breakdown"]["idle"]["ms"] == pytest.approx(0.01)
    assert note(report, "no_step_markers") == {"file": "t.json", "by": "whole_trace", "iterations": 1}
    assert report["device"]["peak_source"] == "user"


def test_events_with_wrong_types_or_negative_durations_give_warnings(tmp_path):
    events = gpu_step_events() + [{"ph": "X", "cat": "cpu_op", "name": "bad", "ts": "soon", "dur": 1},
                                  op("aten::neg", 5, -3)]
    report = analyze_path(write(tmp_path / "t.json", events), Options())
    assert report["step_time_ms"]["mean"] == 1.0
    assert note(report, "wrong_types_skipped")["events"] == 1
    assert note(report, "negative_durations") == {"events": 1}


def bad_inputs(tmp_path):
    real = gzip.decompress((ROOT / "tests" / "fixtures" / "h200_gpt_bf16_eager.pt.trace.json.gz").read_bytes())
    (tmp_path / "empty_dir").mkdir()
    cases = {
        "empty.json": b"",
        "notjson.json": b"this is not json",
        "cut_in_header.json": real[:300],
        "fake.json.gz": b"{\"traceEvents\": []}",
        "array.json": b"[1, 2, 3]",
        "noevents.json": b"{\"schemaVersion\": 1}",
        "nocomplete.json": json.dumps({"traceEvents": [{"ph": "i", "name": "x", "ts": 1}]}).encode(),
        "deep.json": b"[" * 100_000 + b"]" * 100_000,
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    return [*cases, "empty_dir", "missing.json"]


def test_bad_input_gets_one_line_and_status_2(tmp_path):
    for name in bad_inputs(tmp_path):
        status, stdout, stderr = analyze("analyze", tmp_path / name)
        assert status == 2, (name, stdout, stderr)
        assert stderr.startswith("error: ") and stderr.count("\n") == 1, (name, stderr)
        assert "Traceback" not in stderr


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_trace_cut_short_is_reported_on_what_was_read(tmp_path, gzipped):
    """A profiler killed while writing leaves half a file: its whole events are analysed, with a warning that
    says where it ends; the counted FLOPs are those of the ops read, fewer than the whole file's."""
    source = ROOT / "tests" / "fixtures" / "h200_gpt_bf16_eager.pt.trace.json.gz"
    data = gzip.compress(gzip.decompress(source.read_bytes())) if gzipped else gzip.decompress(source.read_bytes())
    cut = tmp_path / ("half.json.gz" if gzipped else "half.json")
    cut.write_bytes(data[: len(data) // 2])
    status, _, stderr = analyze("analyze", cut, "--json", tmp_path / "r.json")
    assert status == 0 and "Traceback" not in stderr
    report = json.loads((tmp_path / "r.json").read_text())
    (said,) = [w["numbers"] for w in report["warnings_data"] if w["code"] == "file_cut_short"]
    assert said["why"].startswith("the gzip stream ends early" if gzipped else "the file ends inside traceEvents "
                                  "(cut short, or damaged after byte ")
    assert 9000 < said["events"] < 11000 and 3.0e6 < said["bytes_read"] < 4.0e6
    whole = analyze_path(source, Options())
    assert 0 < report["mfu"]["flops_per_step"]["counted"] < whole["mfu"]["flops_per_step"]["counted"]
    invariants_hold(report)


def test_collectives_with_recorded_message_sizes(tmp_path):
    """torch records message sizes in record_param_comms; a CPU trace whose all-reduce runs on another thread
    while the training thread waits: that wait is exposed communication."""
    comm = {"In msg nelems": 1_000_000, "dtype": "Float", "Collective name": "allreduce"}
    events = [step(1, 0, 1000), op("aten::mm", 0, 300, **{"Input Dims": [[64, 64], [64, 64]],
                                                          "Input type": ["float", "float"]}),
              op("record_param_comms", 300, 20, **comm),
              op("gloo:all_reduce", 310, 500, tid=200, cat="user_annotation"),
              op("aten::add_", 850, 100)]
    report = analyze_path(write(tmp_path / "t.json", events, device=None), Options(peak_flops=1e12))
    assert report["communication"]["bytes_per_step"] == 4_000_000
    assert report["communication"]["calls_per_step"] == {"record_param_comms": 1.0}
    ms = {c: round(b["ms"], 6) for c, b in report["breakdown"].items()}
    # the training thread runs nothing from 320 to 810 µs while gloo works: 0.49 ms of exposed communication
    assert ms["communication"] == pytest.approx(0.02 + 0.49)
    assert report["communication"]["total_ms"] == pytest.approx(0.02 + 0.5 - 0.01)  # the union of the two spans


@pytest.mark.parametrize("kernels_recorded", [False, True])
def test_torch_compile_runtime_and_generated_code(tmp_path, kernels_recorded):
    """Dynamo's guards and wrappers are host overhead. Inductor's CPU kernels run inside the compiled graph's
    annotation: its own time is their compute, unless they were recorded as ops (cpp.enable_kernel_profile);
    then it is the wrapper's overhead and the kernel ops are the compute."""
    mm = {"Input Dims": [[64, 64], [64, 64]], "Input type": ["float", "float"]}
    events = [step(1, 0, 1000), op("TorchDynamo Cache Lookup", 10, 20),
              op("Torch-Compiled Region: 0/0", 40, 500), op("CompiledFunction", 50, 480),
              op("## Call CompiledFxGraph fabc ##", 60, 400, cat="user_annotation"), op("aten::mm", 100, 200, **mm)]
    if kernels_recorded:
        events.append(op("graph_0_cpp_fused_gelu_0", 320, 100))
    report = analyze_path(write(tmp_path / "t.json", events, device=None), Options(peak_flops=1e12))
    ms = {c: round(b["ms"], 6) for c, b in report["breakdown"].items()}
    compute, wrapper = (0.1, 0.1) if kernels_recorded else (0.2, 0.0)
    # host overhead: cache lookup 20 µs, the compiled region's own 20 µs, CompiledFunction's own 80 µs
    assert ms == {"matmul": 0.2, "other_compute": compute, "memory": 0.0, "communication": 0.0,
                  "data_loading": 0.0, "host_overhead": round(0.12 + wrapper, 6), "idle": 0.48, "unrecorded": 0.0}


def test_cpu_op_is_dispatch_only_when_its_children_do_the_work(tmp_path):
    """aten::linear's own time around addmm is dispatch; native_layer_norm_backward's own time around the
    aten::zero_ of its output is its kernel."""
    mm = {"Input Dims": [[8, 16], [16, 16], [16, 16]], "Input type": ["float", "float", "float"]}
    events = [step(1, 0, 1000), op("aten::native_layer_norm_backward", 0, 100), op("aten::zero_", 10, 1),
              op("aten::linear", 200, 100), op("aten::addmm", 205, 90, **mm), op("aten::t", 296, 2)]
    report = analyze_path(write(tmp_path / "t.json", events, device=None), Options(peak_flops=1e12))
    ms = {c: round(b["ms"], 6) for c, b in report["breakdown"].items()}
    assert ms == {"matmul": 0.09, "other_compute": 0.099, "memory": 0.001, "communication": 0.0,
                  "data_loading": 0.0, "host_overhead": 0.01, "idle": 0.8, "unrecorded": 0.0}


@pytest.mark.parametrize("metadata", [{"batch_size": "eight"}, [1, 2], "ours"])
def test_run_metadata_that_is_not_ours_is_ignored_with_a_warning(tmp_path, metadata):
    report = analyze_path(write(tmp_path / "t.json", gpu_step_events(), mfu_analyzer=metadata), Options())
    assert report["step_time_ms"]["mean"] == 1.0  # no F from metadata: the counted forward stands in
    assert report["mfu"]["analytic_from"] == "the forward's counted FLOPs (no backward ran)"
    assert "mfu_analyzer" in next(w for w in report["warnings"] if "run metadata" in w)
    assert note(report, "run_metadata_malformed")["error"].startswith("Expected")



def test_a_trace_of_device_events_alone_is_analysed_over_their_span(tmp_path):
    """A filtered export or another tool's conversion: no host events, no launches. The kernels give the window
    (it came out 0 ms long, and every share NaN)."""
    events = [kernel("igemm_fwd_gtcx_nhwc_bf16", 100, 300, 1), kernel("SubTensorOpWithScalar1d", 500, 100, 2),
              {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD", "pid": 1, "tid": 7, "ts": 700, "dur": 100,
               "args": {"bytes": 4096}}]
    report = analyze_path(write(tmp_path / "t.json", events, device="AMD Instinct MI210"), Options())
    assert report["step_time_ms"]["mean"] == pytest.approx(0.7)  # first kernel's start to the copy's end
    assert {c: b["ms"] for c, b in report["breakdown"].items() if b["ms"]} == pytest.approx(
        {"matmul": 0.3, "other_compute": 0.1, "memory": 0.1, "idle": 0.2})
    assert note(report, "no_host_ops") == {}
    invariants_hold(report)


def test_the_shared_device_only_class_keeps_its_kernels_and_shares(tmp_path):
    """The MI210 trace with everything but its kernels, copies and fills taken out."""
    folder = ROOT.parent / "shared" / "traces" / "mi210_gpu_only"
    if not folder.is_dir():
        pytest.skip("../shared/traces is absent")
    source = next(p for p in sorted(folder.iterdir()) if ".json" in p.name)
    trace = json.loads(gzip.open(source).read() if source.suffix == ".gz" else source.read_bytes())
    trace["traceEvents"] = [e for e in trace["traceEvents"] if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
    report = analyze_path(write_json(tmp_path / "t.json", trace), Options())
    whole = analyze_path(folder, Options())
    assert report["breakdown"]["matmul"]["ms"] == pytest.approx(whole["breakdown"]["matmul"]["ms"])  # 1.62 ms
    assert 0 < report["step_time_ms"]["mean"] <= whole["step_time_ms"]["mean"]
    invariants_hold(report)


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path
