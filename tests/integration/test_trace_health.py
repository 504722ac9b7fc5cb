"""Trace health: what a trace lost or never recorded is said first, and lost device work is never called idle.

A shared GPU trace with a fifth of its kernels removed (their launches kept, as a profiler that dropped records
leaves it), CUDA graph replays with and without their kernels, a stream capture, Kineto's own log of a full
buffer, and the other writers' layouts: torch_npu's JSON array with string timestamps, Intel XPU with XCCL.
"""

import gzip
import json

import pytest
from conftest import note, shared_trace
from synth import kernel, launch, npu_steps, op, step, write

from profiler.pipeline import analyze_path, load_report
from profiler.report.document import html_page, markdown
from profiler.settings import Options
from profiler.trace.load import load_trace, trace_files

GEMM = "ampere_bf16_s16816gemm_bf16_128x128_ldg8_f2f_stages_64x3_nn"
ADD = "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float> >(int)"


def dropped(src, dst, every: int = 5) -> tuple[int, float]:
    """The trace with every `every`-th kernel event removed: how many, and their time (µs)."""
    data = json.loads(gzip.decompress(src.read_bytes()) if src.name.endswith(".gz") else src.read_bytes())
    events = data["traceEvents"]
    kernels = [i for i, e in enumerate(events) if e.get("cat", "").lower() == "kernel"]
    gone = set(kernels[::every])
    data["traceEvents"] = [e for i, e in enumerate(events) if i not in gone]
    dst.write_text(json.dumps(data))
    return len(gone), sum(events[i]["dur"] for i in gone)


@pytest.mark.parametrize("name, gone, launches", [
    ("tbplugin_resnet50_nw0", 1755, 8772),  # shapes recorded, one stream
    ("hta_v100_ddp_ns", 870, 4350),  # no shapes, DDP's all-reduces on a second stream
])
def test_dropped_kernels_are_counted_and_their_time_is_unrecorded_not_idle(tmp_path, name, gone, launches):
    src = shared_trace(name)
    whole = analyze_path(src, Options(measure=False))
    assert dropped(src, tmp_path / "dropped.json")[0] == gone
    cut = analyze_path(tmp_path / "dropped.json", Options(measure=False))
    assert note(cut, "kernels_not_recorded") == {"file": "dropped.json", "launches": gone, "of_launches": launches}
    assert note(whole, "kernels_not_recorded") is None and whole["breakdown"]["unrecorded"]["ms"] == 0
    assert cut["health"]["lost"][0].startswith(f"dropped.json: {gone:,} of {launches:,} kernel launches have no")
    before, after = whole["breakdown"], cut["breakdown"]
    lost_ms = sum(before[c]["ms"] - after[c]["ms"] for c in ("matmul", "other_compute", "memory", "communication"))
    # the kernels' own time comes back as unrecorded (within 5%), and no idle or host time is made of it
    assert after["unrecorded"]["ms"] == pytest.approx(lost_ms, rel=0.05)
    assert abs(after["idle"]["ms"] - before["idle"]["ms"]) < 0.1
    assert abs(after["host_overhead"]["ms"] - before["host_overhead"]["ms"]) < 0.05 * lost_ms
    assert "unrecorded" in {e["cause"] for e in cut["ledger"]}


def graph_steps(with_kernels: bool, steps: int = 4) -> list:
    """Steps of 1,000 µs: a CUDA graph launch at 10 µs (its replay: a GEMM 100-400 µs and an add 400-500 µs,
    recorded or not) and an eager add kernel at 700-750 µs."""
    events = []
    for i in range(steps):
        t, c = 1000 * i, 10 * i
        events += [step(i + 1, t, 1000), op("aten::relu", t + 600, 30), launch(t + 605, 5, c + 2),
                   kernel(ADD, t + 700, 50, c + 2), launch(t + 10, 20, c + 1, "cudaGraphLaunch")]
        if with_kernels:
            events += [kernel(GEMM, t + 100, 300, c + 1, **{"graph id": 3, "graph node id": 7}),
                       kernel(ADD, t + 400, 100, c + 1, **{"graph id": 3, "graph node id": 8})]
    return events


def test_a_graph_replay_with_its_kernels_is_attributed_by_name(tmp_path):
    report = analyze_path(write(tmp_path / "t.json", graph_steps(True)), Options())
    assert note(report, "graph_replays") == {"file": "t.json", "launches": 4, "kernels": 8, "without_kernels": 0}
    b = report["breakdown"]
    assert (b["matmul"]["ms"], b["unrecorded"]["ms"]) == (pytest.approx(0.3), 0.0)
    assert note(report, "kernels_not_recorded") is None
    overhead = next(x for x in report["bottlenecks"] if x["cause"] == "small_batch")
    assert "1.0 CUDA graph launches per step" in overhead["evidence"]
    assert overhead["fix"].endswith("; capture more of the step in the CUDA graphs it already replays")


def test_the_ops_a_graph_replays_cannot_contradict_the_model_flops(tmp_path):
    events = graph_steps(False)
    for i in range(4):  # an eager matmul the host records, beside the graph's that it does not
        events += [op("aten::mm", 1000 * i + 640, 20, **{"Input Dims": [[64, 64], [64, 64]],
                                                         "Input type": ["c10::BFloat16", "c10::BFloat16"]}),
                   launch(1000 * i + 645, 5, 10 * i + 5), kernel(GEMM, 1000 * i + 760, 10, 10 * i + 5)]
    report = analyze_path(write(tmp_path / "t.json", events), Options(flops_per_step=1e11))
    assert report["mfu"]["flops_per_step"] == {**report["mfu"]["flops_per_step"], "analytic": 1e11,
                                               "counted": 2 * 64 ** 3}
    assert note(report, "model_flops_contradicted") is None and report["mfu"]["analytic_from"] == "--flops-per-step"


def test_a_graph_replay_without_its_kernels_is_one_unrecorded_block(tmp_path):
    report = analyze_path(write(tmp_path / "t.json", graph_steps(False)), Options())
    assert note(report, "graph_replays") == {"file": "t.json", "launches": 4, "kernels": 0, "without_kernels": 4}
    b = report["breakdown"]
    # from the launch (10 µs) to the next device work (700 µs): the replay, not idle
    assert (b["unrecorded"]["ms"], b["idle"]["ms"]) == (pytest.approx(0.69), pytest.approx(0.01 + 0.25))
    lost = next(x for x in report["bottlenecks"] if x["cause"] == "unrecorded")
    assert "1.0 CUDA graph launches per step" in lost["evidence"] and "graph" in lost["fix"]
    overhead = next(x for x in report["bottlenecks"] if x["cause"] == "small_batch")
    assert overhead["fix"].endswith("; capture more of the step in the CUDA graphs it already replays")
    assert report["health"]["lost"] == [
        "t.json: 4 CUDA graph launches replayed 0 recorded kernels; 4 recorded none: their replay is counted as "
        "unrecorded device work, not idle"]


def test_launches_during_a_stream_capture_lose_nothing(tmp_path):
    events = graph_steps(True) + [launch(5, 1, 900, "cudaStreamBeginCapture"), launch(7, 1, 901),
                                  launch(9, 1, 902, "cudaStreamEndCapture"), launch(1020, 1, 903)]
    report = analyze_path(write(tmp_path / "t.json", events), Options())
    assert note(report, "kernels_not_recorded") == {"file": "t.json", "launches": 1, "of_launches": 6}


def test_a_capture_the_trace_opens_inside_closes_nothing_after_it(tmp_path):
    events = graph_steps(True) + [launch(1, 1, 899, "cudaStreamEndCapture"),  # its begin before the trace
                                  launch(5, 1, 900, "cudaStreamBeginCapture"), launch(7, 1, 901), launch(8, 1, 902),
                                  launch(9, 1, 903, "cudaStreamEndCapture")]
    report = analyze_path(write(tmp_path / "t.json", events), Options())
    assert note(report, "kernels_not_recorded") is None and report["breakdown"]["unrecorded"]["ms"] == 0


def test_the_work_a_replay_lost_holds_the_model_flops_the_matmuls_do_not_show(tmp_path):
    # 0.69 ms/step unrecorded (the replays); F at P needs 0.5 ms of it: an MFU ledger, not "implausible FLOPs"
    flops = 0.5e-3 * 989e12
    report = analyze_path(write(tmp_path / "t.json", graph_steps(False)), Options(flops_per_step=flops))
    assert "ledger_unit" not in report and report["mfu"]["analytic"] == pytest.approx(0.5)
    points = {e["cause"]: e["points"] for e in report["ledger"]}
    assert points["unrecorded"] == pytest.approx(19.0) and note(report, "implausible_flops") is None


def test_kinetos_own_log_of_a_full_buffer_is_said(tmp_path):
    log = ["Exceeded max GPU buffer count (64 >= 64) - terminating tracing", "unrelated"]
    report = analyze_path(write(tmp_path / "t.json", graph_steps(True), WARNING=log), Options())
    assert note(report, "buffer_full") == {"messages": 1, "first": log[0]}
    assert report["health"]["lost"][0].startswith("the trace's own log says the profiler's device buffers filled")


def test_what_a_trace_lacks_is_named_with_the_argument_that_records_it(tmp_path):
    events = [op("aten::mm", 10, 50, **{"Input Dims": [[4, 4], [4, 4]]}), launch(20, 5, 1), kernel(GEMM, 30, 40, 1),
              kernel(ADD, -500, 10, 99)]  # a kernel before any host event, its launch not recorded
    report = analyze_path(write(tmp_path / "t.json", events), Options())
    assert report["health"]["recorded"] == {"shapes": True, "dtypes": False, "memory": False, "stacks": False,
                                            "device_events": True, "step_markers": False}
    assert [(x["what"], x["record_with"]) for x in report["health"]["lacks"]] == [
        ("the inputs' dtypes", "record_shapes=True on torch 1.10 or later"), ("memory", "profile_memory=True"),
        ("Python stacks", "with_stack=True"),
        ("step markers", "schedule=torch.profiler.schedule(...) with prof.step() each iteration")]
    assert note(report, "device_events_outside_host") == {"file": "t.json", "events": 1}
    assert list(report)[:4] == ["schema", "source", "device", "health"]


def test_a_torch_npu_trace_in_the_array_format_is_read(tmp_path):
    output = tmp_path / "worker_1_ascend_pt" / "ASCEND_PROFILER_OUTPUT"
    output.mkdir(parents=True)
    path = npu_steps(output / "trace_view.json")
    (output / "profiler_info.json").write_text("{}")  # the other files torch_npu writes beside it
    assert trace_files(tmp_path) == [path]
    trace = load_trace(path)
    assert trace.backend == "npu" and trace.start[0] == 0.0  # string timestamps, from the first event
    report = analyze_path(path, Options(peak_flops=300e12))
    b = {c: round(v["ms"], 6) for c, v in report["breakdown"].items()}
    # the hardware's tasks are the device's, CANN's calls the launches (linked by connection_id), the
    # communication process's hcom_ op once, and "Overlap Analysis" not at all: 0.6 ms of device work a step
    assert (b["matmul"], b["other_compute"], b["communication"]) == (0.3, 0.1, 0.2)
    assert report["classification_ms"]["by_op"] == pytest.approx(0.4)
    # its shapes and dtypes written as one string each: the matmul's FLOPs are counted, in bfloat16
    assert report["mfu"]["flops_per_step"]["counted"] == 2 * 64 ** 3 and report["device"]["dtype"] == "bfloat16"
    assert report["health"]["recorded"]["shapes"] and report["health"]["recorded"]["dtypes"]
    assert report["device"]["kind"] == "npu" and report["health"]["lost"] == []


def test_an_xpu_trace_names_its_device_and_its_xccl_collectives(tmp_path):
    events = []
    for i in range(3):
        t, c = 1000 * i, 10 * i
        events += [step(i + 1, t, 1000), op("aten::mm", t + 10, 40), launch(t + 20, 5, c + 1, "urEnqueueKernelLaunch",
                                                                         cat="xpu_runtime"),
                   kernel("gemm_kernel", t + 100, 300, c + 1), op("xccl:all_reduce", t + 60, 20),
                   launch(t + 65, 5, c + 2, "urEnqueueKernelLaunch", cat="xpu_runtime"),
                   kernel("oneccl_allreduce_ll<float>", t + 400, 200, c + 2),
                   launch(t + 70, 5, c + 3, "urEnqueueKernelLaunch", cat="xpu_runtime")]  # its kernel lost
    report = analyze_path(write(tmp_path / "t.json", events, device="Intel(R) Data Center GPU Max 1550"), Options())
    assert report["device"]["kind"] == "xpu" and report["device"]["peak_flops"] == 832e12
    assert report["device"]["bandwidth"] == pytest.approx(3.2768e12)
    b = report["breakdown"]
    assert (b["matmul"]["ms"], b["communication"]["ms"]) == (pytest.approx(0.3), pytest.approx(0.2))
    assert note(report, "kernels_not_recorded") == {"file": "t.json", "launches": 3, "of_launches": 9}


def test_the_markdown_and_html_open_with_the_health_and_do_not_repeat_it(tmp_path):
    report = load_report(write(tmp_path / "t.json", graph_steps(False)), Options())
    text = markdown(report)
    lost = report.health.lost[0]
    assert text.index("## Trace health") < text.index("## Summary") and text.count(lost) == 1
    assert f"- Lost: {lost}" in text and "- No memory: no memory plan or batch headroom (record with " \
                                         "`profile_memory=True`)" in text
    page = html_page(report)
    assert page.index("Trace health") < page.index("Summary") and page.count("4 recorded none") == 1
