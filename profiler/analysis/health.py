"""What a trace holds and what it lost, read before any number: every number rests on it.

- What it records: input shapes and their dtypes, memory, Python stacks, device events, step markers
  (`Recorded`; what each one's absence costs, and the torch.profiler argument that records it, report/notes.py).
- What it lost: kernel launches whose correlation id no device event carries (a profiler that dropped its
  records; a CUDA graph replayed without its kernels), and device events outside the host's recorded range with
  no launch. Launches made during a stream capture are recorded into a graph, not run: they lose nothing.

A lost kernel ran after the device work launched before it and before the work launched after it (a stream runs
in launch order), for about as long as the same op's recorded launches ran (their median; a graph launch without
any recorded kernel: the whole stretch). That time, where no recorded device work covers it, is the breakdown's
`unrecorded` time: time the trace cannot name, never called idle.
"""

from dataclasses import dataclass

import numpy as np

from profiler.analysis.records import Recorded
from profiler.facts import Note
from profiler.trace import classify
from profiler.trace.kinds import DEVICE_KINDS, OP, PYTHON, RUNTIME
from profiler.trace.links import Links
from profiler.trace.load import Trace
from profiler.trace.location import file_name

NO_SPANS = (np.zeros(0), np.zeros(0))


@dataclass(frozen=True)
class LostWork:
    """The trace's kernel and graph launches (rows), those whose device work it lost, and the stretches (starts,
    ends) where that work ran."""

    launches: np.ndarray
    replays: np.ndarray  # the graph launches among them
    lost: np.ndarray
    spans: tuple[np.ndarray, np.ndarray] = NO_SPANS


def recorded(trace: Trace, links: Links, work: LostWork) -> Recorded:
    """Which of torch.profiler's optional parts the trace holds (device events: also where nothing was launched
    to record, a CPU run's)."""
    codes = np.unique(trace.shape[trace.kind == OP]).tolist()
    keys = [trace.shape_keys[c] for c in codes if c > 0]
    return Recorded(shapes=any(k[0] or k[1] for k in keys), dtypes=any(k[2] for k in keys),
                    memory=len(trace.memory) > 0, stacks=bool((trace.kind == PYTHON).any()),
                    device_events=len(links.device) > 0 or not len(work.launches),
                    step_markers=bool(links.is_step.any()))


def lost_device_work(trace: Trace, links: Links) -> tuple[LostWork, list[Note]]:
    """What device work the trace lost and where it ran, and notes that count it."""
    launches = np.flatnonzero(trace.by_name(classify.KERNEL_LAUNCH_CALL.match) & (trace.kind == RUNTIME)
                              & (trace.correlation >= 0))
    graph = trace.by_name(classify.GRAPH_LAUNCH_CALL.match)
    replays = launches[graph[launches]]
    if not len(links.device):  # nothing recorded on the device to tell lost work from
        return LostWork(launches, replays, np.zeros(0, np.int64)), []
    ran = np.zeros(len(trace), bool)
    ran[links.launch[links.launch >= 0]] = True
    lost = launches[~ran[launches] & ~_captured(trace, launches)]
    notes = []
    name = file_name(trace.path)
    if len(replays):
        replayed = int(graph[links.launch[links.launch >= 0]].sum())  # graphs' kernels carry their launch's id
        notes.append(Note("graph_replays", {"file": name, "launches": len(replays), "kernels": replayed,
                                            "without_kernels": int(graph[lost].sum())}))
    if (kernels := int((~graph[lost]).sum())):
        notes.append(Note("kernels_not_recorded", {"file": name, "launches": kernels,
                                                   "of_launches": int((~graph[launches]).sum())}))
    if (outside := _outside_host(trace, links)):
        notes.append(Note("device_events_outside_host", {"file": name, "events": outside}))
    return LostWork(launches, replays, lost, _stretches(trace, links, lost)), notes


def _captured(trace: Trace, rows: np.ndarray) -> np.ndarray:
    """Per row: made on its thread while a stream capture was open, the last capture call before it on that
    thread a begin (a trace that opens inside a capture has an end with no begin: it closes nothing after it)."""
    calls = trace.kind == RUNTIME
    begin = np.flatnonzero(trace.by_name(classify.CAPTURE_BEGIN_CALL.match) & calls)
    if not len(begin):
        return np.zeros(len(rows), bool)
    end = np.flatnonzero(trace.by_name(classify.CAPTURE_END_CALL.match) & calls)
    marks = np.concatenate((begin, end))
    at = trace.on_one_axis(marks, np.concatenate((trace.start[begin], trace.end[end])))
    order = np.argsort(at, kind="stable")
    at, marks, opens = at[order], marks[order], (np.arange(len(marks)) < len(begin))[order]
    last = np.searchsorted(at, trace.on_one_axis(rows, trace.start[rows]), side="right") - 1
    mark = marks[np.maximum(last, 0)]
    return (last >= 0) & opens[np.maximum(last, 0)] & (trace.thread[mark] == trace.thread[rows])


def _outside_host(trace: Trace, links: Links) -> int:
    """Device events with no launch recorded that ran before the first or after the last host event (none are
    counted in a trace that records no runtime calls: there every device event lacks its launch)."""
    host = ~np.isin(trace.kind, DEVICE_KINDS)
    if not (trace.kind == RUNTIME).any():
        return 0
    first, last = trace.start[host].min(), trace.end[host].max()
    orphans = links.device[links.launch < 0]
    return int(((trace.end[orphans] <= first) | (trace.start[orphans] >= last)).sum())


def _alike_work(trace: Trace, links: Links, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per launch row, from the recorded launches alike (the same op by name and input shapes, the same launch of
    its several; outside any op, the same call): the median of their device time (infinite where none was
    recorded) and the stream their work ran on (-1: none)."""
    launched = links.launch >= 0
    made = np.unique(links.launch[launched])
    device_us = np.bincount(links.launch[launched], (trace.end - trace.start)[links.device[launched]],
                            minlength=len(trace))[made]
    stream = np.full(len(trace), -1)
    stream[links.launch[launched]] = trace.thread[links.device[launched]]
    if not len(made):
        return np.full(len(rows), np.inf), np.full(len(rows), -1)
    both = np.concatenate((made, rows))  # an op's launches counted in order, recorded or lost
    keys = np.unique(_alike(trace, links, both), axis=0, return_inverse=True)[1].reshape(-1)
    made_key, wanted = keys[:len(made)], keys[len(made):]
    order = np.lexsort((device_us, made_key))
    made_key, device_us, made = made_key[order], device_us[order], made[order]
    first, last = np.searchsorted(made_key, made_key), np.searchsorted(made_key, made_key, side="right")
    median = (device_us[first + (last - first - 1) // 2] + device_us[first + (last - first) // 2]) / 2
    at = np.clip(np.searchsorted(made_key, wanted), 0, len(made_key) - 1)
    found = made_key[at] == wanted
    return np.where(found, median[at], np.inf), np.where(found, stream[made[at]], -1)


def _alike(trace: Trace, links: Links, rows: np.ndarray) -> np.ndarray:
    """Per launch row: (its op's name, the op's shapes, which of the op's launches it is); outside any op, the
    call's own name."""
    op = links.enclosing_op[rows]
    in_op = op >= 0
    order = np.lexsort((trace.start[rows], op))
    nth = np.empty(len(rows), np.int64)
    first = np.searchsorted(op[order], op[order])
    nth[order] = np.arange(len(rows)) - first  # the launch's place among those its op made
    name = np.where(in_op, trace.name[np.maximum(op, 0)], len(trace.names) + trace.name[rows])
    shape = np.where(in_op, trace.shape[np.maximum(op, 0)], 0)
    return np.stack((name, shape, np.where(in_op, nth, 0)), axis=1)


def _stretches(trace: Trace, links: Links, lost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each lost launch, on the stream its alike launches' work ran on (else all streams): from its own
    start, or the end of the work launched before it there if later, to the start of the work launched after it
    there (none: the trace ended first, no stretch). Where that next work was launched only after the lost work
    could start, the device may have waited on the host: the stretch is then no longer than the alike launches'
    median."""
    if not len(lost):
        return NO_SPANS
    typical, stream = _alike_work(trace, links, lost)
    own = _neighbours(trace, links, trace.thread[links.device], stream, lost)
    anywhere = _neighbours(trace, links, np.zeros(len(links.device), np.int64), np.zeros(len(lost), np.int64), lost)
    before_end, after_start, after_launch = (np.where(stream >= 0, a, b) for a, b in zip(own, anywhere))
    start = np.maximum(before_end, trace.start[lost])
    queued = after_launch <= start  # the next work waited in the stream: the lost work ran up to its start
    end = np.where(queued, after_start, np.minimum(after_start, start + typical))
    keep = end > start
    return start[keep], end[keep]


def _neighbours(trace: Trace, links: Links, stream: np.ndarray, wanted: np.ndarray,
                lost: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per lost launch, on the stream `wanted` (streams as `stream` numbers the device events): the latest end of
    the work launched before it (-inf: none), the first start of the work launched after it (-inf: none) and
    when that was launched (inf: unknown)."""
    device, ids = links.device, trace.correlation[links.device]
    order = np.lexsort((ids, stream))
    device, ids, stream = device[order], ids[order], stream[order]
    base = int(max(ids.max(), trace.correlation[lost].max())) + 2
    key, want = stream * base + ids, wanted * base + trace.correlation[lost]
    offset = stream * (float(trace.end.max()) + 1.0)  # each stream's times apart, so running extremes stay in it
    ended = np.maximum.accumulate(trace.end[device] + offset) - offset
    starts = np.minimum.accumulate((trace.start[device] + offset)[::-1])[::-1] - offset
    before = np.searchsorted(key, want, side="left") - 1
    after = np.searchsorted(key, want, side="right")
    b, a = np.maximum(before, 0), np.minimum(after, len(device) - 1)
    has_before = (before >= 0) & (stream[b] == wanted)
    has_after = (after < len(device)) & (stream[a] == wanted)
    launch = links.launch[order[a]]  # launch is per device event, in links.device's order
    launched_at = np.where(launch >= 0, trace.start[np.maximum(launch, 0)], np.inf)
    return (np.where(has_before, ended[b], -np.inf), np.where(has_after, starts[a], -np.inf),
            np.where(has_after, launched_at, np.inf))
