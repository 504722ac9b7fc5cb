"""Training steps: `ProfilerStep#N` spans, extended on GPU traces to the end of the device work they launched.

The extension follows torch-tb-profiler, so that step times compare like with like: a step's device work
is what the runtime calls made inside its host span launched; a step starts no earlier than the previous
one ended; and a last step that launched under 80% of the device events of the one before is dropped, since
the profiler stopped before its kernels were recorded.
"""

from dataclasses import dataclass

import numpy as np

from profiler.facts import Facts, Note
from profiler.settings import LAST_STEP_DEVICE_SHARE
from profiler.trace.classify import DATALOADER_SPAN, OPTIMIZER_STEP
from profiler.trace.errors import TraceError
from profiler.trace.links import Links, outermost
from profiler.trace.load import Trace
from profiler.trace.location import file_name


@dataclass(kw_only=True)
class Steps:
    ids: np.ndarray  # step numbers N
    host_start: np.ndarray
    host_end: np.ndarray
    start: np.ndarray  # the analysed window
    end: np.ndarray

    @property
    def duration(self) -> np.ndarray:
        return self.end - self.start

    def host_index(self, times: np.ndarray) -> np.ndarray:
        """Index of the step whose host span holds each instant, or -1."""
        return _index(self.host_start, self.host_end, times)

    def window_index(self, times: np.ndarray) -> np.ndarray:
        """Index of the step whose analysed window (extended to its device work) holds each instant, or -1."""
        return _index(self.start, self.end, times)


def _index(starts: np.ndarray, ends: np.ndarray, times: np.ndarray) -> np.ndarray:
    i = np.searchsorted(starts, times, side="right") - 1
    return np.where((i >= 0) & (times < ends[np.maximum(i, 0)]), i, -1)


def find_steps(trace: Trace, links: Links) -> tuple[Steps, list[Note]]:
    """The analysed windows, and warnings for what was missing or dropped."""
    warnings: list[Note] = []
    rows = np.flatnonzero(links.is_step)
    if len(rows):
        numbers = (name[len("ProfilerStep#"):] for name in trace.names_of(rows))
        ids = np.array([int(number) if number.isdigit() else -1 for number in numbers])
        rows, ids, said = _unique_steps(trace, rows, ids)
        warnings += said
        host_start, host_end = trace.start[rows], trace.end[rows]
    else:
        host_start, host_end, marker = iterations(trace, links)
        ids = np.arange(1, len(host_start) + 1)
        warnings.append(Note("no_step_markers", {"file": file_name(trace.path), **marker}))
    start, end = host_start.copy(), host_end.copy()
    if len(links.device):
        start, end, keep = _extend_to_device(trace, links, host_start, host_end)
        if keep < len(ids):
            warnings.append(Note("last_step_dropped", {"step": int(ids[-1]),
                                                       "device_share_pct": 100 * LAST_STEP_DEVICE_SHARE}))
        ids, host_start, host_end, start, end = (a[:keep] for a in (ids, host_start, host_end, start, end))
    timed = end > start  # a window of no length has no shares to give: never divided by
    if not timed.all():
        warnings.append(Note("zero_length_steps_dropped", {"steps": int((~timed).sum())}))
        ids, host_start, host_end, start, end = (a[timed] for a in (ids, host_start, host_end, start, end))
    if not len(ids):
        raise TraceError(f"{file_name(trace.path)}: no step with a duration: nothing to analyse")
    return Steps(ids=ids, host_start=host_start, host_end=host_end, start=start, end=end), warnings


def iterations(trace: Trace, links: Links) -> tuple[np.ndarray, np.ndarray, Facts]:
    """Iteration windows of a trace without ProfilerStep: each iteration ends with the optimizer's step, or
    begins with a DataLoader's __next__; else the whole trace is one window. Also says which marker was used."""
    host = links.host
    first = float(trace.start[host].min() if len(host) else trace.start.min())
    last = float(trace.end.max())
    optimizer = np.flatnonzero(outermost(links, links.in_optimizer) & trace.by_name(OPTIMIZER_STEP.match))
    if len(optimizer) >= 2:
        ends = np.sort(trace.end[optimizer])
        name = trace.names[trace.name[optimizer[0]]]
        return np.concatenate(([first], ends[:-1])), ends, {"by": "optimizer_step", "iterations": len(ends),
                                                            "optimizer": name}
    loader = host[trace.by_name(DATALOADER_SPAN.match)[host]]
    if len(loader) >= 2:
        starts = np.sort(trace.start[loader])
        return starts, np.append(starts[1:], last), {"by": "dataloader", "iterations": len(starts)}
    return np.array([first]), np.array([last]), {"by": "whole_trace", "iterations": 1}


def _unique_steps(trace: Trace, rows: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[Note]]:
    """Steps in time order, each step number once (a repeated number keeps its first span), and a note where one
    repeated."""
    order = np.argsort(trace.start[rows], kind="stable")
    rows, ids = rows[order], ids[order]
    _, first = np.unique(ids, return_index=True)
    if len(first) == len(ids):
        return rows, ids, []
    keep = np.sort(first)
    return rows[keep], ids[keep], [Note("repeated_step_numbers", {"markers": len(ids) - len(first)})]


def _extend_to_device(trace: Trace, links: Links, host_start, host_end):
    launched = links.launch >= 0
    dev, rt = links.device[launched], links.launch[launched]
    # a launch belongs to the step whose host span holds the whole runtime call
    step = np.searchsorted(host_start, trace.start[rt], side="right") - 1
    inside = (step >= 0) & (trace.end[rt] <= host_end[np.maximum(step, 0)])
    step, dev = step[inside], dev[inside]
    n = len(host_start)
    count = np.bincount(step, minlength=n)
    device_end = np.full(n, -np.inf)
    np.maximum.at(device_end, step, trace.end[dev])
    first_device = np.full(n, np.inf)
    np.minimum.at(first_device, step, trace.start[dev])

    # the first step starts after device work that no step launched and that ended before its own (where it
    # launched none, as in a trace of device events alone, before the step itself)
    unmatched = np.ones(len(trace), bool)
    unmatched[dev] = False
    own = first_device[0] if np.isfinite(first_device[0]) else host_start[0]
    before = links.device[unmatched[links.device] & (trace.end[links.device] < own)]
    prev_end = max(float(host_start[0]), float(trace.end[before].max()) if len(before) else -np.inf)
    start, end = np.empty(n), np.empty(n)
    for i in range(n):
        start[i] = max(prev_end, host_start[i])
        end[i] = max(host_end[i], device_end[i], start[i])
        prev_end = end[i]
    keep = n
    with_device = np.flatnonzero(count > 0)
    if n > 1 and len(with_device):
        last = with_device[-1]
        keep = last + 1
        if last > 0 and count[last - 1] * LAST_STEP_DEVICE_SHARE > count[last]:
            keep = last
    return start, end, keep
