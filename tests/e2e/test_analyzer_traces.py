"""The analyzer on real GPU traces from other projects, against the numbers their own tools report
(../shared/traces/README.md), and on a CPU trace of our own whose FLOPs are known by hand."""

import json

import pytest
from conftest import analyze, note, shared_trace

from profiler.pipeline import analyze_path, load_report
from profiler.settings import Options

# torch-tb-profiler's Overview: average step (µs) and shares of step time, in percent
TB_PLUGIN = {
    "tbplugin_resnet50_nw0": dict(step_us=177_592, kernel=55.51, memcpy=1.08, memset=0.05, dataloader=33.37),
    "tbplugin_resnet50_nw4": dict(step_us=141_068, kernel=70.28, memcpy=2.24, memset=0.07, dataloader=0.84),
}
HTA_IDLE = {"hta_a100_dlrm_rank3": 16.2, "hta_v100_ddp_ns": 2.6}


@pytest.mark.parametrize("name", TB_PLUGIN)
def test_step_time_and_shares_match_torch_tb_profiler(name):
    ref = TB_PLUGIN[name]
    report = analyze_path(shared_trace(name), Options())
    assert report["step_time_ms"]["mean"] * 1000 == pytest.approx(ref["step_us"], rel=0.005)
    share = {c: 100 * b["fraction"] for c, b in report["breakdown"].items()}
    # tb's Kernel covers every kernel; ours splits them into matmul / other compute / communication
    assert share["matmul"] + share["other_compute"] + share["communication"] == pytest.approx(ref["kernel"], abs=1)
    assert share["memory"] == pytest.approx(ref["memcpy"] + ref["memset"], abs=1)
    assert share["data_loading"] == pytest.approx(ref["dataloader"], abs=1)
    assert sum(share.values()) == pytest.approx(100, abs=1e-6)
    assert report["source"]["steps"] == [5, 6, 7, 8, 9, 10]
    assert report["device"] == {"name": "Tesla V100-DGXS-32GB", "kind": "cuda", "dtype": "float32",
                                "peak_flops": 125e12, "peak_flops_run": 15.7e12, "peak_source": "table",
                                "peak_note": None, "bandwidth": 0.9e12, "bandwidth_source": "table",
                                "link_bandwidth": 15.75e9, "bandwidth_note": "Tesla V100-DGXS-32GB: 0.9 TB/s (data "
                                "sheet), host link PCIe 3.0 x16 15.8 GB/s a direction"}


@pytest.mark.parametrize("name", HTA_IDLE)
def test_device_busy_fraction_matches_holistic_trace_analysis(name):
    report = analyze_path(shared_trace(name), Options())
    busy = 100 * report["device_utilization"]["busy_fraction"]
    assert busy == pytest.approx(100 - HTA_IDLE[name], abs=2)


def test_trace_without_shapes_says_what_it_assumed():
    """The V100 DDP trace recorded no input shapes or types: no FLOPs, no dtype; P_run is for float32,
    and the report says so instead of naming a dtype the trace does not show."""
    report = analyze_path(shared_trace("hta_v100_ddp_ns"), Options())
    assert report["device"]["dtype"] is None and report["device"]["peak_flops_run"] == 15.7e12
    assert note(report, "no_matmul_dtype") == {}
    assert report["mfu"]["counted"] is None and report["ledger_unit"] == "step_time"
    # the time ledger: fp32 cuDNN and sgemm kernels on a V100, whose tensor cores do 8x float32 in float16
    first = report["bottlenecks"][0]
    assert first["cause"] == "precision" and "volta_sgemm_64x64_nt" in first["evidence"]
    assert "GradScaler" in first["fix"]


def test_resnet_convolutions_are_matmul_with_counted_flops():
    report = analyze_path(shared_trace("tbplugin_resnet50_nw0"), Options())
    convs = {op["name"]: op for op in report["top_ops"] if "conv" in op["name"]}
    assert set(convs) == {"aten::convolution", "aten::cudnn_convolution_backward"}
    # ResNet-50 forward at 224²: 4.1 GMAC per image, so 2 · 4.1e9 · 32 ≈ 262 GFLOP; backward twice that
    assert convs["aten::convolution"]["flops"] == pytest.approx(2 * 4.1e9 * 32, rel=0.05)
    backward, forward = convs["aten::cudnn_convolution_backward"]["flops"], convs["aten::convolution"]["flops"]
    assert backward == pytest.approx(2 * forward, rel=0.02)
    assert all(op["category"] == "matmul" and 5 < op["tflops_per_s"] < 15.7 for op in convs.values())
    assert report["classification_ms"]["unclassified"] == 0


def test_cpu_trace_counts_the_flops_computed_by_hand(tiny_run):
    out, _ = tiny_run
    report = analyze_path(out, Options())
    # n_layer=2, n_head=2, n_embd=32, block_size=32, batch 4 (128 tokens), vocab 256, no bias
    C, T, B, L, V = 32, 32, 4, 2, 256
    weights = L * (C * 3 * C + C * C + C * 4 * C + 4 * C * C) + C * V  # block matmuls and lm_head
    attention = L * 3 * 4 * B * T * T * C  # QK^T and PV, forward (2 of them) and backward (4)
    hand = 6 * B * T * weights + attention
    assert report["mfu"]["flops_per_step"]["counted"] == pytest.approx(hand, rel=0.01)
    assert report["source"]["steps"] == [3, 4, 5]
    total = sum(b["ms"] for b in report["breakdown"].values())
    assert total == pytest.approx(report["step_time_ms"]["mean"], rel=1e-9)
    for step in report["per_step"]:
        assert sum(step[c] for c in report["breakdown"]) == pytest.approx(step["ms"], rel=1e-9)
    assert report["breakdown"]["matmul"]["fraction"] > 0.05  # tiny matmuls: most time is elsewhere
    assert report["breakdown"]["data_loading"]["ms"] > 0
    assert report["device"]["kind"] == "cpu" and report["device"]["peak_source"] == "measured"
    assert report["device"]["peak_note"].startswith("measured: best of up to 5 GEMMs")  # how, and when
    assert report["device_utilization"] is None
    analytic = report["mfu"]["flops_per_step"]["analytic"]
    assert report["mfu"]["analytic"] / report["mfu"]["counted"] == pytest.approx(analytic / hand, rel=1e-6)


def test_cli_writes_the_json_report(tiny_run, tmp_path):
    out, _ = tiny_run
    status, stdout, stderr = analyze("analyze", out, "--json", tmp_path / "r.json")
    assert status == 0, stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["schema"] == "mfu-report/1"
    assert set(report) >= {"source", "device", "step_time_ms", "device_utilization", "mfu", "breakdown", "ledger",
                           "bottlenecks", "top_ops", "warnings"}
    assert "MFU: " in stdout and "matmul" in stdout and "aten::mm" not in stdout  # one screen: no op table
    assert max(len(line) for line in stdout.splitlines()[1:]) <= 80
    status, verbose, _ = analyze("analyze", out, "-v")
    assert status == 0 and "aten::mm" in verbose and len(verbose.splitlines()) > len(stdout.splitlines())


def test_colour_only_on_a_terminal(tiny_run):
    from profiler.report.terminal import for_terminal

    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    report = load_report(tiny_run[0], Options())
    assert "\033[" not in for_terminal(report, Stream(False))
    coloured = for_terminal(report, Stream(True))
    assert "\033[1mMFU: " in coloured and "\033[31m" in coloured
