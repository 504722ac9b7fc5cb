"""Decoded chunks of events → columns, grown chunk by chunk: a chunk's events are dropped once their columns
are written, so memory holds 56 bytes per complete event (and 48 per memory event), whatever the file's size.

Names, categories, threads and recorded input shapes are interned: a row holds codes, and each distinct text
is kept once (the same shapes recur step after step)."""

from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from profiler.facts import Note
from profiler.trace.errors import TraceError
from profiler.trace.jsonfile import ELEMENTS, EMPTY, MEMORY_EVENT, Chunk, decode_chunk

# the columns kept of each complete event, and of each [memory] event (trace/memory.py)
FIELDS = {"ts": np.float64, "dur": np.float64, "name": np.int32, "cat": np.int32, "thread": np.int32,
          "shape": np.int32, "correlation": np.int64, "nbytes": np.int64, "device": np.int64}
MEMORY_FIELDS = {"ts": np.float64, "nbytes": np.int64, "allocated": np.int64, "reserved": np.int64,
                 "device_type": np.int64, "device_id": np.int64}
SEPARATOR = b"\0"  # between the texts of a shape key: never in JSON text, where control characters are escaped
NO_SHAPE = SEPARATOR * 3  # the recorded-inputs key of an event that records none
COLLECTIVE_CALL = "record_param_comms"  # where torch records a collective's message size
FIRST_ROWS = 1 << 16


class Interned(dict):
    """Text → code, a new text getting the next code: `list(map(interned.__getitem__, texts))` codes a column
    in one C loop."""

    def __missing__(self, key):
        code = self[key] = len(self)
        return code


class Table:
    """Columns that double when full. Each is one array, so memory freed by growing goes back to the
    system at once, where thousands of small pieces joined at the end would leave the heap twice its size."""

    def __init__(self, fields: dict, rows: int = FIRST_ROWS):
        self.columns = {name: np.empty(rows, dtype) for name, dtype in fields.items()}
        self.rows = 0

    def append(self, values: dict):
        n = len(next(iter(values.values())))
        for name, column in self.columns.items():
            if self.rows + n > len(column):  # the rows copied over; the rest is untouched, so takes no memory yet
                grown = np.empty(max(self.rows + n, 2 * len(column)), column.dtype)
                grown[:self.rows] = column[:self.rows]
                column = self.columns[name] = grown
            column[self.rows:self.rows + n] = values[name]
        self.rows += n

    def done(self) -> dict[str, np.ndarray]:
        """The columns cut to their rows, one at a time (each copy then frees its larger array); a second call
        copies nothing."""
        for name, column in self.columns.items():
            if len(column) != self.rows:
                self.columns[name] = column[:self.rows].copy()
        return self.columns


@dataclass(kw_only=True)
class Columns:
    """The complete ('X') and memory events read so far, with what is interned."""

    names: Interned = field(default_factory=Interned)
    categories: Interned = field(default_factory=Interned)
    threads: Interned = field(default_factory=Interned)  # (pid, tid)
    # Input Dims, Input dims (torch 1.8), Input type and Concrete Inputs as JSON texts (b"" where absent), joined
    shapes: Interned = field(default_factory=lambda: Interned({NO_SHAPE: 0}))
    events: Table = field(default_factory=lambda: Table(FIELDS))
    memory: Table = field(default_factory=lambda: Table(MEMORY_FIELDS))
    # a collective call's row → its args' (In msg nelems, dtype) as JSON texts
    collectives: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)
    processes: dict = field(default_factory=dict)  # pid → the name its process_name metadata event gives

    def add(self, events: list):
        """Columns for a chunk's events, a list comprehension per field: no Python call per event."""
        complete = [e for e in events if e.ph == "X"]
        args = [e.args for e in complete]
        shapes, no, joined = self.shapes, EMPTY, SEPARATOR.join
        names = [e.name for e in complete]
        first_row = self.events.rows
        self.events.append({
            "ts": [e.ts for e in complete], "dur": [e.dur for e in complete],
            "name": list(map(self.names.__getitem__, names)),
            "cat": list(map(self.categories.__getitem__, [e.cat for e in complete])),
            "thread": list(map(self.threads.__getitem__, [(e.pid, e.tid) for e in complete])),
            "shape": [0 if a.dims is no and a.types is no and a.dims_1x is no and a.concrete is no
                      else shapes[joined((a.dims, a.dims_1x, a.types, a.concrete))] for a in args],
            "correlation": [a.correlation if a.correlation >= 0 else a.connection_id for a in args],
            "nbytes": [a.bytes for a in args],
            "device": [a.device for a in args]})
        if COLLECTIVE_CALL in self.names:
            for i, name in enumerate(names):
                if name == COLLECTIVE_CALL:
                    self.collectives[first_row + i] = (bytes(args[i].nelems), bytes(args[i].dtype))
        if len(complete) == len(events):  # nothing but complete events: no metadata or memory events to read
            return
        self.processes.update({e.pid: e.args.label for e in events if e.ph == "M" and e.name == "process_name"})
        if memory := [e for e in events if e.ph == "i" and e.name == MEMORY_EVENT]:
            args = [e.args for e in memory]
            self.memory.append({"ts": [e.ts for e in memory], "nbytes": [a.mem_bytes for a in args],
                                "allocated": [a.allocated for a in args], "reserved": [a.reserved for a in args],
                                "device_type": [a.device_type for a in args], "device_id": [a.device_id for a in args]})


INTERNED = ("names", "categories", "threads", "shapes")


def merged(parts: list[Columns]) -> Columns:
    """One file's columns read in parts by several processes, in the file's order: each part's codes mapped to
    the whole's, its rows after the earlier parts'."""
    whole = Columns(events=Table(FIELDS, sum(p.events.rows for p in parts)),
                    memory=Table(MEMORY_FIELDS, sum(p.memory.rows for p in parts)))
    for part in parts:
        first_row = whole.events.rows
        code = {what: np.array([getattr(whole, what)[key] for key in getattr(part, what)], np.int32)
                for what in INTERNED}
        if part.events.rows:
            rows = part.events.done()
            whole.events.append(dict(rows, name=code["names"][rows["name"]], cat=code["categories"][rows["cat"]],
                                     thread=code["threads"][rows["thread"]], shape=code["shapes"][rows["shape"]]))
        if part.memory.rows:
            whole.memory.append(part.memory.done())
        whole.collectives.update({first_row + row: texts for row, texts in part.collectives.items()})
        whole.processes.update(part.processes)
    return whole


@dataclass(kw_only=True)
class Reading:
    """A file's chunks decoded so far: their events' columns, how many elements they held, and those dropped
    for fields of the wrong type."""

    path: Any
    columns: Columns = field(default_factory=Columns)
    elements: int = 0
    dropped: int = 0
    first_error: str = ""

    def guessed(self, text: bytes) -> bool:
        """A chunk cut at a guess into the columns; False where the text is not one array (scan.ChunkReader)."""
        chunk = decode_chunk(text, self.elements)
        if chunk is None:
            return False
        self._add(chunk)
        return True

    def exact(self, text: bytes) -> None:
        """A chunk cut exactly into the columns; where it does not decode, the file is damaged."""
        chunk = decode_chunk(text, self.elements)
        if chunk is None:
            raise TraceError(f"{self.path}: not valid JSON, truncated or corrupt ({_syntax_error(text)})")
        self._add(chunk)

    def _add(self, chunk: Chunk) -> None:
        self.columns.add(chunk.events)
        self.elements += chunk.elements
        self.dropped += chunk.dropped
        self.first_error = self.first_error or chunk.first_error

    def notes(self) -> list[Note]:
        return [Note("wrong_types_skipped", {"events": self.dropped, "first_error": self.first_error})
                ] if self.dropped else []


def _syntax_error(text: bytes) -> str:
    try:
        ELEMENTS.decode(text)
    except msgspec.DecodeError as e:
        return str(e)
    return "unreadable events"


def collective_sizes(texts: dict[int, tuple[bytes, bytes]]) -> dict[int, tuple[int, str]]:
    """Each collective call's (elements, dtype name), where its args give them with the right types."""
    sizes = {}
    for row, (nelems, dtype) in texts.items():
        try:
            sizes[row] = (msgspec.json.decode(nelems, type=int) if nelems else 0,
                          msgspec.json.decode(dtype, type=str) if dtype else "")
        except msgspec.DecodeError:
            continue
    return sizes
