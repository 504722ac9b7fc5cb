"""Kineto trace files → a Trace of columnar numpy arrays, read a block at a time.

scan.py cuts the file into chunks of events, jsonfile.py decodes each with msgspec into the fields and args a
stage reads, columns.py writes them into columns and drops them; here the columns become a Trace. Old (torch
1.x: "Operator", "Kernel") and new ("cpu_op", "kernel") category names, microsecond and fractional
(nanosecond-resolution) timestamps, `.json` and `.json.gz` are all read the same way.
"""

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np

from profiler.facts import Note
from profiler.files import REPORT, written_here
from profiler.settings import MEGA
from profiler.trace.columns import SEPARATOR, Reading, collective_sizes, merged
from profiler.trace.errors import TraceError
from profiler.trace.jsonfile import EMPTY, HEADER_KEYS, Header, as_lists
from profiler.trace.kinds import (
    DEVICE_KINDS,
    IGNORED_CATEGORIES,
    KIND_OF_CATEGORY,
    OP,
    OTHER,
    RUNTIME,
    backend_of,
    by_process,
)
from profiler.trace.location import Location, is_url, open_binary, url_trace_files
from profiler.trace.memory import NO_MEMORY_EVENTS, MemoryEvents, memory_events
from profiler.trace.metadata import RunMetadata, read_metadata
from profiler.trace.scan import TopLevel, Walk
from profiler.trace.stream import Blocks


class ShapeArgs(msgspec.Struct, rename={"dims": "Input Dims", "types": "Input type", "concrete": "Concrete Inputs"}):
    dims: list = []
    types: list = []
    concrete: list = []


class DimsArgs(msgspec.Struct, rename={"dims": "Input Dims"}):
    dims: list = []


# a time more than this far (µs: a day) from the trace's median, or a duration this long, is damage: a profiled
# window lasts seconds to hours, and a float64 axis that reached it would keep no sub-µs precision elsewhere
MAX_EVENT_US = 86_400e6


@dataclass(frozen=True, kw_only=True)
class TraceInfo:
    """What the stages after the per-file analysis need of a trace: small enough for a worker process to hand
    back instead of the decoded events."""

    path: Location
    origin_us: float
    device_names: list[str]
    distributed: dict
    metadata: RunMetadata
    device_memory: list[int] = field(default_factory=list)  # deviceProperties' totalGlobalMem (0: not given)

    def rank(self) -> int:
        rank = self.distributed.get("rank", 0)
        return rank if isinstance(rank, int) else 0


@dataclass(kw_only=True)
class Trace:
    """One trace file as columns, one row per complete ('X') event, times in µs from the first event."""

    path: Location
    names: list[str]  # interned event names; `name` indexes it
    name: np.ndarray  # int32
    kind: np.ndarray  # int8, one of OP ... OTHER
    start: np.ndarray  # float64 µs
    end: np.ndarray  # float64 µs
    thread: np.ndarray  # int32 id of (pid, tid): a host thread or a device stream
    correlation: np.ndarray  # int64, -1 where absent (runtime calls and device events only)
    nbytes: np.ndarray  # int64 bytes of memcpy / memset events
    shape: np.ndarray  # int32 code of the row's recorded inputs into shape_keys (0: none recorded)
    shape_keys: list[list[bytes]]  # Input Dims, Input dims, Input type, Concrete Inputs: JSON texts, b"" if absent
    origin_us: float
    device_names: list[str]
    distributed: dict
    metadata: RunMetadata  # empty for a foreign trace
    threads: list = field(default_factory=list)  # (pid, tid) of each `thread` id
    memory: MemoryEvents = NO_MEMORY_EVENTS  # the allocator's [memory] events (profile_memory=True)
    device_memory: list[int] = field(default_factory=list)  # deviceProperties' totalGlobalMem (0: not given)
    kernel_device: int = -1  # the device most device events ran on (their args' `device`), -1 where unknown
    backend: str = "cuda"  # cuda, rocm, mtia, xpu, hpu, privateuse1 (when there are device events)
    dims_1x: bool = False  # shapes spelled "Input dims" (torch 1.8)
    collectives: dict[int, tuple[int, str]] = field(default_factory=dict)  # row → message (elements, dtype)
    warnings: list[Note] = field(default_factory=list)
    _decoded: dict = field(default_factory=dict, repr=False)  # (kind, shape code) → its decoded value

    def __len__(self):
        return len(self.name)

    def shapes(self, rows: np.ndarray, kind=ShapeArgs) -> list:
        """Decode recorded input shapes (and types) for the given rows only; DimsArgs decodes the dims alone."""
        codes, values = self.distinct_shapes(rows, kind)
        return [values[c] for c in codes]

    def distinct_shapes(self, rows: np.ndarray, kind=ShapeArgs) -> tuple[np.ndarray, list]:
        """The rows' recorded shapes as a code per row into a list of distinct decoded values.

        The same shapes recur step after step, so the reader kept each distinct text once; it is decoded once,
        and later stages work per distinct value and index back with the codes."""
        distinct, first, codes = np.unique(self.shape[rows], return_index=True, return_inverse=True)
        order = np.argsort(first)  # the values in the order the rows first show them
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return rank[codes.reshape(-1)], [self._shape_value(kind, code) for code in distinct[order].tolist()]

    def _shape_value(self, kind, code: int):
        if (kind, code) not in self._decoded:
            dims, dims_1x, types, concrete = self.shape_keys[code]
            texts = (dims_1x if self.dims_1x else dims, types, concrete)[:len(kind.__struct_fields__)]
            self._decoded[kind, code] = _from_fields(kind, tuple(t or b"[]" for t in texts))
        return self._decoded[kind, code]

    def on_one_axis(self, rows: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Times of these rows with each thread's timeline laid after the previous one's, so that one sorted
        array answers per-thread questions (which op starts next on this thread, which ones lie inside a span)."""
        return self.thread[rows] * (float(self.end.max()) + 1.0) + times

    def info(self) -> TraceInfo:
        return TraceInfo(path=self.path, origin_us=self.origin_us, device_names=self.device_names,
                         distributed=self.distributed, metadata=self.metadata, device_memory=self.device_memory)

    def by_name(self, value, dtype=bool) -> np.ndarray:
        """value(name) for each row, computed once per distinct name: a per-row mask or code from the names."""
        return np.array([value(name) for name in self.names], dtype=dtype)[self.name]

    def names_of(self, rows: np.ndarray) -> list[str]:
        return [self.names[i] for i in self.name[rows]]


def _from_fields(kind, texts: tuple):
    """A `kind` from its fields' JSON texts, validated as a whole; empty when they do not fit it."""
    names = kind.__struct_encode_fields__
    fields = b",".join(msgspec.json.encode(name) + b":" + text for name, text in zip(names, texts))
    try:
        return msgspec.json.decode(b"{" + fields + b"}", type=kind)
    except msgspec.DecodeError:
        return kind()


def load_trace(path: Location, ranges=None) -> Trace:
    """Read one trace file (a local path or an fsspec URL) into columns, a block at a time; where `ranges`
    (split.py's Ranges) is given, a large plain file by several processes at once. Raises TraceError with a
    one-line reason."""
    path = path if is_url(path) else Path(path)
    reading, top, header, blocks = _read_whole(path, ranges)
    columns, warnings = reading.columns, reading.notes()
    if blocks.cut_short or top.cut_short:
        warnings.append(Note("file_cut_short", {"why": blocks.cut_short or top.cut_short, "events": reading.elements,
                                                "bytes_read": blocks.size,
                                                "mb_read": round(blocks.size / MEGA, 1)}))
    rows, collectives, said = _timed(columns)
    warnings += said
    if reading.elements and reading.dropped == reading.elements:
        raise TraceError(f"{path}: not a Kineto trace (none of its {reading.elements} events is an object with a "
                         f"trace event's fields)")
    if not len(rows["ts"]):
        raise TraceError(f"{path}: the trace holds no complete ('X') events with a time")
    ts, dur = rows["ts"], rows["dur"]
    kind, rows["thread"], said = _kinds(columns, rows)
    warnings += said
    if (dur < 0).any():
        warnings.append(Note("negative_durations", {"events": int((dur < 0).sum())}))
        dur = np.maximum(dur, 0)
    origin = float(ts.min())
    start = np.subtract(ts, origin, out=ts)  # in place, as below: the columns are not copied
    device = rows["device"]
    ran_on = device[np.isin(kind, DEVICE_KINDS) & (device >= 0)]
    others = (kind != RUNTIME) & ~np.isin(kind, DEVICE_KINDS)  # the launch args of these rows are not read
    rows["correlation"][others], rows["nbytes"][others] = -1, 0
    metadata, said = read_metadata(header.mfu_analyzer)
    warnings += said + buffer_notes(header)
    devices = header.deviceProperties or header.computeProperties
    device_names = [d.name for d in devices]
    shape_keys = [as_lists(key.split(SEPARATOR)) for key in columns.shapes]
    return Trace(
        path=path, names=list(columns.names), name=rows["name"], kind=kind, start=start, end=start + dur,
        thread=rows["thread"], correlation=rows["correlation"], nbytes=rows["nbytes"], shape=rows["shape"],
        shape_keys=shape_keys, collectives=collectives,
        origin_us=origin, device_names=device_names, threads=list(columns.threads),
        distributed=header.distributedInfo or {}, metadata=metadata,
        memory=memory_events(columns.memory.done(), origin),
        device_memory=[int(m) if 0 < (m := d.totalGlobalMem) < math.inf else 0 for d in devices],
        kernel_device=int(np.bincount(ran_on).argmax()) if len(ran_on) else -1,
        backend=backend_of(set(columns.categories), columns.names, device_names, set(columns.processes.values())),
        dims_1x=spelled_1x(rows["shape"][kind == OP][:200], shape_keys), warnings=warnings,
    )


def _read_whole(path: Location, ranges) -> tuple[Reading, TopLevel, Header, Blocks]:
    """The file read, by several processes where `ranges` splits it; again in one pass where a range proved a
    wrong cut or held events of wrong types (whose places only one pass knows)."""
    try:
        reading, top, header, blocks = _read(path, ranges)
        parts = ranges.readings() if ranges else []
    except TraceError:
        if not (ranges and ranges.futures):
            raise
        parts = None  # the last range started at a wrong cut (the range before it failed too): read in one pass
    finally:
        if ranges:
            ranges.close()
    if parts is None or (ranges and ranges.futures and reading.dropped):  # proven wrong, or wrong types to place
        return _read(path, None)
    if parts:
        reading.columns = merged([part.columns for part in parts] + [reading.columns])
        reading.elements += sum(part.elements for part in parts)
    return reading, top, header, blocks


def _timed(columns) -> tuple[dict[str, np.ndarray], dict[int, tuple[int, str]], list[Note]]:
    """The complete events with a usable time, the collectives' sizes by their rows among them, and a note of
    those left out: a time far from the others' would leave no precision to the rest in one float axis."""
    rows = columns.events.done()
    ts, dur = rows["ts"], rows["dur"]
    timed = np.isfinite(ts) & np.isfinite(dur) & (np.abs(dur) <= MAX_EVENT_US)
    if timed.any():
        timed &= np.abs(ts - np.median(ts[timed])) <= MAX_EVENT_US
    collectives = collective_sizes(columns.collectives)
    if timed.all():
        return rows, collectives, []
    new_row = np.cumsum(timed) - 1
    collectives = {int(new_row[r]): size for r, size in collectives.items() if timed[r]}
    for name in rows:  # one column at a time: memory holds the columns about once
        rows[name] = rows[name][timed]
    return rows, collectives, [Note("unusable_times", {"events": int((~timed).sum())})]


def _kinds(columns, rows: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[Note]]:
    """Each row's kind by its category and its thread (in torch_npu's layout by its process too, where a
    thread may move), with a note of the categories no kind knows."""
    cat, thread = rows["cat"], rows["thread"]
    cats = {c: KIND_OF_CATEGORY.get(c.lower(), OTHER) for c in columns.categories}
    kind = np.array(list(cats.values()), np.int8)[cat]
    if columns.processes:
        kind, thread = by_process(kind, thread, rows["name"], columns)
    counts = np.bincount(cat, minlength=len(cats))
    unknown = sorted(c for c, k in cats.items()
                     if k == OTHER and c.lower() not in IGNORED_CATEGORIES and counts[columns.categories[c]])
    notes = [Note("unknown_categories", {"categories": [
        {"category": c, "events": int(counts[columns.categories[c]])} for c in unknown]})] if unknown else []
    return kind, thread, notes


# what Kineto logs (and, built without glog, writes into the trace's WARNING / ERROR lists) when its device buffers
# fill: the records after that point are dropped
BUFFER_FULL = re.compile(r"Exceeded max GPU buffer|stopped by (GPU profiler|CUPTI)|[Dd]ropped \d+ activity record")


def buffer_notes(header: Header) -> list[Note]:
    """A note where the trace's own log says the profiler's buffers filled."""
    lines = []
    for raw in (header.WARNING, header.ERROR):
        try:
            logged = msgspec.json.decode(raw) if raw is not EMPTY else []
        except msgspec.DecodeError:
            continue
        lines += [str(line) for line in (logged if isinstance(logged, list) else [logged])]
    full = [line for line in lines if BUFFER_FULL.search(line)]
    return [Note("buffer_full", {"messages": len(full), "first": full[0][:200]})] if full else []


def _read(path: Location, ranges) -> tuple[Reading, TopLevel, Header, Blocks]:
    """One walk over the file, its first ranges handed to other processes where `ranges` splits it."""
    reading, blocks = Reading(path=path), Blocks(path, open_binary)
    try:
        top = Walk(blocks, HEADER_KEYS, reading, path, ranges.split if ranges else None).run()
        return reading, top, _header(top.values, path), blocks
    except OSError as e:
        raise TraceError(f"{path}: cannot read ({e.strerror or e})") from None
    except RecursionError:
        raise TraceError(f"{path}: not a Kineto trace (JSON nested too deeply)") from None


def _header(values: dict[str, bytes], path: Location) -> Header:
    """The top-level keys read besides the events, checked together as one object."""
    text = b"{" + b",".join(msgspec.json.encode(k) + b":" + v for k, v in values.items()) + b"}"
    try:
        return msgspec.json.decode(text, type=Header)
    except msgspec.DecodeError as e:
        raise TraceError(f"{path}: not a Kineto trace ({e})") from None


def spelled_1x(codes: np.ndarray, shape_keys: list[list[bytes]]) -> bool:
    """Whether the ops' args spell the shapes "Input dims", judged on the first ops that record any."""
    for code in codes.tolist():
        dims, dims_1x = shape_keys[code][:2]
        if dims:
            return False
        if dims_1x:
            return True
    return False


def trace_files(path: Location) -> list[Location]:
    """A trace file, or a folder's profiler traces (*.pt.trace.json[.gz], else torch_npu's trace_view.json, else
    any *.json[.gz]), sorted; a URL's through fsspec."""
    if is_url(path):
        return list(url_trace_files(str(path)))
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise TraceError(f"{path}: no such file or folder")
    for pattern in ("*.pt.trace.json", "*.pt.trace.json.gz"), ("trace_view.json",), ("*.json", "*.json.gz"):
        files: list[Location] = sorted(p for glob in pattern for p in path.rglob(glob)
                                       if p.is_file() and not written_here(p))
        if files:
            return files
    if (path / REPORT).is_file():
        raise TraceError(f"{path}: holds a saved report ({REPORT}), no traces: `python -m profiler analyze "
                         f"{path / REPORT}` prints it, `tensorboard --logdir={path}` shows it in the MFU tab")
    raise TraceError(f"{path}: no trace files (*.json, *.json.gz) in this folder")
