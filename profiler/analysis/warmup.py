"""One-off costs inside a recorded window: what a trace records once, at start-up, and never again in a long
run. torch.compile compiling (dynamo's and inductor's phases), other JIT compilation (TorchScript's profiling
executor fusing a scripted function on its second call, NVRTC, cpp_extension builds), runtime calls that hold
the host for milliseconds (lazy loading of a module's kernels on its first launch, function attributes, module
loads), and a library op's first call that sets the library up on the host (cuDNN / MIOpen heuristics, cuBLAS
handles).

The breakdown gives these spans' time, where nothing ran on the device meanwhile, a host level of its own; the
ledger charges it to `warmup`, and the steady-state what-ifs leave it out.
"""

from dataclasses import dataclass

import numpy as np

from profiler.settings import WARMUP_CALL_US, WARMUP_RATIO
from profiler.trace import classify
from profiler.trace.kinds import ANNOTATION, OP, PYTHON, RUNTIME
from profiler.trace.links import Links
from profiler.trace.load import Trace


@dataclass(frozen=True, kw_only=True)
class OneOffs:
    """The window's one-off spans: their rows with each one's own host time and what the evidence calls it,
    and the host time they hold (the breakdown's warmup level)."""

    rows: np.ndarray
    own_us: np.ndarray
    names: list[str]  # the span's name; a JIT compilation's names what it compiled
    starts: np.ndarray
    ends: np.ndarray


def one_offs(trace: Trace, links: Links) -> OneOffs:
    """Compilation spans and long set-up runtime calls (classify.SETUP_CALL: launches, module loads, attribute
    queries) count whole; a library op's or a compiled region's slow first call counts where it runs itself,
    not its children."""
    dur = trace.end - trace.start
    spans = np.isin(trace.kind, (OP, ANNOTATION, PYTHON)) & trace.by_name(classify.compile_span)
    calls = (trace.kind == RUNTIME) & (dur > WARMUP_CALL_US) & trace.by_name(classify.SETUP_CALL.match)
    jit, compiled = jit_compilations(trace, links)
    spans[jit] = False  # a span already whole (a compile span) is not counted twice
    whole = np.flatnonzero(spans | calls)
    firsts, own_time = first_library_calls(trace, links)
    apart = ~np.isin(firsts, jit)  # a first call that compiled counts once, as the compilation
    firsts, own_time = firsts[apart], own_time[apart]
    starts, ends = [trace.start[whole], trace.start[jit]], [trace.end[whole], trace.end[jit]]
    if len(firsts):
        seg_s, seg_e, inner = links.forest.segments()
        own = np.isin(links.host[inner], firsts)
        starts.append(seg_s[own])
        ends.append(seg_e[own])
    rows = np.concatenate((whole, jit, firsts))
    names = trace.names_of(whole) + compiled + trace.names_of(firsts)
    return OneOffs(rows=rows, own_us=np.concatenate((dur[whole], dur[jit], own_time)), names=names,
                   starts=np.concatenate(starts), ends=np.concatenate(ends))


def jit_compilations(trace: Trace, links: Links) -> tuple[np.ndarray, list[str]]:
    """The outermost ops (below the step) that compiled code in the window, and what each compiled: an op that
    holds a JIT signature (classify.JIT_SIGNATURE) and took over WARMUP_CALL_US, WARMUP_RATIO times the median
    outermost op of the window, and WARMUP_RATIO times its own other calls' median. A scripted function that is
    that slow every call compiles nothing: it is what it is."""
    signed = np.flatnonzero(trace.by_name(classify.JIT_SIGNATURE.search)
                            & np.isin(trace.kind, (OP, ANNOTATION, RUNTIME)))  # a kernel's name is no signature
    holder = np.where(trace.kind[signed] == RUNTIME, links.enclosing_op[signed], signed)
    holder, signed = holder[holder >= 0], signed[holder >= 0]
    if not len(holder):
        return np.empty(0, np.int64), []
    top = outermost(links, holder)
    dur = trace.end - trace.start
    spans = np.unique(outermost(links, links.host[~links.is_step[links.host]]))  # the window's outermost ops
    plain = np.setdiff1d(spans, top)  # those that compiled nothing: what an op costs here
    typical = float(np.median(dur[plain])) if len(plain) else 0.0
    out, compiled = [], []
    for row in np.unique(top):
        others = spans[(trace.name[spans] == trace.name[row]) & (spans != row)]  # its other calls
        if dur[row] > max(WARMUP_CALL_US, WARMUP_RATIO * typical,
                          WARMUP_RATIO * (float(np.median(dur[others])) if len(others) else 0.0)):
            marks = sorted(set(trace.names_of(signed[top == row])))
            out.append(row)
            compiled.append(f"{trace.names[trace.name[row]]} (compiling {', '.join(marks[:2])})")
    return np.array(out, np.int64), compiled


def outermost(links: Links, rows: np.ndarray) -> np.ndarray:
    """Each row's outermost enclosing host span below a ProfilerStep (the row itself where none encloses it)."""
    top = rows.copy()
    while True:
        up = links.parent[top]
        climb = (up >= 0) & ~links.is_step[np.maximum(up, 0)]
        if not climb.any():
            return top
        top = np.where(climb, up, top)


def first_library_calls(trace: Trace, links: Links) -> tuple[np.ndarray, np.ndarray]:
    """The first call of each library op (classify.FIRST_CALL_OP, on a GPU trace: on a CPU an op's own time is
    its compute) and of each torch.compile'd region (classify.FIRST_CALL_REGION) whose own host time, less its
    children's and the synchronizing or allocator calls it made, exceeds WARMUP_CALL_US and WARMUP_RATIO times
    the later calls' median; and that own time."""
    dur = trace.end - trace.start
    host = links.host
    children = np.zeros(len(trace))
    nested = host[links.parent[host] >= 0]
    np.add.at(children, links.parent[nested], dur[nested])
    stalls = np.flatnonzero((trace.kind == RUNTIME) & trace.by_name(classify.stall_call))
    made_in = links.enclosing_op[stalls]
    np.add.at(children, made_in[made_in >= 0], dur[stalls[made_in >= 0]])
    regions = np.isin(trace.kind, (OP, ANNOTATION)) & trace.by_name(classify.FIRST_CALL_REGION.match)
    library = (trace.kind == OP) & trace.by_name(classify.FIRST_CALL_OP.match) & (len(links.device) > 0)
    ops = np.flatnonzero(regions | library)
    ops = ops[np.argsort(trace.start[ops], kind="stable")]
    own = dur[ops] - children[ops]
    _, first = np.unique(trace.name[ops], return_index=True)  # the earliest call of each name
    later = np.ones(len(ops), bool)
    later[first] = False
    name_of = trace.name[ops]

    def later_median(name: int) -> float:
        """The own time of the later calls of this name (0 where it ran once)."""
        sel = later & (name_of == name)
        return float(np.median(own[sel])) if sel.any() else 0.0

    keep = np.array([own[i] > WARMUP_CALL_US and own[i] > WARMUP_RATIO * later_median(name_of[i]) for i in first],
                    bool)
    order = np.argsort(ops[first][keep])
    return ops[first][keep][order], own[first][keep][order]
