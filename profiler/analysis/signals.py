"""Measurements that the diagnosis cites as evidence: how many ops and kernels a step runs, how short the
kernels are, which matmuls are too small to reach the device's rate, which attention and optimizer
implementations ran, what the data loader and the copies were. Totals over the analysed steps, so that the
cycles of one rank add up.
"""

import math
import re
from collections import Counter

import msgspec
import numpy as np

from profiler.analysis import collectives
from profiler.analysis.breakdown import Breakdown
from profiler.analysis.fusion import fusable_traffic
from profiler.analysis.health import LostWork
from profiler.analysis.records import Signals
from profiler.settings import FLOOR_PERCENTILE, MIN_TINY_OPS, SMALL_DIM, TINY_NUMEL
from profiler.trace import classify
from profiler.trace.classify import COMPILED_REGION, DATALOADER_SPAN, FUSED_ATTENTION, OPTIMIZER_STEP, SOFTMAX
from profiler.trace.dtypes import BYTES_OF_SCALAR_TYPE
from profiler.trace.kinds import KERNEL, MEMCPY, OP, PYTHON
from profiler.trace.links import Links, input_shapes, outermost
from profiler.trace.load import DimsArgs, Trace
from profiler.trace.steps import Steps

TWO_D_MATMUL = re.compile(r"^aten::(mm|addmm)$")
FUSED_OPTIMIZER = re.compile(r"^aten::_fused_")
FOREACH_OPTIMIZER = re.compile(r"^aten::_foreach_")


def fixed_cost(durations: np.ndarray, numels: np.ndarray) -> float:
    """The part of these ops' time that would not grow with their size. An op on at most TINY_NUMEL elements
    does next to no work: all of its time is fixed cost. A larger op is charged the cost of a near-empty op:
    the median duration of the tiny ones (the 10th percentile of all, where fewer than 5 tiny ops ran)."""
    if not len(durations):
        return 0.0
    tiny = numels <= TINY_NUMEL
    floor = (float(np.median(durations[tiny])) if tiny.sum() >= MIN_TINY_OPS
             else float(np.percentile(durations, FLOOR_PERCENTILE)))
    return float(durations[tiny].sum() + np.minimum(durations[~tiny], floor).sum())


def tensor_shapes(dims: list) -> list[tuple]:
    """Every tensor shape in an op's recorded input dims, tensor lists included (scalars have no shape)."""
    out = []
    for d in dims:
        if isinstance(d, list) and d:
            if isinstance(d[0], int):
                out.append(tuple(d))
            else:
                out.extend(tensor_shapes(d))
    return out


def parameter_shapes(trace: Trace, links: Links) -> set[tuple]:
    """The tensor shapes the optimizer works on: the model's parameters (empty when no optimizer step ran)."""
    optimizer_ops = np.flatnonzero(links.in_optimizer & (trace.kind == OP))
    distinct = {id(sh): sh for sh in trace.shapes(optimizer_ops, DimsArgs)}.values()  # rows share decoded shapes
    return {shape for sh in distinct for shape in tensor_shapes(sh.dims)}


def size_and_role(trace: Trace, links: Links, rows: np.ndarray, params: set[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """Per op: the elements of its first tensor input (huge where unrecorded), and whether all its tensors
    are parameter-shaped (per-step work such as weight casts, gradient clipping and the optimizer itself)."""
    unique, inverse = np.unique(rows, return_inverse=True)
    shapes = input_shapes(trace, links, unique)
    measured = {}  # per distinct decoded shape: rows with the same recorded shapes share one
    for shape in {id(s): s for s in shapes}.values():
        tensors = tensor_shapes(shape.dims)
        measured[id(shape)] = ((math.prod(tensors[0]), bool(params) and set(tensors) <= params) if tensors
                               else (np.iinfo(np.int64).max, False))
    numel = np.array([measured[id(s)][0] for s in shapes], np.int64)
    on_params = np.array([measured[id(s)][1] for s in shapes], bool)
    return numel[inverse], on_params[inverse]


def _add_by_name(counter: Counter, trace: Trace, rows: np.ndarray, us: np.ndarray):
    """Add each row's time to its name's total, one bincount over the name ids."""
    totals = np.bincount(trace.name[rows], weights=us, minlength=len(trace.names))
    for i in np.flatnonzero(totals):
        counter[trace.names[i]] += float(totals[i])


def measure(trace: Trace, links: Links, steps: Steps, bd: Breakdown, work: LostWork) -> Signals:
    """A file's signals, group by group: totals over its analysed steps (`work`: the launches and the device work
    the trace lost, health.py)."""
    s = Signals(steps=len(steps.ids))
    replays, lost = (rows[bd.row_step[rows] >= 0] for rows in (work.replays, work.lost))
    s.graph_launches = len(replays)
    graph = np.isin(lost, replays)
    s.lost_launches = +Counter(graph=int(graph.sum()), kernel=int((~graph).sum()))
    count_ops(s, trace, links, bd)
    measure_collectives(s, trace, links, bd)
    totals = collectives.account(trace, links, steps, bd)
    s.collective_calls, s.collective_in_bytes = totals["calls"], totals["bytes"]
    s.collective_us, s.collective_exposed_us = totals["us"], totals["exposed_us"]
    s.parallel_marks, s.fsdp_unit_us = collectives.marks(trace), collectives.fsdp_units(trace, bd)
    s.pipeline_forwards = collectives.micro_batches(trace, bd)
    measure_device_work(s, trace, links, steps, bd)
    measure_fixed_costs(s, trace, links, steps, bd)
    measure_matmuls(s, trace, links, steps, bd)
    measure_stalls(s, trace, links, steps, bd)
    measure_kernel_names_and_one_offs(s, trace, links, steps, bd)
    traffic = fusable_traffic(trace, links, steps, bd)
    s.fusable_bytes, s.elementwise_bytes, s.elementwise_byte_us = traffic.intermediate, traffic.moved, traffic.us
    return s


def count_ops(s: Signals, trace: Trace, links: Links, bd: Breakdown):
    """Ops of interest by name, backward ops, the optimizer's ops and class, the data loaders, and the tokens each
    embedding table looked up."""
    in_steps = bd.row_step >= 0
    ops = np.flatnonzero((trace.kind == OP) & in_steps)
    s.host_ops = len(ops)
    interesting = trace.by_name(lambda n: bool(FUSED_ATTENTION.match(n) or SOFTMAX.match(n) or FUSED_OPTIMIZER.match(n)
                                               or FOREACH_OPTIMIZER.match(n) or COMPILED_REGION.match(n))
                                or n in ("aten::bmm", "aten::baddbmm"))
    s.op_counts = Counter(trace.names_of(ops[interesting[ops]]))
    s.backward_ops = int(trace.by_name(lambda n: "backward" in n.lower())[ops].sum())
    opt_rows = np.flatnonzero(trace.by_name(OPTIMIZER_STEP.match) & links.in_optimizer & in_steps)  # host spans
    # ops that start inside an optimizer span on its thread
    op_keys = np.sort(trace.on_one_axis(ops, trace.start[ops]))
    s.optimizer_ops = int((np.searchsorted(op_keys, trace.on_one_axis(opt_rows, trace.end[opt_rows]), side="right")
                           - np.searchsorted(op_keys, trace.on_one_axis(opt_rows, trace.start[opt_rows]))).sum())
    s.optimizers = Counter(name.split("#", 1)[1].rsplit(".", 1)[0] for name in trace.names_of(opt_rows))
    s.optimizer_op_counts = Counter(trace.names_of(ops[links.in_optimizer[ops]]))
    loaders = np.flatnonzero(trace.by_name(DATALOADER_SPAN.match) & in_steps)
    s.dataloaders = Counter(name.split("#", 1)[-1].split(".")[0] for name in trace.names_of(loaders))
    lookups = np.flatnonzero(trace.by_name(lambda n: n == "aten::embedding") & (trace.kind == OP) & in_steps)
    for sh in trace.shapes(lookups, DimsArgs):
        if len(sh.dims) >= 2 and len(sh.dims[0]) == 2 and all(isinstance(d, int) for d in sh.dims[1]):
            s.embedding_tokens[tuple(sh.dims[0])] += math.prod(sh.dims[1])


def measure_collectives(s: Signals, trace: Trace, links: Links, bd: Breakdown):
    """Collective calls by name (the outermost of nested ones), and their message bytes where recorded."""
    outermost = (links.parent < 0) | (links.category[np.maximum(links.parent, 0)] != classify.COMMUNICATION)
    calls = np.flatnonzero((bd.row_step >= 0) & (links.category == classify.COMMUNICATION) & (trace.kind == OP)
                           & outermost)
    s.collectives = Counter(trace.names_of(calls))
    for r in calls.tolist():  # the reader kept the message sizes of record_param_comms, where its args give them
        if r in trace.collectives:
            nelems, dtype = trace.collectives[r]
            s.collective_bytes += nelems * BYTES_OF_SCALAR_TYPE.get(dtype, 0)


def time_by_category(trace: Trace, links: Links, bd: Breakdown, rows: np.ndarray, dev_in: np.ndarray) -> Counter:
    """The time of the ops flagged in `rows` (and of what runs inside them), by breakdown category: the device
    time of the kernels they launched, or on a CPU their exclusive time."""
    out: Counter = Counter()
    if len(links.device):
        launcher = links.launching_op
        launched = dev_in & (launcher >= 0) & rows[np.maximum(launcher, 0)]
        dur = trace.end[links.device[launched]] - trace.start[links.device[launched]]
        for category in np.unique(bd.device_category[launched]):
            out[classify.CATEGORIES[category]] = float(dur[bd.device_category[launched] == category].sum())
        return out
    flagged = np.flatnonzero(rows & (bd.row_step >= 0) & (bd.row_category >= 0))
    for category in np.unique(bd.row_category[flagged]):
        out[classify.CATEGORIES[category]] = float(bd.self_us[flagged[bd.row_category[flagged] == category]].sum())
    return out


def measure_device_work(s: Signals, trace: Trace, links: Links, steps: Steps, bd: Breakdown):
    """Kernel lengths, the kernels the optimizer launched, unfused attention's time by category, and the bytes
    each kind of copy moved."""
    dev_in = steps.window_index(trace.start[links.device]) >= 0
    dur = trace.end - trace.start
    is_kernel = dev_in & (trace.kind[links.device] == KERNEL)
    s.kernel_us = dur[links.device[is_kernel]].tolist()
    launcher = links.launching_op
    s.optimizer_kernels = int((is_kernel & (launcher >= 0) & links.in_optimizer[np.maximum(launcher, 0)]).sum())
    in_steps = bd.row_step >= 0
    s.attention_us = time_by_category(trace, links, bd, links.in_attention, dev_in)
    s.recompute_us = time_by_category(trace, links, bd, links.recomputed, dev_in)
    rerun = np.flatnonzero(outermost(links, links.recomputed) & in_steps)
    _add_by_name(s.recompute_ops, trace, rerun, dur[rerun])
    s.recompute_calls.update(trace.names_of(rerun))
    s.recompute_written_bytes = float(np.nansum(links.bytes_written[links.recomputed & in_steps & links.byte_op]))
    s.attention_flops = float(links.flops[links.in_attention & in_steps].sum())
    copies = links.device[dev_in & (trace.kind[links.device] == MEMCPY)]
    _add_by_name(s.memcpy_bytes, trace, copies, trace.nbytes[copies].astype(float))
    _add_by_name(s.memcpy_us, trace, copies, dur[copies])


def measure_fixed_costs(s: Signals, trace: Trace, links: Links, steps: Steps, bd: Breakdown):
    """Per-step work on parameters, then the fixed per-op cost of the other compute and copies (outside
    optimizer steps and attention, whose overhead is non_fused)."""
    dev_in = steps.window_index(trace.start[links.device]) >= 0
    dur = trace.end - trace.start
    params = parameter_shapes(trace, links)
    for category in (classify.OTHER_COMPUTE, classify.MEMORY):
        name = classify.CATEGORIES[category]
        if len(links.device):  # kernels, sized by the op that launched them
            sel = np.flatnonzero(dev_in & (bd.device_category == category))
            op = links.launching_op[sel]
            time_us = dur[links.device[sel]]
            numels = np.full(len(sel), np.iinfo(np.int64).max)
            on_params = np.zeros(len(sel), bool)
            numels[op >= 0], on_params[op >= 0] = size_and_role(trace, links, op[op >= 0], params)
            other = ~on_params & ~((op >= 0) & (links.in_optimizer | links.in_attention)[np.maximum(op, 0)])
        else:  # ops' exclusive time on the training thread
            sel = np.flatnonzero((bd.row_category == category) & (bd.row_step >= 0) & (bd.self_us > 0))
            time_us = bd.self_us[sel]
            numels, on_params = size_and_role(trace, links, sel, params)
            other = ~on_params & ~links.in_optimizer[sel] & ~links.in_attention[sel]
        s.parameter_us[name] = float(time_us[on_params].sum())
        s.fixed_us[name] = fixed_cost(time_us[other], numels[other])


def measure_matmuls(s: Signals, trace: Trace, links: Links, steps: Steps, bd: Breakdown):
    """The counted matmuls' time (their kernels' on a GPU), the matmul time without a FLOP count by op, and the
    2-D matmuls with a dimension under SMALL_DIM."""
    in_steps = bd.row_step >= 0
    dur = trace.end - trace.start
    counted = np.flatnonzero((links.flops > 0) & in_steps)
    if len(links.device):  # the FLOP op's time is its kernels' device time
        dev_in = steps.window_index(trace.start[links.device]) >= 0
        owner = np.where(links.launching_op >= 0, links.flop_owner[np.maximum(links.launching_op, 0)], -1)
        keep = dev_in & (owner >= 0)
        op_time = np.bincount(owner[keep], weights=dur[links.device][keep], minlength=len(trace))
        uncounted = (dev_in & (bd.device_category == classify.MATMUL)
                     & ((owner < 0) | (links.flops[np.maximum(owner, 0)] == 0)))
        op = links.launching_op[uncounted]
        label = np.where(op >= 0, op, links.device[uncounted])
        _add_by_name(s.uncounted_matmul_us, trace, label, dur[links.device[uncounted]])
    else:
        op_time = dur
        uncounted = np.flatnonzero(in_steps & (bd.row_category == classify.MATMUL) & (links.flop_owner < 0)
                                   & (bd.self_us > 0))
        _add_by_name(s.uncounted_matmul_us, trace, uncounted, bd.self_us[uncounted])
    s.matmul_us = float(op_time[counted].sum())
    keys: dict[int, tuple] = {}  # per distinct decoded shape (rows with the same recorded text share one)
    for r in counted.tolist():
        shape = links.flop_shapes[r]
        key = keys.get(id(shape))
        if key is None:
            key = keys[id(shape)] = tuple(msgspec.json.encode(x).decode() for x in (shape.dims, shape.types,
                                                                                      shape.concrete))
        key = (trace.names[trace.name[r]], *key)
        s.matmul_calls[key] += 1
        s.matmul_call_us[key] += float(op_time[r])
    two_d = counted[trace.by_name(TWO_D_MATMUL.match)[counted]]
    for r, shape in zip(two_d, (links.flop_shapes[r] for r in two_d.tolist())):
        dims = shape.dims[-2:]
        if len(dims) == 2 and all(len(d) == 2 for d in dims) and min(dims[0][0], dims[0][1], dims[1][1]) < SMALL_DIM:
            s.small_matmul_us += float(op_time[r])
            s.small_matmul_flops += float(links.flops[r])


def measure_stalls(s: Signals, trace: Trace, links: Links, steps: Steps, bd: Breakdown):
    """Allocator and synchronizing runtime calls with the ops that made them, and data preparation in Python."""
    runtime_in = np.flatnonzero((bd.row_step >= 0) & trace.by_name(classify.stall_call))
    s.stall_calls = Counter(trace.names_of(runtime_in))
    sites = links.enclosing_op[runtime_in]
    s.stall_sites = Counter(trace.names_of(sites[sites >= 0]))
    prep = np.flatnonzero((trace.kind == PYTHON) & trace.by_name(classify.DATA_PREP_PYTHON.search)
                          & (steps.host_index(trace.start) >= 0))
    _add_by_name(s.data_prep_us, trace, prep, (trace.end - trace.start)[prep])


def measure_kernel_names_and_one_offs(s: Signals, trace: Trace, links: Links, steps: Steps, bd: Breakdown):
    """What a trace without shapes or input types still tells: the matmul kernels whose names say float32 on
    SIMT cores, the one-off spans (compilation, long runtime calls, first library calls) and the collective
    kernels' lengths (a set-up stands out among them)."""
    host_in = steps.host_index(trace.start) >= 0
    once = bd.one_offs
    inside = host_in[once.rows]
    for name, us, keep in zip(once.names, once.own_us, inside):  # by what the evidence calls it (a JIT
        if keep:  # compilation names what it compiled)
            s.warmup_us[name] += float(us)
    if not len(links.device):
        return
    dur = (trace.end - trace.start)[links.device]
    dev_in = (steps.window_index(trace.start[links.device]) >= 0) & (trace.kind[links.device] == KERNEL)
    matmul = dev_in & (bd.device_category == classify.MATMUL)
    fp32 = matmul & trace.by_name(classify.fp32_simt_kernel)[links.device]
    _add_by_name(s.fp32_matmul_us, trace, links.device[fp32], dur[fp32])
    s.collective_kernel_us = dur[dev_in & (bd.device_category == classify.COMMUNICATION)].tolist()
