"""One trace file through the stages: load → links → steps → FLOPs → breakdown, into plain per-step arrays."""

from collections import defaultdict
from dataclasses import dataclass, field, fields

import numpy as np

from profiler.analysis import breakdown
from profiler.analysis.signals import Signals, measure
from profiler.analysis.timeline import Timeline, step_timeline
from profiler.settings import CLOCK_SKEW_SHARE, SHORT_GAP_US
from profiler.trace import classify
from profiler.trace.dtypes import BYTES_OF_INPUT_TYPE, NAME_OF_INPUT_TYPE
from profiler.trace.links import Links, link
from profiler.trace.load import MEMCPY, MEMSET, OP, Trace, TraceInfo, load_trace
from profiler.trace.steps import Steps, find_steps


@dataclass(kw_only=True)
class OpStats:
    count: int = 0  # calls
    us: float = 0.0  # time attributed to the op (device time on GPU, exclusive host time on CPU)
    flops: float = 0.0
    flop_us: float = 0.0  # the time its FLOPs took: device time of its kernels, or the counted ops' duration
    bytes: float = 0.0  # bytes moved by its calls whose shapes say (nbytes.py)
    byte_us: float = 0.0  # the time those calls took, measured as flop_us is
    category_us: dict = field(default_factory=lambda: defaultdict(float))

    def absorb(self, other: "OpStats"):
        """Add another file's statistics of the same op (profiler cycles of one rank)."""
        self.count += other.count
        self.us += other.us
        self.flops += other.flops
        self.flop_us += other.flop_us
        self.bytes += other.bytes
        self.byte_us += other.byte_us
        for category, us in other.category_us.items():
            self.category_us[category] += us

    @property
    def category(self) -> str:
        return max(self.category_us, key=lambda c: self.category_us[c]) if self.category_us else "idle"


@dataclass(frozen=True, kw_only=True)
class StepTable:
    """The per-step figures of a file or a rank, one named array per figure (the last axis is the step): a new
    per-step figure is one field here and one line in analyze_file."""

    ids: np.ndarray  # step numbers
    step_us: np.ndarray  # analysed window of each step
    breakdown_us: np.ndarray  # (categories, steps)
    flops: np.ndarray  # counted FLOPs
    copied_bytes: np.ndarray  # memcpy / memset bytes (GPU), copy_ bytes (CPU)
    short_idle_us: np.ndarray  # idle made of gaps shorter than Options.short_gap_us
    optimizer_host_us: np.ndarray  # host overhead inside Optimizer.step spans
    optimizer_idle_us: np.ndarray  # idle inside them
    collective_us: np.ndarray  # time collectives ran, exposed or not
    allocator_us: np.ndarray  # host overhead in allocator calls
    sync_us: np.ndarray  # ... in synchronizations
    python_us: np.ndarray  # ... in Python frames
    warmup_us: np.ndarray  # ... in one-off costs (compilation, lazy loading, library set-up)

    def __len__(self):
        return len(self.ids)

    def select(self, mask: np.ndarray) -> "StepTable":
        return StepTable(**{f.name: getattr(self, f.name)[..., mask] for f in fields(self)})

    @staticmethod
    def concat(tables: list["StepTable"]) -> "StepTable":
        return StepTable(**{f.name: np.concatenate([getattr(t, f.name) for t in tables], axis=-1)
                            for f in fields(StepTable)})


@dataclass(kw_only=True)
class TraceAnalysis:
    trace: TraceInfo
    kind: str  # the device backend (cuda, rocm, mtia, ...) when there are device events, else "cpu"
    table: StepTable
    ops: dict[str, OpStats]  # summed over the analysed steps
    classified_us: breakdown.KernelClassification | None  # device time (µs) by how it was classified (GPU traces)
    utilization: breakdown.Utilization | None
    dtype: str | None  # matmul input dtype weighted by FLOPs
    signals: Signals
    warnings: list[str] = field(default_factory=list)
    timeline: Timeline | None = None  # the median step's spans, when asked for


STAGES = ("read", "links", "steps", "breakdown", "ops", "signals")  # each reported to `done` when finished


def analyze_file(path, short_gap_us: float = SHORT_GAP_US, timeline: bool = False, done=lambda stage: None
                 ) -> TraceAnalysis:
    trace = load_trace(path)
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
    bd = (breakdown.gpu_breakdown if gpu else breakdown.cpu_breakdown)(trace, links, steps, short_gap_us)
    done("breakdown")
    counted = np.flatnonzero((links.flops > 0) & (bd.row_step >= 0))
    flops = np.bincount(bd.row_step[counted], weights=links.flops[counted], minlength=len(steps.ids))
    if gpu:
        ops, classified, copied = gpu_ops(trace, links, steps, bd)
    else:
        ops, classified, copied = cpu_ops(trace, links, bd), None, cpu_copied_bytes(trace, steps, bd)
    table = StepTable(ids=steps.ids, step_us=steps.duration, breakdown_us=bd.us, flops=flops, copied_bytes=copied,
                      short_idle_us=bd.short_idle_us, optimizer_host_us=bd.optimizer_host_us,
                      optimizer_idle_us=bd.optimizer_idle_us, collective_us=bd.collective_us,
                      allocator_us=bd.host.allocator_us, sync_us=bd.host.sync_us, python_us=bd.host.python_us,
                      warmup_us=bd.host.warmup_us)
    done("ops")
    signals = measure(trace, links, steps, bd)
    done("signals")
    return TraceAnalysis(trace=trace.info(), kind=trace.backend if gpu else "cpu", table=table, ops=ops,
                         classified_us=classified, utilization=breakdown.device_utilization(trace, links),
                         dtype=matmul_dtype(trace, links), signals=signals, warnings=warnings,
                         timeline=step_timeline(trace, links, steps, bd) if timeline else None)


def missing_parts(trace: Trace, links: Links) -> list[str]:
    """What the trace does not hold, and what therefore could not be computed."""
    out = []
    ops = trace.kind == OP
    if len(links.device) and not ops.any():
        out.append("the trace holds device events but no host ops (CPU activity was not recorded): no FLOPs can be "
                   "counted, kernels are classified by their names only, and the device's idle time cannot be told "
                   "apart into data loading, host overhead and idle")
    elif not len(links.device) and not ops.any():
        out.append("the trace holds neither ops nor device events: only annotations and Python frames were analysed")
    launched = links.launch >= 0
    if launched.any():
        early = trace.start[links.device[launched]] < trace.start[links.launch[launched]] - 1.0
        if early.mean() > CLOCK_SKEW_SHARE:
            lead = float(np.max(trace.start[links.launch[launched]] - trace.start[links.device[launched]]))
            out.append(f"host and device clocks disagree: {100 * early.mean():.0f}% of device events start before the "
                       f"call that launched them (by up to {lead / 1000:.2f} ms): step boundaries and the host's share "
                       "of device idle time are approximate")
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
    classified = breakdown.KernelClassification(*(float(dur[in_step & (bd.classified_by == code)].sum())
                                          for code in (breakdown.BY_OP, breakdown.BY_NAME, breakdown.UNCLASSIFIED)))
    copies = np.isin(trace.kind[links.device], (MEMCPY, MEMSET)) & in_step
    copied = np.bincount(i[copies], weights=trace.nbytes[links.device][copies], minlength=len(steps.ids))
    return ops, classified, copied


def cpu_ops(trace: Trace, links: Links, bd: breakdown.Breakdown) -> dict[str, OpStats]:
    """The ops' own time on the training thread. An annotation's own time between its ops (Optimizer.step's
    Python loop, a user's record_function) is the breakdown's, no op's: it is not listed as one."""
    rows = np.flatnonzero((bd.row_step >= 0) & (bd.row_category >= 0) & (bd.row_category != classify.IDLE)
                          & ~links.is_step)
    return summed_ops(trace, links, rows, bd.self_us[rows], (trace.end - trace.start)[rows], bd.row_category[rows])


def summed_ops(trace: Trace, links: Links, call: np.ndarray, us: np.ndarray, span_us: np.ndarray,
               category: np.ndarray) -> dict[str, OpStats]:
    """Per op name: calls, time by category, and the FLOPs and bytes of its calls with the time they took.

    Each entry is one piece of time (a kernel, or an op's own time on a CPU) and `call` the row of the op it
    counts for: an op's calls are its distinct rows, and its FLOPs and bytes count once per call. `span_us` is
    the time the FLOPs and bytes took (device time, or the op's whole duration on a CPU)."""
    codes, inv = np.unique(trace.name[call], return_inverse=True)
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
    out: dict[str, OpStats] = {}
    for j, code in enumerate(codes.tolist()):
        stats = OpStats(**{name: column[j].item() for name, column in columns.items()})
        for c in np.flatnonzero(by_category[j]):
            stats.category_us[classify.CATEGORIES[c]] = float(by_category[j, c])
        out[trace.names[code]] = stats
    return out


def cpu_copied_bytes(trace: Trace, steps: Steps, bd: breakdown.Breakdown) -> np.ndarray:
    """Bytes written by aten::copy_ per step, from its destination's shape and dtype."""
    rows = np.flatnonzero(trace.by_name(lambda name: name == "aten::copy_") & (bd.row_step >= 0))
    out = np.zeros(len(steps.ids))
    for r, shape in zip(rows, trace.shapes(rows)):
        if shape.dims and shape.types:
            out[bd.row_step[r]] += float(np.prod(shape.dims[0])) * BYTES_OF_INPUT_TYPE.get(shape.types[0], 0)
    return out


def matmul_dtype(trace: Trace, links: Links) -> str | None:
    """The dtype that carried most of the counted FLOPs, from the ops' recorded input types."""
    counted = np.flatnonzero(links.flops > 0)
    weight: defaultdict[str, float] = defaultdict(float)
    for r, shape in zip(counted, (links.flop_shapes[r] for r in counted.tolist())):
        first = next((t for t in shape.types if t), "")
        weight[NAME_OF_INPUT_TYPE.get(first, first)] += links.flops[r]
    return max(weight, key=lambda d: weight[d]) if weight else None
