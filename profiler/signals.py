"""Measurements that the diagnosis cites as evidence: how many ops and kernels a step runs, how short the
kernels are, which matmuls are too small to reach the device's rate, which attention and optimizer
implementations ran, what the data loader and the copies were. Totals over the analysed steps, so that the
cycles of one rank add up.
"""

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from profiler.links import Links
from profiler.load import KERNEL, MEMCPY, OP, Trace
from profiler.steps import Steps

SMALL_DIM = 64  # a matmul with a dimension below this runs far below a device's large-matmul rate
TWO_D_MATMUL = re.compile(r"^aten::(mm|addmm)$")
FUSED_ATTENTION = re.compile(r"^aten::_?(scaled_dot_product_(flash|efficient|cudnn)_attention|flash_attention|efficient_attention)")
SOFTMAX = re.compile(r"^aten::_?(softmax|safe_softmax)$")
FUSED_OPTIMIZER = re.compile(r"^aten::_fused_")
FOREACH_OPTIMIZER = re.compile(r"^aten::_foreach_")


@dataclass
class Signals:
    steps: int = 0
    host_ops: int = 0
    kernel_us: list = field(default_factory=list)  # durations of the kernels in the steps
    small_matmul_us: float = 0.0  # time of 2-D matmuls with a dimension < SMALL_DIM
    small_matmul_flops: float = 0.0
    matmul_us: float = 0.0  # time of all counted FLOP ops (device time on GPU, duration on CPU)
    op_counts: Counter = field(default_factory=Counter)  # ops of interest by name, over the steps
    optimizer_ops: int = 0  # host ops inside Optimizer.step spans
    dataloaders: Counter = field(default_factory=Counter)
    memcpy_bytes: Counter = field(default_factory=Counter)  # by memcpy kind (HtoD Pageable, ...)

    def add(self, other: "Signals"):
        """Sum another file's signals into these (numbers add, lists concatenate, counters merge)."""
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


def measure(trace: Trace, links: Links, steps: Steps) -> Signals:
    host_step = steps.host_index(trace.start)
    in_steps = host_step >= 0
    ops = np.flatnonzero((trace.kind == OP) & in_steps)
    names = trace.names
    s = Signals(steps=len(steps.ids), host_ops=len(ops))

    interesting = [i for i, n in enumerate(names) if FUSED_ATTENTION.match(n) or SOFTMAX.match(n)
                   or FUSED_OPTIMIZER.match(n) or FOREACH_OPTIMIZER.match(n) or n in ("aten::bmm", "aten::baddbmm")]
    s.op_counts = Counter(names[i] for i in trace.name[ops[np.isin(trace.name[ops], interesting)]])
    optimizer_spans = [i for i, n in enumerate(names) if n.startswith("Optimizer.step#")]
    opt_rows = np.flatnonzero(np.isin(trace.name, optimizer_spans) & in_steps)
    # ops that start inside an optimizer span on its thread: threads laid end to end on one time axis
    lane = float(trace.end.max()) + 1.0
    op_keys = np.sort(trace.thread[ops] * lane + trace.start[ops])
    s.optimizer_ops = int((np.searchsorted(op_keys, trace.thread[opt_rows] * lane + trace.end[opt_rows], side="right")
                           - np.searchsorted(op_keys, trace.thread[opt_rows] * lane + trace.start[opt_rows])).sum())
    loaders = np.flatnonzero(np.isin(trace.name, [i for i, n in enumerate(names) if n.startswith("enumerate(Data")])
                             & in_steps)
    s.dataloaders = Counter(names[i].split("#", 1)[-1].split(".")[0] for i in trace.name[loaders])

    device_step = np.searchsorted(steps.start, trace.start[links.device], side="right") - 1
    dev_in = (device_step >= 0) & (trace.start[links.device] < steps.end[np.maximum(device_step, 0)])
    dur = trace.end - trace.start
    kernels = links.device[dev_in & (trace.kind[links.device] == KERNEL)]
    s.kernel_us = dur[kernels].tolist()
    copies = links.device[dev_in & (trace.kind[links.device] == MEMCPY)]
    for r in copies:
        s.memcpy_bytes[names[trace.name[r]]] += int(trace.nbytes[r])

    counted = np.flatnonzero((links.flops > 0) & in_steps)
    if len(links.device):  # the FLOP op's time is its kernels' device time
        owner = np.where(links.launching_op >= 0, links.flop_owner[np.maximum(links.launching_op, 0)], -1)
        keep = dev_in & (owner >= 0)
        op_time = np.bincount(owner[keep], weights=dur[links.device][keep], minlength=len(trace))
    else:
        op_time = dur
    s.matmul_us = float(op_time[counted].sum())
    two_d = counted[np.array([bool(TWO_D_MATMUL.match(names[i])) for i in trace.name[counted]], dtype=bool)]
    for r, shape in zip(two_d, trace.shapes(two_d)):
        dims = shape.dims[-2:]
        if len(dims) == 2 and all(len(d) == 2 for d in dims) and min(dims[0][0], dims[0][1], dims[1][1]) < SMALL_DIM:
            s.small_matmul_us += float(op_time[r])
            s.small_matmul_flops += float(links.flops[r])
    return s
