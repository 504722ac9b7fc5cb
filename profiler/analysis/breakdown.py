"""The exclusive split of each step's time into the categories of docs/DESIGN.md.

Every microsecond of a step belongs to exactly one category, by a fixed priority (the order of
classify.CATEGORIES), so the shares add up to the step time. On a GPU trace the device timeline decides (all
streams merged) and the host explains the device's idle time; on a CPU-only trace each microsecond of the
training thread belongs to the innermost op running then.
"""

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from profiler.analysis.records import Utilization, milliseconds
from profiler.analysis.warmup import OneOffs, one_offs
from profiler.trace import classify
from profiler.trace.intervals import Forest, coverage, exclusive_coverage, merge, short_gaps
from profiler.trace.kinds import KERNEL, MEMCPY, MEMSET, OP, PYTHON, RUNTIME
from profiler.trace.links import Links, outermost
from profiler.trace.load import Trace
from profiler.trace.steps import Steps


class ClassifiedBy(IntEnum):
    """How a device event got its category: the op that launched it, its own name, or neither."""

    BY_OP = 0
    BY_NAME = 1
    UNCLASSIFIED = 2


BY_OP, BY_NAME, UNCLASSIFIED = ClassifiedBy


@dataclass(kw_only=True)
class Breakdown:
    us: np.ndarray  # (len(CATEGORIES), n_steps) microseconds per category per step
    device_category: np.ndarray  # per device event of links.device (GPU traces), else empty
    classified_by: np.ndarray  # per device event: BY_OP, BY_NAME or UNCLASSIFIED
    self_us: np.ndarray  # per row: exclusive host time on its thread (CPU traces)
    row_category: np.ndarray  # per row: category of that exclusive time (CPU traces), -1 elsewhere
    row_step: np.ndarray  # per row: index of the analysed step it falls in, -1
    short_idle_us: np.ndarray  # per step: idle time made of gaps shorter than the short-gap length
    optimizer_host_us: np.ndarray  # per step: host_overhead inside Optimizer.step spans
    optimizer_idle_us: np.ndarray  # ... and idle time there
    collective_us: np.ndarray  # per step: time any collective ran, exposed or hidden behind compute
    host: "HostParts"  # the parts of host_overhead that have causes of their own
    one_offs: OneOffs  # the window's one-off spans (warmup.py), for the evidence


@dataclass(frozen=True, kw_only=True)
class HostParts:
    """Per step (µs), the parts of host_overhead that the ledger charges to causes of their own."""

    allocator_us: np.ndarray  # allocator calls (memory_ops)
    sync_us: np.ndarray  # synchronizing calls (other)
    warmup_us: np.ndarray  # one-off costs: compilation, lazy loading, library set-up (warmup)
    python_us: np.ndarray  # Python frames between ops (small_batch's evidence)


@dataclass(kw_only=True)
class HostLevels:
    """What the host threads did, as interval lists in the breakdown's priority order below the device's."""

    loading: tuple  # data-loading ops and data-preparation Python frames
    allocator: tuple  # allocator runtime calls (cudaFree, hipMalloc, ...)
    sync: tuple  # synchronizing runtime calls (cudaStreamSynchronize, blocking cudaMemcpy, ...)
    one_offs: OneOffs  # one-off costs: compilation, long runtime calls, library ops' set-up (warmup.py)
    busy: tuple  # ops running code and other runtime calls
    python: tuple  # other Python frames on threads that run ops, except blocking ones (wait, sleep)


def device_categories(trace: Trace, links: Links) -> tuple[np.ndarray, np.ndarray]:
    """Category of each device event, and how it was decided.

    A launching op with a category decides (a kernel of aten::mm is matmul); otherwise the kernel's name may
    say matmul or communication (triton templates, cuBLAS under a custom op, NCCL); otherwise a kernel that
    an op launched is other compute, and one that no op launched is unclassified (counted as other compute).
    """
    kind = trace.kind[links.device]
    category = np.full(len(links.device), classify.OTHER_COMPUTE)
    source = np.full(len(links.device), BY_OP)
    category[np.isin(kind, (MEMCPY, MEMSET))] = classify.MEMORY
    kernels = np.flatnonzero(kind == KERNEL)
    op = links.launching_op[kernels]
    op_cat = np.where(op >= 0, links.category[np.maximum(op, 0)], -1)
    by_op = np.isin(op_cat, (classify.MATMUL, classify.COMMUNICATION))
    category[kernels[by_op]] = op_cat[by_op]
    undecided = kernels[~by_op & ~np.isin(op_cat, (classify.MEMORY, classify.DATA_LOADING))]
    names = trace.name[links.device[undecided]]
    guess = {i: classify.kernel_category_by_name(trace.names[i]) for i in np.unique(names)}
    guessed = np.array([-1 if guess[i] is None else guess[i] for i in names], dtype=np.int64)
    category[undecided[guessed >= 0]] = guessed[guessed >= 0]
    source[undecided[guessed >= 0]] = BY_NAME
    launched_by = links.launching_op[undecided]
    from_op = (launched_by >= 0) & links.runs_code[np.maximum(launched_by, 0)]
    source[undecided[(guessed < 0) & ~from_op]] = UNCLASSIFIED
    return category, source


def host_levels(trace: Trace, links: Links, busy_rows: np.ndarray) -> HostLevels:
    host = links.host[~links.is_step[links.host]]
    loading = host[links.category[host] == classify.DATA_LOADING]
    runtime = np.flatnonzero(trace.kind == RUNTIME)
    allocator = runtime[trace.by_name(classify.ALLOCATOR_CALL.match)[runtime]]
    sync = runtime[trace.by_name(classify.SYNC_CALL.match)[runtime]]
    other_runtime = runtime[~np.isin(runtime, np.concatenate((allocator, sync)))]
    working = np.isin(trace.thread, trace.thread[np.concatenate((links.host, runtime))])
    python = np.flatnonzero((trace.kind == PYTHON) & working)
    preparing = python[trace.by_name(classify.DATA_PREP_PYTHON.search)[python]]
    forest = Forest(trace.start[python], trace.end[python], trace.thread[python])
    seg_s, seg_e, inner = forest.segments()
    running = ~trace.by_name(classify.WAITING_PYTHON.search)[python[inner]]

    def spans(rows):
        return trace.start[rows], trace.end[rows]

    return HostLevels(loading=(np.concatenate((trace.start[loading], trace.start[preparing])),
                               np.concatenate((trace.end[loading], trace.end[preparing]))),
                      allocator=spans(allocator), sync=spans(sync), one_offs=one_offs(trace, links),
                      busy=(np.concatenate((trace.start[busy_rows], trace.start[other_runtime])),
                            np.concatenate((trace.end[busy_rows], trace.end[other_runtime]))),
                      python=(seg_s[running], seg_e[running]))


def _split(levels: list, steps: Steps) -> tuple[np.ndarray, HostParts, tuple[np.ndarray, np.ndarray]]:
    """Exclusive time per step of [matmul, other_compute, memory, communication, unrecorded, data_loading,
    allocator, sync, warmup, busy host, Python] levels: the categories (the last five levels are host_overhead;
    what none covers is idle), the host_overhead's parts, and the union of all levels."""
    us = exclusive_coverage(levels, steps.start, steps.end)
    categories = np.vstack((us[:4], us[5], us[6:11].sum(axis=0), us[11], us[4]))
    busy = merge(np.concatenate([s for s, _ in levels]), np.concatenate([e for _, e in levels]))
    return categories, HostParts(allocator_us=us[6], sync_us=us[7], warmup_us=us[8], python_us=us[10]), busy


def gpu_breakdown(trace: Trace, links: Links, steps: Steps, short_gap_us: float,
                  unrecorded: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))) -> Breakdown:
    """The device's categories first, then where device work ran unrecorded (health.lost_device_work), then the
    host's levels."""
    category, source = device_categories(trace, links)
    dev_start, dev_end = trace.start[links.device], trace.end[links.device]
    levels = [(dev_start[category == c], dev_end[category == c])
              for c in (classify.MATMUL, classify.OTHER_COMPUTE, classify.MEMORY, classify.COMMUNICATION)]
    levels.append(unrecorded)
    host_rows = links.host[~links.is_step[links.host]]
    h = host_levels(trace, links, host_rows[links.runs_code[host_rows]])
    levels += [h.loading, h.allocator, h.sync, (h.one_offs.starts, h.one_offs.ends), h.busy, h.python]
    us, host, busy = _split(levels, steps)
    # host overhead and idle inside optimizer steps: the price of an optimizer that runs many small ops
    spans = np.flatnonzero(outermost(links, links.in_optimizer))
    windows = (trace.start[spans], trace.end[spans])
    in_spans = _split(levels, Steps(ids=np.arange(len(spans)), host_start=windows[0], host_end=windows[1],
                                    start=windows[0], end=windows[1]))[0]
    optimizer = np.zeros((2, len(steps.ids)))
    step_of_span = steps.host_index(trace.start[spans])
    ok = step_of_span >= 0
    for k, c in enumerate((classify.HOST_OVERHEAD, classify.IDLE)):
        np.add.at(optimizer[k], step_of_span[ok], in_spans[c, ok])
    empty = np.full(len(trace), -1)
    collective = coverage(*merge(*levels[classify.COMMUNICATION]), steps.start, steps.end)
    return Breakdown(us=us, device_category=category, classified_by=source, self_us=np.zeros(len(trace)),
                     row_category=empty, row_step=steps.host_index(trace.start),
                     short_idle_us=short_gaps(*busy, steps.start, steps.end, short_gap_us),
                     optimizer_host_us=optimizer[0], optimizer_idle_us=optimizer[1], collective_us=collective,
                     host=host, one_offs=h.one_offs)


def cpu_breakdown(trace: Trace, links: Links, steps: Steps, short_gap_us: float) -> Breakdown:
    """Each host thread's time belongs to the innermost op running then, by the category of what that op did
    with it; across threads each instant is counted once, by priority, as device streams are on a GPU."""
    rows = links.host
    dur = trace.end - trace.start
    children = np.zeros(len(trace))
    has_parent = links.parent[rows] >= 0
    np.add.at(children, links.parent[rows[has_parent]], dur[rows[has_parent]])
    self_us = np.zeros(len(trace))
    self_us[rows] = np.maximum(dur[rows] - children[rows], 0)

    # an op whose child ops (other than views and allocations) run longer than its own time is a composite
    # (aten::linear around addmm): its own time is dispatch overhead; any other op's own time is its compute
    # (native_layer_norm_backward, which zeroes its output in a child op first)
    describes = trace.by_name(classify.METADATA_OP.match)
    real_work = rows[has_parent & ~describes[rows]]
    handed_us = np.zeros(len(trace))
    np.add.at(handed_us, links.parent[real_work], dur[real_work])
    composite = handed_us > self_us
    category = np.full(len(trace), -1)
    inherited = links.category[rows]
    if trace.by_name(classify.GENERATED_KERNEL_OP.search).any():
        # inductor's kernels are ops of their own: a compiled graph's own time is only its Python wrapper
        compiled_graph = links.runs_code[rows] & (trace.kind[rows] != OP)
        inherited = np.where(compiled_graph, classify.HOST_OVERHEAD, inherited)
    is_op = trace.kind[rows] == OP
    category[rows] = np.select(
        [inherited >= 0, is_op & ~composite[rows], is_op],
        [inherited, classify.OTHER_COMPUTE, classify.HOST_OVERHEAD], classify.IDLE)
    category[rows[links.is_step[rows]]] = classify.IDLE

    seg_s, seg_e, inner = links.forest.segments()
    seg_category = category[rows[inner]]
    h = host_levels(trace, links, np.empty(0, dtype=np.int64))
    levels = [(seg_s[seg_category == c], seg_e[seg_category == c])
              for c in (classify.MATMUL, classify.OTHER_COMPUTE, classify.MEMORY, classify.COMMUNICATION)]
    levels.append((np.zeros(0), np.zeros(0)))  # a CPU trace has no device work to lose
    loading = seg_category == classify.DATA_LOADING
    levels.append((np.concatenate((seg_s[loading], h.loading[0])), np.concatenate((seg_e[loading], h.loading[1]))))
    dispatch = seg_category == classify.HOST_OVERHEAD
    levels += [h.allocator, h.sync, (h.one_offs.starts, h.one_offs.ends), (seg_s[dispatch], seg_e[dispatch]),
               h.python]
    us, host, busy = _split(levels, steps)

    step = steps.host_index(trace.start)
    counted = rows[step[rows] >= 0]
    gaps = short_gaps(*busy, steps.start, steps.end, short_gap_us)
    optimizer = np.zeros((2, len(steps.ids)))
    for k, c in enumerate((classify.HOST_OVERHEAD, classify.IDLE)):
        sel = counted[links.in_optimizer[counted] & (category[counted] == c)]
        np.add.at(optimizer[k], step[sel], self_us[sel])
    comm = links.host[links.category[links.host] == classify.COMMUNICATION]
    collective = coverage(*merge(trace.start[comm], trace.end[comm]), steps.start, steps.end)
    return Breakdown(us=us, device_category=np.empty(0, int), classified_by=np.empty(0, int), self_us=self_us,
                     row_category=category, row_step=step, short_idle_us=np.minimum(gaps, us[classify.IDLE]),
                     optimizer_host_us=optimizer[0], optimizer_idle_us=optimizer[1], collective_us=collective,
                     host=host, one_offs=h.one_offs)


def device_utilization(trace: Trace, links: Links) -> Utilization | None:
    """Busy share of the whole trace's device window (first to last device event), as HTA measures it."""
    if not len(links.device):
        return None
    s, e = merge(trace.start[links.device], trace.end[links.device])
    if not len(s):  # no device event with a usable span
        return None
    window = float(e.max() - s.min())
    return Utilization(milliseconds(window), float((e - s).sum() / window) if window else 0.0)
