"""The structure of a trace that later stages share: the nesting of host spans, each op's category and
FLOP owner, and for each device event the runtime call that launched it and the op that made that call.
"""

from dataclasses import dataclass

import numpy as np

from profiler.facts import Note
from profiler.trace import attention, classify
from profiler.trace.flops import FLOP_OPS, counted_flops
from profiler.trace.intervals import Forest
from profiler.trace.kinds import ANNOTATION, DEVICE_KINDS, OP, RUNTIME
from profiler.trace.load import DimsArgs, Trace
from profiler.trace.nbytes import op_bytes


@dataclass(kw_only=True)
class Links:
    host: np.ndarray  # rows of host spans (ops and annotations), the nodes of the forest
    parent: np.ndarray  # per row: enclosing host span on the same thread, -1 (only host rows are set)
    category: np.ndarray  # per row: inherited op category (classify.*), -1 where the name says nothing
    flop_owner: np.ndarray  # per row: the outermost FLOP op at or above this op, -1
    flops: np.ndarray  # per row: FLOPs of counted ops (0 elsewhere)
    flop_shapes: dict  # row of each counted FLOP op → its decoded input shapes and types
    byte_op: np.ndarray  # per row: an op whose bytes count (a FLOP op's outermost, or an op doing its own work)
    bytes_read: np.ndarray  # per row: bytes a byte op reads (nbytes.py), NaN where its shapes say nothing
    bytes_written: np.ndarray  # ... and writes; 0 on other rows
    byte_shapes: tuple[np.ndarray, list]  # the byte ops' decoded shapes: per row a code into the list, -1 elsewhere
    device: np.ndarray  # rows of kernels, memcpys and memsets, by start time
    launch: np.ndarray  # per device event: the runtime row that launched it, -1
    launching_op: np.ndarray  # per device event: innermost host span around its launch, -1
    is_step: np.ndarray  # per row: a ProfilerStep#N span
    in_optimizer: np.ndarray  # per row: inside (or being) an Optimizer.step#... span
    in_attention: np.ndarray  # per row: an op of unfused attention (see attention.py) or inside one
    in_backward: np.ndarray  # per row: inside (or being) an autograd node that the backward ran
    recomputed: np.ndarray  # per row: a forward op run again inside the backward (activation checkpointing), or
    # inside one
    runs_code: np.ndarray  # per row: an op, or a compiled graph's annotation (inductor's generated code runs in it)
    forest: Forest  # the nesting of the host spans (indices into `host`)
    enclosing_op: np.ndarray  # per row: for runtime calls, the innermost host span around the call, -1


def link(trace: Trace) -> tuple[Links, list[Note]]:
    """The trace's structure, and warnings for the FLOP ops it could not count."""
    n = len(trace)
    # host spans only: newer Kineto mirrors annotations on the GPU timeline (gpu_user_annotation)
    is_host = np.isin(trace.kind, (OP, ANNOTATION))
    is_step = trace.by_name(lambda name: name.startswith("ProfilerStep#")) & is_host
    host = np.flatnonzero(is_host)
    forest = Forest(trace.start[host], trace.end[host], trace.thread[host])
    parent = np.full(n, -1)
    local_parent = forest.parents()
    parent[host] = np.where(local_parent >= 0, host[np.maximum(local_parent, 0)], -1)

    # own category from the name, then inherited top-down: the outermost inheriting ancestor wins
    own = trace.by_name(_category_code, np.int64)
    category = np.where(is_host, own, -1)
    is_flop_op = trace.by_name(FLOP_OPS.match) & (trace.kind == OP)
    flop_owner = np.where(is_flop_op, np.arange(n), -1)
    subclass = trace.by_name(lambda name: name == "PythonSubclass") & is_host  # a DTensor's dispatch: _logical_ops
    in_optimizer = trace.by_name(classify.OPTIMIZER_STEP.match) & is_host
    in_attention = np.zeros(n, bool)
    in_attention[attention.score_ops(trace)] = True
    runs_code = (trace.kind == OP) | (trace.by_name(classify.COMPILED_GRAPH.match) & (trace.kind == ANNOTATION))
    inherits = np.isin(category, classify.INHERITED)
    for rows in forest.levels():
        rows = host[rows]
        p = parent[rows]
        rows, p = rows[p >= 0], p[p >= 0]
        take = inherits[p]
        category[rows[take]] = category[p[take]]
        inherits[rows[take]] = True
        owned = (flop_owner[p] >= 0) & ~subclass[rows]
        flop_owner[rows[owned]] = flop_owner[p[owned]]
        in_optimizer[rows] |= in_optimizer[p]
        in_attention[rows] |= in_attention[p]

    flop_owner[_logical_ops(parent, is_flop_op, subclass)] = -1  # its shard's op owns the FLOPs and the kernels
    in_backward, recomputed = _backward(trace, host, parent, forest, is_host)
    counted = np.flatnonzero(is_flop_op & (flop_owner == np.arange(n)))
    flops = np.zeros(n)
    flop_shapes = dict(zip(counted.tolist(), trace.shapes(counted)))
    flops[counted], warnings = counted_flops(trace.names_of(counted), list(flop_shapes.values()),
                                             lambda indices: _next_op_dims(trace, counted[indices]))

    byte_op = _byte_ops(trace, parent, flop_owner)
    bytes_read, bytes_written, byte_shapes = _moved_bytes(trace, np.flatnonzero(byte_op), flops)

    device = np.flatnonzero(np.isin(trace.kind, DEVICE_KINDS))
    device = device[np.argsort(trace.start[device], kind="stable")]
    launch = _launches(trace, device)
    runtime = np.flatnonzero(trace.kind == RUNTIME)
    enclosing_op = np.full(n, -1)
    if len(host):
        inner = forest.enclosing(trace.start[runtime], trace.thread[runtime])
        enclosing_op[runtime] = np.where(inner >= 0, host[np.maximum(inner, 0)], -1)
    launching_op = np.where(launch >= 0, enclosing_op[np.maximum(launch, 0)], -1)
    return Links(host=host, parent=parent, category=category, flop_owner=flop_owner, flops=flops,
                 flop_shapes=flop_shapes, byte_op=byte_op, bytes_read=bytes_read, bytes_written=bytes_written,
                 byte_shapes=byte_shapes, device=device, launch=launch, launching_op=launching_op, is_step=is_step,
                 in_optimizer=in_optimizer, in_attention=in_attention, in_backward=in_backward, recomputed=recomputed,
                 runs_code=runs_code, forest=forest, enclosing_op=enclosing_op), warnings


def _logical_ops(parent: np.ndarray, is_flop_op: np.ndarray, subclass: np.ndarray) -> np.ndarray:
    """Per row: a FLOP op that a tensor subclass dispatched to the op at its local shard (its child): a DTensor
    under tensor parallelism runs an op at its logical shape as the same op at the shard that runs, which counts,
    and the logical one above it does not."""
    logical = np.zeros(len(parent), bool)
    dispatched = np.flatnonzero(subclass & (parent >= 0))
    logical[parent[dispatched]] = is_flop_op[parent[dispatched]]
    return logical


def _backward(trace: Trace, host: np.ndarray, parent: np.ndarray, forest: Forest,
              is_host: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: inside (or being) an autograd node the backward ran, or a `*_backward` op; and a forward op run
    again inside a node (or inside one such), a nested node starting afresh (reentrant checkpointing runs its
    own backward inside CheckpointFunctionBackward)."""
    is_node = trace.by_name(classify.BACKWARD_NODE.match) & is_host
    in_backward = is_node | (trace.by_name(classify.BACKWARD_OP.match) & (trace.kind == OP))
    forward_op = trace.by_name(classify.FORWARD_OP.match) & (trace.kind == OP)
    recomputed = np.zeros(len(trace), bool)
    for rows in forest.levels():
        rows = host[rows]
        p = parent[rows]
        rows, p = rows[p >= 0], p[p >= 0]
        recomputed[rows] = ~is_node[rows] & (recomputed[p] | (in_backward[p] & forward_op[rows]))
        in_backward[rows] |= in_backward[p]
    return in_backward, recomputed


def outermost(links: Links, flags: np.ndarray) -> np.ndarray:
    """Per row: flagged, and its parent not (an outermost Optimizer.step span, an outermost re-run forward op)."""
    parent_in = np.zeros(len(flags), bool)
    has_parent = links.parent >= 0
    parent_in[has_parent] = flags[links.parent[has_parent]]
    return flags & ~parent_in


def _byte_ops(trace: Trace, parent: np.ndarray, flop_owner: np.ndarray) -> np.ndarray:
    """The ops whose bytes count, each byte once: the outermost FLOP op (not the ops inside it), and every other
    op that does its own work, that is no op inside it does any (a view, an empty, an autograd node or a Python
    frame does no work; _to_copy's bytes are its copy_'s)."""
    n = len(trace)
    work = (trace.kind == OP) & ~trace.by_name(
        lambda name: bool(classify.METADATA_OP.match(name) or classify.DISPATCH_ONLY_OP.match(name)))
    has_work_child = np.zeros(n, bool)  # through any spans that do none (aten::to → _to_copy → copy_)
    above = parent[work]
    while len(above):
        above = above[above >= 0]
        has_work_child[above[work[above]]] = True
        above = parent[above[~work[above]]]
    own = flop_owner == np.arange(n)
    return work & (own | ((flop_owner < 0) & ~has_work_child))


def _moved_bytes(trace: Trace, rows: np.ndarray, flops: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Bytes read and written per row (nbytes.py), worked out once per distinct op name and shapes (the FLOPs
    that size a GEMM's or a convolution's output follow from those, as the first such row's); and the shapes
    decoded, for the later stages to reuse."""
    read, written = np.zeros(len(trace)), np.zeros(len(trace))
    codes, values = trace.distinct_shapes(rows)
    code_of_row = np.full(len(trace), -1)
    code_of_row[rows] = codes
    keys = trace.name[rows].astype(np.int64) * max(len(values), 1) + codes
    distinct, first, back = np.unique(keys, return_index=True, return_inverse=True)
    moved = np.full((len(distinct), 2), np.nan)
    for j, row in enumerate(rows[first]):
        shape = values[codes[first[j]]]
        found = op_bytes(trace.names[trace.name[row]], shape.dims, shape.types, shape.concrete, flops[row])
        if found is not None:
            moved[j] = found
    read[rows], written[rows] = moved[back, 0], moved[back, 1]
    return read, written, (code_of_row, values)


def input_shapes(trace: Trace, links: Links, rows: np.ndarray) -> list:
    """The rows' recorded input shapes: the byte ops' as links decoded them, the others decoded now."""
    codes, values = links.byte_shapes
    known = codes[rows] >= 0
    out = [None] * len(rows)
    for j, shape in zip(np.flatnonzero(~known), trace.shapes(rows[~known])):
        out[j] = shape
    for j, code in zip(np.flatnonzero(known), codes[rows[known]]):
        out[j] = values[code]
    return out


def _next_op_dims(trace: Trace, rows: np.ndarray) -> list:
    """For each op, the first input shape of the next op that starts after it ends on its thread (a forward
    convolution's consumer, usually a norm, activation or add), or None."""
    ops = np.flatnonzero(trace.kind == OP)
    keys = trace.on_one_axis(ops, trace.start[ops])
    order = np.argsort(keys, kind="stable")
    keys, ops = keys[order], ops[order]
    at = np.searchsorted(keys, trace.on_one_axis(rows, trace.end[rows]))
    nxt = ops[np.minimum(at, len(ops) - 1)]
    found = (at < len(ops)) & (trace.thread[nxt] == trace.thread[rows])
    return [d.dims[0] if ok and d.dims and isinstance(d.dims[0], list) else None
            for ok, d in zip(found, trace.shapes(nxt, DimsArgs))]


def _category_code(name: str) -> int:
    code = classify.op_category(name)
    return -1 if code is None else code


def _launches(trace: Trace, device: np.ndarray) -> np.ndarray:
    """The runtime row whose correlation id each device event carries, or -1."""
    runtime = np.flatnonzero((trace.kind == RUNTIME) & (trace.correlation >= 0))
    keys = trace.correlation[runtime]
    order = np.argsort(keys, kind="stable")
    keys, runtime = keys[order], runtime[order]
    want = trace.correlation[device]
    pos = np.clip(np.searchsorted(keys, want), 0, max(len(keys) - 1, 0))
    found = (len(keys) > 0) & (want >= 0) & (keys[pos] == want) if len(keys) else np.zeros(len(device), bool)
    return np.where(found, runtime[pos] if len(keys) else -1, -1)
