"""What fusing the elementwise, norm, softmax and optimizer ops could save in memory traffic.

Within a run of such ops one after another on a thread (CPU) or a stream (GPU), each op reads what the one before
wrote: fused into one kernel, that intermediate is never written nor read back. Per pair of neighbours the
intermediate is taken as the smaller of the first op's writes and the second op's reads, counted twice (the write
and the read). Kineto records no tensor identities, so this is an estimate by sizes: a neighbour that reads
another tensor of the same size counts too, and it never counts more than the pair moved.
"""

from dataclasses import dataclass

import numpy as np

from profiler.analysis.breakdown import Breakdown
from profiler.trace import classify
from profiler.trace.links import Links
from profiler.trace.load import Trace
from profiler.trace.steps import Steps


@dataclass(frozen=True)
class Traffic:
    intermediate: float  # bytes per the analysed steps that fusion would not move
    moved: float  # bytes the ops moved, where their shapes say
    us: float  # time those ops took (device time, or duration on a CPU)


def fusable_traffic(trace: Trace, links: Links, steps: Steps, bd: Breakdown) -> Traffic:
    """The elementwise / norm / softmax / optimizer ops' traffic over the analysed steps, and its fusable part."""
    dur = trace.end - trace.start
    if len(links.device):  # kernels in stream order, each counted for the op that launched it
        inside = steps.window_index(trace.start[links.device]) >= 0
        events = links.device[inside]
        call, other = links.launching_op[inside], bd.device_category[inside] == classify.OTHER_COMPUTE
    else:  # the byte ops on their threads
        events = np.flatnonzero(links.byte_op & (bd.row_step >= 0))
        call, other = events, bd.row_category[events] == classify.OTHER_COMPUTE
    order = np.lexsort((trace.start[events], trace.thread[events]))
    events, call, other = events[order], call[order], other[order]
    read = np.where(call >= 0, links.bytes_read[np.maximum(call, 0)], np.nan)
    written = np.where(call >= 0, links.bytes_written[np.maximum(call, 0)], np.nan)
    known = other & (call >= 0) & links.byte_op[np.maximum(call, 0)] & (read + written > 0)
    first = np.ones(len(call), bool)  # an op's first kernel stands for the op
    first[1:] = (call[1:] != call[:-1]) | (call[1:] < 0)
    us = float(dur[events[known]].sum())
    events, read, written, known = events[first], read[first], written[first], known[first]
    moved = float((read + written)[known].sum())
    pairs = known[:-1] & known[1:] & (trace.thread[events[:-1]] == trace.thread[events[1:]])
    intermediate = float(2 * np.minimum(written[:-1], read[1:])[pairs].sum())
    return Traffic(min(intermediate, moved), moved, us)
