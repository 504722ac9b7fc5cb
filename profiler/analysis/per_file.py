"""One trace file through the stages: load → links → steps → FLOPs → breakdown, into plain per-step arrays."""

from collections import defaultdict

import numpy as np

from profiler.analysis import breakdown, health
from profiler.analysis.memory import step_memory
from profiler.analysis.records import (
    KernelClassification,
    OpKey,
    OpStats,
    StepTable,
    TraceAnalysis,
    by_name,
    merged,
    milliseconds,
)
from profiler.analysis.signals import measure
from profiler.analysis.timeline import step_timeline
from profiler.facts import Note
from profiler.settings import CLOCK_SKEW_SHARE, SHAPE_TEXT_CHARS, SHORT_GAP_US
from profiler.trace import classify
from profiler.trace.dtypes import BYTES_OF_INPUT_TYPE, NAME_OF_INPUT_TYPE
from profiler.trace.kinds import MEMCPY, MEMSET, OP
from profiler.trace.links import Links, link
from profiler.trace.load import Trace, load_trace
from profiler.trace.split import ranges_for
from profiler.trace.steps import Steps, find_steps

STAGES = ("read", "links", "steps", "breakdown", "ops", "signals")  # each reported to `done` when finished


def analyze_file(path, short_gap_us: float = SHORT_GAP_US, timeline: bool = False, done=lambda stage: None,
                 readers: int = 1) -> TraceAnalysis:
    """The per-file stages; the file read by `readers` processes at once where it is large (trace/split.py)."""
    trace = load_trace(path, ranges_for(path, readers))
    done("read")
    warnings = list(trace.warnings)
    links, found = link(trace)
    warnings += found
    done("links")
    steps, found = find_steps(trace, links)
    warnings += found
    done("steps")
    gpu = len(links.device) > 0
    warnings += missing_parts(trace, links)
    lost, found = health.lost_device_work(trace, links)
    warnings += found
    bd = (breakdown.gpu_breakdown(trace, links, steps, short_gap_us, lost.spans) if gpu else
          breakdown.cpu_breakdown(trace, links, steps, short_gap_us))
    done("breakdown")
    counted = np.flatnonzero((links.flops > 0) & (bd.row_step >= 0))
    in_phase = lambda mask: np.bincount(bd.row_step[counted], weights=links.flops[counted] * mask[counted],
                                        minlength=len(steps.ids))
    flops = in_phase(np.ones(len(links.flops), bool))
    recomputed, outside = in_phase(links.recomputed), in_phase(links.in_optimizer)
    backward = in_phase(links.in_backward & ~links.recomputed & ~links.in_optimizer)
    device, memory = step_memory(trace, steps, gpu)
    if gpu:
        ops, kernels, classified, copied = gpu_ops(trace, links, steps, bd)
    else:
        ops, kernels, classified, copied = cpu_ops(trace, links, bd), {}, None, cpu_copied_bytes(trace, steps, bd)
    table = StepTable(ids=steps.ids, step_us=steps.duration, breakdown_us=bd.us, flops=flops, backward_flops=backward,
                      recomputed_flops=recomputed, outside_flops=outside, copied_bytes=copied,
                      short_idle_us=bd.short_idle_us, optimizer_host_us=bd.optimizer_host_us,
                      optimizer_idle_us=bd.optimizer_idle_us, collective_us=bd.collective_us,
                      allocator_us=bd.host.allocator_us, sync_us=bd.host.sync_us, python_us=bd.host.python_us,
                      warmup_us=bd.host.warmup_us, **memory)
    done("ops")
    signals = measure(trace, links, steps, bd, lost)
    done("signals")
    return TraceAnalysis(trace=trace.info(), kind=trace.backend if gpu else "cpu", table=table, ops=ops,
                         kernels=kernels, classified_us=classified,
                         utilization=breakdown.device_utilization(trace, links), dtype=matmul_dtype(trace, links, bd),
                         signals=signals, warnings=warnings,
                         timeline=step_timeline(trace, links, steps, bd) if timeline else None, memory=device,
                         recorded=health.recorded(trace, links, lost))


def missing_parts(trace: Trace, links: Links) -> list[Note]:
    """What the trace does not hold, and what therefore could not be computed."""
    out = []
    ops = trace.kind == OP
    if len(links.device) and not ops.any():
        out.append(Note("no_host_ops"))
    elif not len(links.device) and not ops.any():
        out.append(Note("no_ops_or_device_events"))
    launched = links.launch >= 0
    if launched.any():
        early = trace.start[links.device[launched]] < trace.start[links.launch[launched]] - 1.0
        if early.mean() > CLOCK_SKEW_SHARE:
            lead = float(np.max(trace.start[links.launch[launched]] - trace.start[links.device[launched]]))
            out.append(Note("clock_skew", {"early_pct": 100 * float(early.mean()),
                                           "lead_ms": milliseconds(lead)}))
    return out


def gpu_ops(trace: Trace, links: Links, steps: Steps, bd: breakdown.Breakdown):
    """Device time per launching op (or per kernel name when no op is known), with the FLOPs it carried."""
    i = steps.window_index(trace.start[links.device])
    in_step = i >= 0
    dur = (trace.end - trace.start)[links.device]
    op = links.launching_op
    owner = np.where(op >= 0, links.flop_owner[np.maximum(op, 0)], -1)
    owner = np.where(links.flops[np.maximum(owner, 0)] > 0, owner, -1)
    # rows are keyed by the op that owns the FLOPs, else the launching op, else the kernel's own name
    key_row = np.where(owner >= 0, owner, np.where(op >= 0, op, links.device))
    ops = summed_ops(trace, links, key_row[in_step], dur[in_step], dur[in_step], bd.device_category[in_step])
    kernel_rows = links.device[in_step]
    kernels = merged([summed_ops(trace, links, kernel_rows, dur[in_step], dur[in_step], bd.device_category[in_step])],
                     by_name)
    classified = KernelClassification(*(float(dur[in_step & (bd.classified_by == code)].sum())
                                          for code in (breakdown.BY_OP, breakdown.BY_NAME, breakdown.UNCLASSIFIED)))
    copies = np.isin(trace.kind[links.device], (MEMCPY, MEMSET)) & in_step
    copied = np.bincount(i[copies], weights=trace.nbytes[links.device][copies], minlength=len(steps.ids))
    return ops, kernels, classified, copied


def cpu_ops(trace: Trace, links: Links, bd: breakdown.Breakdown) -> dict[OpKey, OpStats]:
    """The ops' own time on the training thread. An annotation's own time between its ops (Optimizer.step's
    Python loop, a user's record_function) is the breakdown's, no op's: it is not listed as one."""
    rows = np.flatnonzero((bd.row_step >= 0) & (bd.row_category >= 0) & (bd.row_category != classify.IDLE)
                          & ~links.is_step)
    return summed_ops(trace, links, rows, bd.self_us[rows], (trace.end - trace.start)[rows], bd.row_category[rows])


def summed_ops(trace: Trace, links: Links, call: np.ndarray, us: np.ndarray, span_us: np.ndarray,
               category: np.ndarray) -> dict[OpKey, OpStats]:
    """Per op name and input shapes: calls, time by category, and the FLOPs and bytes of its calls with the time
    they took (the shapes are those links decoded for the ops whose bytes count; "" for the others).

    Each entry is one piece of time (a kernel, or an op's own time on a CPU) and `call` the row of the op it
    counts for: an op's calls are its distinct rows, and its FLOPs and bytes count once per call. `span_us` is
    the time the FLOPs and bytes took (device time, or the op's whole duration on a CPU)."""
    shape_of, shapes = links.byte_shapes
    texts = ["", *(shape_text(v.dims) for v in shapes)]  # each distinct shape worded once
    width = len(texts)
    codes, inv = np.unique(trace.name[call].astype(np.int64) * width + shape_of[call] + 1, return_inverse=True)
    k, n_categories = len(codes), len(classify.CATEGORIES)
    by_category = np.bincount(inv * n_categories + category, weights=us, minlength=k * n_categories)
    by_category = by_category.reshape(k, n_categories)
    _, first = np.unique(call, return_index=True)
    counted = links.flops[call] > 0
    moved = links.bytes_read[call] + links.bytes_written[call]
    known = links.byte_op[call] & (moved > 0)  # NaN (shapes say nothing) compares False
    columns = {
        "count": np.bincount(inv[first], minlength=k),
        "us": np.bincount(inv, weights=us, minlength=k),
        "flops": np.bincount(inv[first], weights=links.flops[call[first]], minlength=k),
        "flop_us": np.bincount(inv[counted], weights=span_us[counted], minlength=k),
        "bytes": np.bincount(inv[first][known[first]], weights=moved[first][known[first]], minlength=k),
        "byte_us": np.bincount(inv[known], weights=span_us[known], minlength=k),
    }
    out: dict[OpKey, OpStats] = defaultdict(OpStats)
    for j, code in enumerate(codes.tolist()):
        stats = OpStats(**{name: column[j].item() for name, column in columns.items()})
        for c in np.flatnonzero(by_category[j]):
            stats.category_us[classify.CATEGORIES[c]] = float(by_category[j, c])
        out[trace.names[code // width], texts[code % width]].absorb(stats)  # two dtypes may word alike
    return dict(out)


def shape_text(dims: list) -> str:
    """An op's input shapes as the diff names them: its tensors' dims joined by x ("[8,1024]x[1024,4096]"),
    scalars left out, a tensor list as a list of dims; cut at SHAPE_TEXT_CHARS."""
    def one(d) -> str:
        return "[" + ",".join(one(x) if isinstance(x, list) else str(x) for x in d) + "]"
    text = "x".join(one(d) for d in dims if isinstance(d, list) and d)
    return text if len(text) <= SHAPE_TEXT_CHARS else text[:SHAPE_TEXT_CHARS - 1] + "…"


def cpu_copied_bytes(trace: Trace, steps: Steps, bd: breakdown.Breakdown) -> np.ndarray:
    """Bytes written by aten::copy_ per step, from its destination's shape and dtype."""
    rows = np.flatnonzero(trace.by_name(lambda name: name == "aten::copy_") & (bd.row_step >= 0))
    out = np.zeros(len(steps.ids))
    for r, shape in zip(rows, trace.shapes(rows)):
        if shape.dims and shape.types:
            out[bd.row_step[r]] += float(np.prod(shape.dims[0])) * BYTES_OF_INPUT_TYPE.get(shape.types[0], 0)
    return out


def matmul_dtype(trace: Trace, links: Links, bd: breakdown.Breakdown) -> str | None:
    """The dtype that carried most of the counted FLOPs, from the ops' recorded input types; a narrow format
    (float8, float4: scaled GEMMs) where that is what most of the matmul time ran in, by the names of its ops and
    kernels, or where the types say nothing."""
    counted = np.flatnonzero(links.flops > 0)
    weight: defaultdict[str, float] = defaultdict(float)
    for r, shape in zip(counted, (links.flop_shapes[r] for r in counted.tolist())):
        first = next((t for t in shape.types if t), "")
        name = NAME_OF_INPUT_TYPE.get(first, first)
        weight["float8" if name.startswith("float8") else name] += links.flops[r]
    typed = max(weight, key=lambda d: weight[d]) if weight else None
    narrow, matmul_us = narrow_matmul_time(trace, links, bd)
    if narrow and (typed is None or max(narrow.values()) > matmul_us / 2):
        return max(narrow, key=lambda d: narrow[d])
    return typed


NARROW = ("", "float8", "float4")  # codes of narrow_matmul_time


def narrow_matmul_time(trace: Trace, links: Links, bd: breakdown.Breakdown) -> tuple[dict[str, float], float]:
    """µs of the matmul work in fp8 and fp4, by format, and of all of it: the device events the breakdown put in
    matmul, each by its own name or else its launching op's (GPU), or the counted FLOP ops (CPU)."""
    code = trace.by_name(lambda n: NARROW.index(classify.narrow_precision(n) or ""), np.int64)
    if len(links.device):
        matmul = bd.device_category == classify.MATMUL
        op = links.launching_op
        named = np.where(code[links.device] > 0, code[links.device], np.where(op >= 0, code[np.maximum(op, 0)], 0))
        rows, formats = links.device[matmul], named[matmul]
    else:
        rows = np.flatnonzero(links.flops > 0)
        formats = code[rows]
    us = np.bincount(formats, weights=trace.end[rows] - trace.start[rows], minlength=len(NARROW))
    return {fmt: float(us[k]) for k, fmt in enumerate(NARROW) if k and us[k] > 0}, float(us.sum())
