"""The communication account of a file: each collective call by the phase it ran in (forward, backward,
optimizer step: the window its call started in, on any thread) and its kind, with its calls, message bytes, time
and the part of that time no compute hid; and the marks each parallelism library leaves in a trace
(mfu/parallelism.py names them).

A call is a library's span (`gloo:all_gather`, `nccl:all_reduce`) where the trace has them, else a
`record_param_comms`, else an outermost communication op (c10d, a functional collective). On a GPU its time is its
kernels' (NCCL, RCCL, DeepEP's dispatch / combine, NVSHMEM; a communication kernel that no collective op launched
counts under its own name), and the exposed part is what no compute kernel overlapped. On a CPU its time is its
span's, and the exposed part what no compute op on another thread overlapped (gloo runs on its own threads while
the training thread waits). The bytes are the collective's input as recorded (In msg nelems, or the input shape).
"""

import re
from collections import Counter

import numpy as np

from profiler.analysis.breakdown import Breakdown
from profiler.trace import classify
from profiler.trace.dtypes import BYTES_OF_INPUT_TYPE, BYTES_OF_SCALAR_TYPE
from profiler.trace.intervals import coverage, merge
from profiler.trace.kinds import OP, PYTHON
from profiler.trace.links import Links, outermost
from profiler.trace.load import ShapeArgs, Trace
from profiler.trace.steps import Steps

KINDS = (("all_reduce", r"all_?reduce|allreduce"), ("all_gather", r"all_?gather|allgather"),
         ("reduce_scatter", r"reduce_?scatter"), ("all_to_all", r"all_?to_?all|alltoall|dispatch|combine"),
         ("send_recv", r"send|recv|sendrecv|p2p"), ("broadcast", r"broadcast|bcast"))
LIBRARY_SPAN = re.compile(r"^(nccl|rccl|gloo|mpi|ucc|hccl|xccl):")
COMPUTE = (classify.MATMUL, classify.OTHER_COMPUTE, classify.MEMORY)
# the marks of each parallelism, by name (mfu/parallelism.py words them)
MARKS = (("ddp", r"^DistributedDataParallel\.forward|Reducer::|^DDP::"),
         ("fsdp2", r"^FSDP::|^fsdp::"),
         ("fsdp1", r"^FullyShardedDataParallel\."),
         ("tensor_parallel", r"^(Nested)?Redistribute$"),
         ("pipeline", r"^PipelineStage|^Schedule\w*\.|^\w*pipelining|send_recv|^(c10d::)?(send|recv_?)$"
                      r"|:(send|recv)$"),
         ("expert_parallel", r"(internode|intranode)\w*::\w*(dispatch|combine|notify)|deep_ep::|nvshmem"),
         ("all_to_all", r"all_?to_?all|alltoall"),
         ("context_parallel", r"ring_(flash|efficient|cudnn)?_?attention|context_parallel"))


def kind_of(name: str) -> str:
    lowered = name.lower()
    return next((kind for kind, pattern in KINDS if re.search(pattern, lowered)), "other")


PHASES = ("forward", "backward", "optimizer")


def phase_codes(trace: Trace, links: Links, steps: Steps, at: np.ndarray) -> np.ndarray:
    """The phase of each time in `at` (a call's start, on any thread: a library's own thread serves the step too):
    2 inside an optimizer step; 1 in the backward, from a step's first autograd node to its optimizer step (or its
    end), so that the reductions the optimizer waits for after the last node count there; 0 otherwise."""
    nodes = np.flatnonzero(outermost(links, links.in_backward))
    step = steps.host_index(trace.start[nodes])
    first = np.full(len(steps.ids), np.inf)
    np.minimum.at(first, step[step >= 0], trace.start[nodes[step >= 0]])
    optimizer = np.flatnonzero(outermost(links, links.in_optimizer))
    until = steps.host_end.astype(float).copy()
    o_step = steps.host_index(trace.start[optimizer])
    np.minimum.at(until, o_step[o_step >= 0], trace.start[optimizer[o_step >= 0]])
    has = np.isfinite(first)
    out = np.zeros(len(at), np.int64)
    out[coverage(*merge(first[has], until[has]), at, at + 1e-3) > 0] = 1
    out[coverage(*merge(trace.start[optimizer], trace.end[optimizer]), at, at + 1e-3) > 0] = 2
    return out


def call_roots(trace: Trace, links: Links) -> np.ndarray:
    """Per row: the outermost communication op at or above it, -1 elsewhere."""
    is_comm = (links.category == classify.COMMUNICATION) & (trace.kind == OP)
    root = np.where(outermost(links, is_comm), np.arange(len(trace)), -1)
    for rows in links.forest.levels():
        rows = links.host[rows]
        p = links.parent[rows]
        inherit = (p >= 0) & (root[rows] < 0)
        root[rows[inherit]] = root[p[inherit]]
    return root


def input_bytes(trace: Trace, links: Links, rows: np.ndarray) -> np.ndarray:
    """Each row's message: record_param_comms' In msg nelems × its dtype (the row's, or its parent's around a
    library span), else its first input's recorded shape."""
    out = np.zeros(len(rows))
    for j, (r, shape) in enumerate(zip(rows.tolist(), trace.shapes(rows, ShapeArgs))):
        nelems, dtype = trace.collectives.get(r) or trace.collectives.get(int(links.parent[r])) or (0, "")
        if nelems and dtype in BYTES_OF_SCALAR_TYPE:
            out[j] = nelems * BYTES_OF_SCALAR_TYPE[dtype]
        elif shape.dims and isinstance(shape.dims[0], list) and all(isinstance(d, int) for d in shape.dims[0]):
            out[j] = float(np.prod(shape.dims[0])) * BYTES_OF_INPUT_TYPE.get(shape.types[0] if shape.types else "", 0)
    return out


def account(trace: Trace, links: Links, steps: Steps, bd: Breakdown) -> dict[str, Counter]:
    """Totals over the steps, keyed "phase/kind": calls, bytes, us, exposed_us. A call is a library's span
    (gloo:, nccl:, ...; record_param_comms) where the trace has them, else an outermost communication op."""
    in_steps = bd.row_step >= 0
    library = trace.by_name(lambda n: bool(LIBRARY_SPAN.match(n))) & in_steps
    recorded = trace.by_name(lambda n: n == "record_param_comms") & in_steps
    root = call_roots(trace, links)
    roots = (root == np.arange(len(trace))) & in_steps
    if len(links.device):  # the spans nest in their ops: a library's span, else the op itself, is the call
        spanned = np.zeros(len(trace), bool)
        above = root[library | recorded]
        spanned[above[above >= 0]] = True
        calls = np.flatnonzero((library if library.any() else recorded) | (roots & ~spanned))
    else:  # gloo's spans run on its own threads, apart from the ops that started them
        calls = np.flatnonzero(library if library.any() else recorded if recorded.any() else roots)
    kind = trace.by_name(kind_of, object)  # once per distinct name
    keys = keys_of(kind, phase_codes(trace, links, steps, trace.start[calls]), calls)
    totals = {"calls": summed(keys, np.ones(len(calls))), "bytes": summed(keys, input_bytes(trace, links, calls))}
    if not len(links.device):  # on a CPU: the call's span, less what compute ops on other threads ran meanwhile
        compute = np.flatnonzero((trace.kind == OP) & np.isin(links.category, COMPUTE) & in_steps)
        start, end = trace.start[calls], trace.end[calls]
        hidden = coverage(*merge(trace.start[compute], trace.end[compute]), start, end)
        totals["us"], totals["exposed_us"] = summed(keys, end - start), summed(keys, end - start - hidden)
        return totals
    in_window = steps.window_index(trace.start[links.device]) >= 0
    comm = in_window & (bd.device_category == classify.COMMUNICATION)
    busy = in_window & np.isin(bd.device_category, COMPUTE)
    kernels = links.device[comm]
    start, end = trace.start[kernels], trace.end[kernels]
    hidden = coverage(*merge(trace.start[links.device[busy]], trace.end[links.device[busy]]), start, end)
    launch = links.launch[comm]
    # a kernel's kind by the span that launched it (nccl:all_to_all runs SendRecv kernels), else by its
    # collective op, else by its own name (ncclDevKernel_AllGather, DeepEP's dispatch / combine)
    launcher = np.maximum(links.launching_op[comm], 0)
    by_launcher = (links.launching_op[comm] >= 0) & (kind[launcher] != "other")
    by_root = ~by_launcher & (links.launching_op[comm] >= 0) & (root[launcher] >= 0) & \
        (kind[np.maximum(root[launcher], 0)] != "other")
    named_by = np.where(by_launcher, launcher, np.where(by_root, root[launcher], kernels))
    kernel_keys = keys_of(kind, phase_codes(trace, links, steps, np.where(launch >= 0, trace.start[launch], start)),
                          named_by)
    totals["us"], totals["exposed_us"] = summed(kernel_keys, end - start), summed(kernel_keys, end - start - hidden)
    return totals


def keys_of(kind: np.ndarray, phases: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """"phase/kind" per row, from the kind of each row (kind_of over the trace's names)."""
    return np.array([f"{PHASES[p]}/{k}" for p, k in zip(phases.tolist(), kind[rows])], object)


def summed(keys: np.ndarray, values: np.ndarray) -> Counter:
    """values added up by key."""
    if not len(keys):
        return Counter()
    distinct, back = np.unique(keys.astype(str), return_inverse=True)
    totals = np.bincount(back, weights=values, minlength=len(distinct))
    return Counter({str(k): float(v) for k, v in zip(distinct, totals)})


def marks(trace: Trace) -> Counter:
    """How many ops, spans and kernels carry each parallelism's marks (Python frames do not: a function that
    checks for a library names it without running it)."""
    found: Counter = Counter()
    recorded = trace.kind != PYTHON
    for mark, pattern in MARKS:
        hits = recorded & trace.by_name(lambda n, p=re.compile(pattern, re.IGNORECASE): bool(p.search(n)))
        if hits.any():
            found[mark] = int(hits.sum())
    return found


FSDP_ALL_GATHER = re.compile(r"^FSDP::all_gather \((.+)\)$")


def fsdp_units(trace: Trace, bd: Breakdown) -> Counter:
    """FSDP2's all-gathers in the steps by the module they gather (its `FSDP::all_gather (name)` spans), µs."""
    rows = np.flatnonzero(trace.by_name(lambda n: bool(FSDP_ALL_GATHER.match(n))) & (bd.row_step >= 0))
    out: Counter[str] = Counter()
    for name, us in zip(trace.names_of(rows), (trace.end[rows] - trace.start[rows]).tolist()):
        found = FSDP_ALL_GATHER.match(name)
        if found:
            out[found.group(1)] += us
    return out


def micro_batches(trace: Trace, bd: Breakdown) -> int:
    """The micro-batch forwards a pipeline schedule ran in the steps (torch.distributed.pipelining's `Forward N`)."""
    return int((trace.by_name(lambda n: bool(re.match(r"^Forward \d+$", n))) & (bd.row_step >= 0)).sum())
