"""The step timeline of a synthetic trace, through the per-file stage."""

import json

from synth import gpu_trace

from profiler.analysis.per_file import analyze_file
from profiler.analysis.timeline import timeline_json
from profiler.trace.classify import CATEGORIES


def test_one_step_as_lanes_of_nested_categorised_spans(tmp_path):
    t = analyze_file(gpu_trace(tmp_path), timeline=True).timeline
    assert t.step == 3 and t.duration_us == 200.0
    assert t.lanes == ["host thread 100", "stream 7 (device 0)"]
    spans = {t.names[n]: (lane, depth, start, dur, CATEGORIES[c], flops)
             for n, lane, depth, start, dur, c, flops
             in zip(t.name, t.lane, t.depth, t.start, t.dur, t.category, t.flops)}
    assert "aten::relu" not in spans  # other steps' ops are not in this step
    assert spans["ProfilerStep#3"] == (0, 0, 0.0, 200.0, "idle", 0.0)
    assert spans["aten::mm"] == (0, 1, 10.0, 50.0, "matmul", 2 * 64 * 128 * 256)
    assert spans["aten::copy_"][:5] == (0, 1, 70.0, 20.0, "memory")
    assert spans["sm90_xmma_gemm_f32f32"][:5] == (1, 0, 30.0, 50.0, "matmul")
    assert spans["Memcpy HtoD (Pageable -> Device)"][:5] == (1, 0, 100.0, 20.0, "memory")
    launches = [d for n, d, lane in zip(t.name, t.depth, t.lane) if t.names[n] == "cudaLaunchKernel"]
    assert launches == [2, 2]  # one below the op that made each
    mm = next(i for i, n in enumerate(t.name) if t.names[n] == "aten::mm")
    assert t.shapes == {mm: "[[64, 128], [128, 256]]"}


def test_the_timeline_json_is_columnar_and_only_made_when_asked(tmp_path):
    path = gpu_trace(tmp_path)
    assert analyze_file(path).timeline is None
    data = json.loads(json.dumps(timeline_json(analyze_file(path, timeline=True).timeline)))
    assert data["schema"] == "mfu-timeline/1" and data["categories"] == list(CATEGORIES)
    assert {len(v) for v in data["spans"].values()} == {7}
    assert all(0 <= s and s + d <= data["duration_us"] for s, d in zip(data["spans"]["start"], data["spans"]["dur"]))
