"""One analysed step as lanes of coloured spans, for the step timeline of the TensorBoard dashboard.

Built from the arrays the analysis already has (rows, links, step windows, categories), for the step of
median length: the typical step, not the warm-up or a stall. Host threads come first, one lane each with
its ops nested by depth; then each device stream. A span's colour is the breakdown category of what it did:
a kernel's is the one the breakdown gave it, a host op's the category it inherits (matmul, memory, data
loading, communication) or else host overhead, the host's work of launching and dispatching.
"""


import numpy as np

from profiler.analysis import breakdown
from profiler.analysis.records import Timeline
from profiler.trace import classify
from profiler.trace.kinds import ANNOTATION, OP, PYTHON, RUNTIME
from profiler.trace.links import Links
from profiler.trace.load import Trace
from profiler.trace.steps import Steps

HOST_KINDS = (OP, ANNOTATION, PYTHON, RUNTIME)


def median_step(steps: Steps) -> int:
    """Index of the step whose length is the median's (the first such step)."""
    duration = steps.duration
    return int(np.argsort(duration, kind="stable")[(len(duration) - 1) // 2])


def step_timeline(trace: Trace, links: Links, steps: Steps, bd: breakdown.Breakdown) -> Timeline | None:
    """The median step's host and device spans, clipped to its window; None without steps."""
    if not len(steps.ids):
        return None
    k = median_step(steps)
    w0, w1 = float(steps.start[k]), float(steps.end[k])
    host = np.isin(trace.kind, HOST_KINDS)
    device = np.zeros(len(trace), bool)
    device[links.device] = True
    rows = np.flatnonzero((host | device) & (trace.start < w1) & (trace.end > w0))
    rows = rows[np.lexsort((trace.start[rows], ~device[rows], trace.thread[rows]))]
    category = _categories(trace, links, bd, rows, device)
    depth = _depths(links, rows, device)
    threads, lane = np.unique(trace.thread[rows], return_inverse=True)
    on_device = np.array([device[rows][lane == i].any() for i in range(len(threads))], bool)
    order = np.argsort(on_device, kind="stable")  # host threads first, then device streams, each by thread id
    lane = np.argsort(order)[lane]
    labels = [_label(trace.threads[t] if t < len(trace.threads) else (0, t), d)
              for t, d in zip(threads[order], on_device[order])]
    used, name = np.unique(trace.name[rows], return_inverse=True)
    start = np.maximum(trace.start[rows], w0)
    ops = np.flatnonzero(trace.kind[rows] == OP)
    shapes = {int(i): str(s.dims) for i, s in zip(ops, trace.shapes(rows[ops])) if s.dims and any(s.dims)}
    return Timeline(step=int(steps.ids[k]), duration_us=w1 - w0, lanes=labels, names=[trace.names[i] for i in used],
                    lane=lane, depth=depth, start=start - w0, dur=np.minimum(trace.end[rows], w1) - start, name=name,
                    category=category, flops=links.flops[rows], shapes=shapes)


def _categories(trace: Trace, links: Links, bd: breakdown.Breakdown, rows: np.ndarray,
                device: np.ndarray) -> np.ndarray:
    """The breakdown's category of each kernel; for host spans the exclusive category the CPU breakdown gave
    them, else the one their op inherits (or a Python frame's: preparing data, waiting), else host overhead."""
    out = np.full(len(rows), classify.HOST_OVERHEAD)
    inherited = links.category[rows]
    out[inherited >= 0] = inherited[inherited >= 0]
    out[links.is_step[rows]] = classify.IDLE  # the step's own span: what no op inside it covers
    python = trace.kind[rows] == PYTHON  # the frames' names judged as the breakdown judges them, once per name
    out[python & trace.by_name(classify.DATA_PREP_PYTHON.search)[rows]] = classify.DATA_LOADING
    out[python & trace.by_name(classify.WAITING_PYTHON.search)[rows]] = classify.IDLE
    if len(bd.row_category) == len(trace):
        own = bd.row_category[rows]
        out[own >= 0] = own[own >= 0]
    kernel_category = np.full(len(trace), -1)
    kernel_category[links.device] = bd.device_category
    on_device = device[rows]
    out[on_device] = kernel_category[rows[on_device]]
    return out


def _depths(links: Links, rows: np.ndarray, device: np.ndarray) -> np.ndarray:
    """Nesting depth of each host span (runtime calls one below the op that made them); device spans 0."""
    parent = np.where(links.parent[rows] >= 0, links.parent[rows], links.enclosing_op[rows])
    depth = np.zeros(len(rows), np.int32)
    while (parent >= 0).any():
        up = parent >= 0
        depth[up] += 1
        parent[up] = links.parent[parent[up]]
    depth[device[rows]] = 0
    return depth


def _label(pid_tid: tuple, on_device: bool) -> str:
    pid, tid = pid_tid
    stream = tid if str(tid).startswith("stream") else f"stream {tid}"
    return f"{stream} (device {pid})" if on_device else f"host thread {tid}"


def timeline_json(t: Timeline) -> dict:
    return {"schema": "mfu-timeline/1", "step": t.step, "duration_us": t.duration_us, "lanes": t.lanes,
            "categories": list(classify.CATEGORIES), "names": t.names,
            "spans": {"lane": t.lane.tolist(), "depth": t.depth.tolist(), "start": np.round(t.start, 3).tolist(),
                      "dur": np.round(t.dur, 3).tolist(), "name": t.name.tolist(), "category": t.category.tolist(),
                      "flops": t.flops.tolist()},
            "shapes": {str(i): s for i, s in t.shapes.items()}}
