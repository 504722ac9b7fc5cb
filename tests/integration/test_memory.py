"""Memory per step from the allocator's events: levels, transients and the headroom, checked by hand on small
traces in both of Kineto's spellings (totals, and Bytes alone) and on a shared H100 trace."""

import gzip
import json

import pytest
from conftest import invariants_hold, note, shared_trace
from synth import kernel, launch, memory, op, step, write

from profiler.pipeline import analyze_path
from profiler.settings import MEMORY_USABLE, Options

# (ts, bytes, allocated after, reserved after) on cuda:0. Before the steps 1,000 B persist; step 1 (100-1,100)
# rises to 2,300 with 4,096 reserved, step 2 (1,100-2,100) to 3,000
CUDA0 = [(50, 1000, 1000, 2048), (200, 500, 1500, 2048), (300, 800, 2300, 4096), (400, -800, 1500, 4096),
         (500, -500, 1000, 4096), (1200, 2000, 3000, 4096), (1300, -2000, 1000, 4096)]


def events(totals=True, kernel_device=0):
    out = [op("aten::empty", 0, 10)]
    for n, start in ((1, 100), (2, 1100)):
        out += [step(n, start, 1000), op("aten::mm", start + 10, 50), launch(start + 20, 10, n),
                kernel("gemm", start + 100, 500, n, device=kernel_device)]
    out += [memory(ts, b, a if totals else None, r) for ts, b, a, r in CUDA0]
    out += [memory(1250, 9999, 9999 if totals else None, 9999, device_id=1),  # another GPU of the process
            memory(1260, 10**9, 10**9 if totals else None, device_type=0, device_id=-1)]  # a host tensor
    return out


def test_levels_transients_and_headroom_from_the_allocators_totals(tmp_path):
    report = analyze_path(write(tmp_path / "t.json", events()), Options())
    m = report["memory"]
    assert (m["device"], m["source"]) == ("cuda:0", "totals")
    # each figure its worst step's: peaks 2,300 and 3,000 over a start of 1,000; 4,096 - 2,300 free at step 1's
    assert (m["peak_allocated_bytes"], m["peak_reserved_bytes"], m["at_step_start_bytes"],
            m["transient_peak_bytes"], m["reserved_free_bytes"]) == (3000, 4096, 1000, 2000, 1796)
    assert (m["capacity_bytes"], m["capacity_source"]) == (80e9, "device table")  # "H100 80GB" in its name
    assert m["batch_headroom"] == pytest.approx((80e9 * MEMORY_USABLE - 1000) / 2000)
    assert any(c.startswith("memory: each figure is the worst") for c in report["conventions"])
    invariants_hold(report, ledger_required=False)
    small = analyze_path(write(tmp_path / "t.json", events()), Options(memory_capacity=10_000))
    assert small["memory"]["capacity_source"] == "--memory-capacity"
    assert small["memory"]["batch_headroom"] == pytest.approx((10_000 * MEMORY_USABLE - 1000) / 2000)


def test_bytes_alone_give_the_transient_and_leave_the_level_unknown(tmp_path):
    m = analyze_path(write(tmp_path / "t.json", events(totals=False)), Options())["memory"]
    assert (m["source"], m["transient_peak_bytes"]) == ("bytes only", 2000)  # +500 +800 in step 1, +2,000 in 2
    assert m["peak_allocated_bytes"] is m["at_step_start_bytes"] is m["batch_headroom"] is None


def test_the_device_the_kernels_ran_on_is_the_one_described(tmp_path):
    m = analyze_path(write(tmp_path / "t.json", events(kernel_device=1)), Options())["memory"]
    assert m["device"] == "cuda:1" and m["peak_allocated_bytes"] == 9999 and m["at_step_start_bytes"] == 0


def test_a_cpu_trace_describes_the_cpu_which_reserves_nothing(tmp_path):
    cpu = {"device_type": 0, "device_id": -1}
    trace = [op("aten::empty", 0, 10), step(1, 100, 1000), op("aten::mm", 110, 500), step(2, 1100, 1000),
             op("aten::mm", 1110, 500), memory(5, 4096, 4096, **cpu), memory(120, 8192, 12288, **cpu),
             memory(600, -8192, 4096, **cpu)]
    m = analyze_path(write(tmp_path / "t.json", trace, device=None), Options(memory_capacity=1e6))["memory"]
    # the profiler counts the CPU's allocations from its own start: a transient, and no level (torch 2.13 left a
    # tensor made before profiling out of `Total Allocated`)
    assert (m["device"], m["source"], m["transient_peak_bytes"]) == ("cpu", "cpu", 8192)
    assert m["peak_allocated_bytes"] is m["at_step_start_bytes"] is m["peak_reserved_bytes"] is None


def test_a_trace_without_memory_events_says_how_to_record_them(tmp_path):
    trace = [step(1, 0, 1000), op("aten::mm", 10, 500)]
    report = analyze_path(write(tmp_path / "t.json", trace, device=None), Options())
    assert report["memory"] is None and note(report, "no_memory_events") == {}


def test_h100_timesformer_memory_by_hand():
    path = shared_trace("h100_timesformer_infer")
    trace = json.loads(gzip.open(path).read())["traceEvents"]
    host_step = next(e for e in trace if e["name"].startswith("ProfilerStep") and e["cat"] == "user_annotation")
    cuda = sorted((e for e in trace if e["name"] == "[memory]" and e["args"]["Device Type"] == 1),
                  key=lambda e: e["ts"])
    assert host_step["ts"] < cuda[0]["ts"]  # every CUDA event is inside the step: its start is before the first
    start = cuda[0]["args"]["Total Allocated"] - cuda[0]["args"]["Bytes"]
    peak = max(e["args"]["Total Allocated"] for e in cuda)
    reserved = max(e["args"]["Total Reserved"] for e in cuda)
    m = analyze_path(path, Options())["memory"]
    assert (m["at_step_start_bytes"], m["peak_allocated_bytes"], m["peak_reserved_bytes"]) == (start, peak, reserved)
    assert (start, peak, reserved) == (287_697_408, 4_490_752_000, 4_588_568_576)
    assert m["transient_peak_bytes"] == peak - start
    assert (m["capacity_bytes"], m["capacity_source"]) == (85_018_279_936, "deviceProperties")
    assert m["batch_headroom"] == pytest.approx((85_018_279_936 * MEMORY_USABLE - start) / (peak - start))


def test_bytes_only_resnet_traces_give_a_transient_and_no_level():
    for name in ("tbplugin_resnet50_nw0", "tbplugin_resnet50_nw4"):
        m = analyze_path(shared_trace(name), Options())["memory"]
        assert m["source"] == "bytes only" and m["at_step_start_bytes"] is None and m["batch_headroom"] is None
        assert 2.7e9 < m["transient_peak_bytes"] < 2.9e9 and m["capacity_bytes"] == 34_084_028_416


def test_the_median_steps_memory_over_time_is_in_the_report_and_its_charts(tmp_path):
    from profiler.pipeline import load_report
    from profiler.report.document import html_page

    report = analyze_path(write(tmp_path / "t.json", events()), Options())
    curve = report["memory"]["median_step"]
    assert curve["step"] == 1 and len(curve["t_ms"]) == 300 and curve["relative"] is False  # 1,000 and 1,000 µs
    # the slices' highest levels: the start, the peak, and the level the step ends with
    assert (curve["allocated_bytes"][0], max(curve["allocated_bytes"]), curve["allocated_bytes"][-1]) == (
        1000, 2300, 1000)
    assert max(curve["reserved_bytes"]) == 4096 and curve["t_ms"][:2] == [0.0, pytest.approx(1 / 300)]
    page = html_page(load_report(write(tmp_path / "t.json", events()), Options()))
    assert 'id="chart-memory"' in page and "Memory of cuda:0 over the step" in page
