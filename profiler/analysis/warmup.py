"""One-off costs inside a recorded window: what a trace records once, at start-up, and never again in a long
run. torch.compile compiling (dynamo's and inductor's phases), runtime calls that hold the host for
milliseconds (lazy loading of a module's kernels on its first launch, function attributes, module loads), and
a library op's first call that sets the library up on the host (cuDNN / MIOpen heuristics, cuBLAS handles).

The breakdown gives these spans' time, where nothing ran on the device meanwhile, a host level of its own; the
ledger charges it to `warmup`, and the steady-state what-ifs leave it out.
"""

import numpy as np

from profiler.settings import WARMUP_CALL_US, WARMUP_RATIO
from profiler.trace import classify
from profiler.trace.links import Links
from profiler.trace.load import ANNOTATION, OP, PYTHON, RUNTIME, Trace


def warmup_rows(trace: Trace, links: Links) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the trace's one-off spans, with each one's own host time: compilation spans and long runtime
    of the set-up kind (classify.SETUP_CALL: launches, module loads, attribute queries) whole, and on a GPU trace
    the first call of each library op whose own host time is long (on a CPU an op's own time is its compute,
    never set-up)."""
    dur = trace.end - trace.start
    whole = _whole_spans(trace)
    firsts, own_time = first_library_calls(trace, links)
    rows = np.concatenate((whole, firsts))
    return rows, np.concatenate((dur[whole], own_time))


def warmup_intervals(trace: Trace, links: Links) -> tuple[np.ndarray, np.ndarray]:
    """The host time the one-off spans hold: compilation spans and long calls whole, a first library call only
    where it runs itself, not its child ops."""
    whole = _whole_spans(trace)
    starts, ends = [trace.start[whole]], [trace.end[whole]]
    firsts = first_library_calls(trace, links)[0]
    if len(firsts):
        seg_s, seg_e, inner = links.forest.segments()
        own = np.isin(links.host[inner], firsts)
        starts.append(seg_s[own])
        ends.append(seg_e[own])
    return np.concatenate(starts), np.concatenate(ends)


def _whole_spans(trace: Trace) -> np.ndarray:
    dur = trace.end - trace.start
    spans = np.isin(trace.kind, (OP, ANNOTATION, PYTHON)) & trace.by_name(classify.compile_span)
    calls = (trace.kind == RUNTIME) & (dur > WARMUP_CALL_US) & trace.by_name(classify.SETUP_CALL.match)
    return np.flatnonzero(spans | calls)


def _stalls(trace: Trace) -> np.ndarray:
    return trace.by_name(classify.SYNC_CALL.match) | trace.by_name(classify.ALLOCATOR_CALL.match)


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
    stalls = np.flatnonzero((trace.kind == RUNTIME) & _stalls(trace))
    made_in = links.enclosing_op[stalls]
    np.add.at(children, made_in[made_in >= 0], dur[stalls[made_in >= 0]])
    regions = np.isin(trace.kind, (OP, ANNOTATION)) & trace.by_name(classify.FIRST_CALL_REGION.match)
    library = (trace.kind == OP) & trace.by_name(classify.FIRST_CALL_OP.match) & (len(links.device) > 0)
    ops = np.flatnonzero(regions | library)
    ops = ops[np.argsort(trace.start[ops], kind="stable")]
    own = dur[ops] - children[ops]
    names, first = np.unique(trace.name[ops], return_index=True)  # the earliest call of each name
    later = np.ones(len(ops), bool)
    later[first] = False
    typical = {n: np.median(own[later & (trace.name[ops] == n)]) if (later & (trace.name[ops] == n)).any() else 0.0
               for n in names[own[first] > WARMUP_CALL_US]}  # the later calls' own time, where there are any
    keep = np.array([own[i] > WARMUP_CALL_US and own[i] > WARMUP_RATIO * typical.get(trace.name[ops[i]], 0.0)
                     for i in first], bool)
    order = np.argsort(ops[first][keep])
    return ops[first][keep][order], own[first][keep][order]
