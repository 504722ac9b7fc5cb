"""One-off costs inside a recorded window: what a trace records once, at start-up, and never again in a long
run. torch.compile compiling (dynamo's and inductor's phases), runtime calls that hold the host for
milliseconds (lazy loading of a module's kernels on its first launch, function attributes, module loads), and
a library op's first call that sets the library up on the host (cuDNN / MIOpen heuristics, cuBLAS handles).

The breakdown gives these spans' time, where nothing ran on the device meanwhile, a host level of its own; the
ledger charges it to `warmup`, and the steady-state what-ifs leave it out.
"""

from dataclasses import dataclass

import numpy as np

from profiler.settings import WARMUP_CALL_US, WARMUP_RATIO
from profiler.trace import classify
from profiler.trace.links import Links
from profiler.trace.load import ANNOTATION, OP, PYTHON, RUNTIME, Trace


@dataclass(frozen=True)
class OneOffs:
    """The window's one-off spans: their rows with each one's own host time (the evidence), and the host time
    they hold (the breakdown's warmup level)."""

    rows: np.ndarray
    own_us: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


def one_offs(trace: Trace, links: Links) -> OneOffs:
    """Compilation spans and long set-up runtime calls (classify.SETUP_CALL: launches, module loads, attribute
    queries) count whole; a library op's or a compiled region's slow first call counts where it runs itself,
    not its children."""
    dur = trace.end - trace.start
    spans = np.isin(trace.kind, (OP, ANNOTATION, PYTHON)) & trace.by_name(classify.compile_span)
    calls = (trace.kind == RUNTIME) & (dur > WARMUP_CALL_US) & trace.by_name(classify.SETUP_CALL.match)
    whole = np.flatnonzero(spans | calls)
    firsts, own_time = first_library_calls(trace, links)
    starts, ends = [trace.start[whole]], [trace.end[whole]]
    if len(firsts):
        seg_s, seg_e, inner = links.forest.segments()
        own = np.isin(links.host[inner], firsts)
        starts.append(seg_s[own])
        ends.append(seg_e[own])
    return OneOffs(np.concatenate((whole, firsts)), np.concatenate((dur[whole], own_time)), np.concatenate(starts),
                   np.concatenate(ends))


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
