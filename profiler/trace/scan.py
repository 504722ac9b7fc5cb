"""The top level of a trace's JSON, walked block by block: each key's value, and traceEvents' elements cut into
chunks of whole events for the decoder, so that no more than a block or two is ever held.

A cut is first guessed where the block's last event seems to end (`}` `,` `{`, the way every Kineto writer and
json.dumps separate events) and the decoder confirms it: a cut inside an event or a string leaves brackets
unbalanced, which no decoder accepts. Where the guess fails, and at the array's end, an exact scanner finds the
elements' boundaries by tracking strings and nesting, vectorized over the block."""

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import msgspec
import numpy as np

from profiler.trace.errors import TraceError

WHITESPACE = b" \t\r\n"
STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
STRUCTURAL = np.zeros(256, bool)
STRUCTURAL[list(b",[]{}")] = True
NESTING = np.zeros(256, np.int8)
NESTING[list(b"[{")], NESTING[list(b"]}")] = 1, -1
VALUE_START = b'"-0123456789['  # the first byte of a JSON value other than an object or a literal


@dataclass
class TopLevel:
    """What the walk found besides the events: the wanted keys' values as raw JSON, and how it ended."""

    values: dict[str, bytes] = field(default_factory=dict)
    has_events: bool = False
    cut_short: str = ""  # why the file ended before its top-level object closed, or empty


def outline(buf: bytes, lo: int, hi: int) -> tuple[np.ndarray, int]:
    """Inside an array's or object's content, from `lo` (outside any string, at the content's depth) to `hi`:
    the positions of the commas at that depth, and of the bracket that closes the content (-1 if not before hi).
    A string may run past hi: its commas and brackets are not counted."""
    data = np.frombuffer(buf, np.uint8, hi - lo, lo)
    quotes = np.flatnonzero(data == 0x22)
    after_backslash = quotes[(quotes > 0) & (data[np.maximum(quotes - 1, 0)] == 0x5C)]
    if len(after_backslash):  # a quote after an odd run of backslashes is part of its string
        escaped = [q for q in after_backslash.tolist() if _backslashes_before(data, q) % 2]
        quotes = np.setdiff1d(quotes, escaped, assume_unique=True)
    marks = np.flatnonzero(STRUCTURAL[data])
    marks = marks[np.searchsorted(quotes, marks) % 2 == 0]  # an even number of quotes before: outside strings
    depth = np.cumsum(NESTING[data[marks]], dtype=np.int64)
    closed = np.flatnonzero(depth < 0)
    end = int(closed[0]) if len(closed) else len(marks)
    commas = marks[:end][(depth[:end] == 0) & (data[marks[:end]] == 0x2C)]
    return commas + lo, int(marks[end]) + lo if len(closed) else -1


def _backslashes_before(data: np.ndarray, at: int) -> int:
    n = 0
    while at - n - 1 >= 0 and data[at - n - 1] == 0x5C:
        n += 1
    return n


class ChunkReader(Protocol):
    """Where the walk hands each chunk of whole elements of traceEvents, as a JSON array."""

    def guessed(self, text: bytes) -> bool:
        """A chunk cut at a guess: False where the text is not one array (the guess was wrong)."""

    def exact(self, text: bytes) -> None:
        """A chunk cut exactly: where it does not decode, the bytes themselves are at fault (a TraceError)."""


class _CutShort(Exception):
    """The file ends before its top-level value closes: the walk stops there, with what it read."""


class Walk:
    """One pass over the blocks, handing the events to `reader` a chunk at a time.

    `split(offset)`, where given, is called where the events begin (that byte of the file): it may have other
    processes read the first events and return the offset of an event where this walk goes on."""

    def __init__(self, blocks, wanted: set[str], reader: ChunkReader, path,
                 split: Callable[[int], int | None] | None = None):
        self.source = blocks
        self.blocks: Iterator[bytes] = iter(blocks)
        self.wanted, self.reader, self.path, self.split = wanted, reader, path, split
        self.buf, self.pos, self.ended = b"", 0, False
        self.offset = 0  # the file's byte at buf[0]
        self.tail_whole = True
        self.found = TopLevel()

    def run(self) -> TopLevel:
        """The walk to the end of the top-level value, or to where the file is cut short (`found.cut_short`)."""
        try:
            if self._next_byte() == b"[":  # the JSON Array Format (torch_npu, Chrome's own): the file is the events
                self._events()
                if self._next_byte():
                    raise TraceError(f"{self.path}: not valid JSON (more data after the array of events)")
            else:
                self._object()
        except _CutShort as cut:
            self.found.cut_short = str(cut)
        if not self.found.has_events:
            detail = f" ({self.found.cut_short})" if self.found.cut_short else ""
            raise TraceError(f"{self.path}: not a Kineto trace (no object with traceEvents){detail}")
        return self.found

    def _object(self):
        """The top-level object's keys: traceEvents walked, the wanted others kept."""
        if self._next_byte() != b"{":
            if not self.buf.strip():
                raise TraceError(f"{self.path}: empty file")
            rest = self.buf[self.pos:self.pos + 5]
            if rest[0] not in VALUE_START and not rest.startswith((b"null", b"true", b"false")):
                raise TraceError(f"{self.path}: not valid JSON, truncated or corrupt (it does not start with a "
                                 f"JSON value)")
            raise TraceError(f"{self.path}: not a Kineto trace (neither an array of events nor an object with "
                             f"traceEvents)")
        self.pos += 1
        while self._next_byte() != b"}":
            key = self._key()
            if key == "traceEvents":
                self._events()
            else:
                self._value(key)
            follows = self._next_byte()
            if follows == b",":
                self.pos += 1
            elif follows != b"}":
                self._cut_or_fail(follows, "after a top-level value")
        self.pos += 1
        if self._next_byte():
            raise TraceError(f"{self.path}: not valid JSON (more data after the top-level object)")

    def _more(self) -> bool:
        """Append the next block to what is left unread; False at the end of the file."""
        if self.ended:
            return False
        block = next(self.blocks, None)
        if block is None:
            self.ended = True
            return False
        self.offset += self.pos
        self.buf = b"".join((memoryview(self.buf)[self.pos:], block))  # one copy: the rest and the block
        self.pos = 0
        return True

    def _next_byte(self) -> bytes:
        """The next byte that is not whitespace (left unread), or b"" at the end of the file."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buf) or not self._more():
                return self.buf[self.pos:self.pos + 1]

    def _cut_or_fail(self, found: bytes, where: str):
        """Where the file ended (nothing found): cut short; where something else was found: damaged."""
        if not found:
            raise _CutShort(f"the file ends {where}")
        raise TraceError(f"{self.path}: not valid JSON, truncated or corrupt (unexpected {found!r} {where})")

    def _key(self) -> str:
        if self._next_byte() != b'"':
            self._cut_or_fail(self.buf[self.pos:self.pos + 1], "where a key should be")
        while (match := STRING.match(self.buf, self.pos)) is None:
            if not self._more():
                self._cut_or_fail(b"", "inside a key")
        self.pos = match.end()
        if self._next_byte() != b":":
            self._cut_or_fail(self.buf[self.pos:self.pos + 1], "after a key")
        self.pos += 1
        self._next_byte()
        return msgspec.json.decode(match.group())

    def _value(self, key: str):
        """Skip a top-level value, keeping its text if it is wanted; more blocks are read while it goes on."""
        while True:
            commas, close = outline(self.buf, self.pos, len(self.buf))
            end = int(commas[0]) if len(commas) else close
            if end >= 0:
                break
            if not self._more():
                self._cut_or_fail(b"", f"inside the value of {key}")
        if key in self.wanted:
            self.found.values[key] = self.buf[self.pos:end].strip()
        self.pos = end

    def _events(self):
        if self._next_byte() != b"[":
            raise TraceError(f"{self.path}: not a Kineto trace (traceEvents is not a list)")
        self.found.has_events = True
        self.pos += 1
        if self.split and (resume := self.split(self.offset + self.pos)) is not None:
            self.source.seek(resume)
            self.buf, self.pos, self.offset = b"", 0, resume
        if not self.elements():  # the file ends inside the array: its whole events are what was read
            self._cut_short_or_damaged()

    def elements(self) -> bool:
        """Decode the array's elements from here on, chunk by chunk; True once its end is read. False where the
        bytes end first: then the whole elements are decoded, the last one too where it is whole (`tail_whole`)."""
        while self._more():
            cut = self._guess_cut()
            if cut >= 0 and self.reader.guessed(self._array(self.pos, cut)):
                self.pos = cut + 1
            elif self._exact_cut():
                return True
        if self._exact_cut():
            return True
        tail = self.buf[self.pos:].strip()  # the last event may be whole, its comma or the array's end not written
        self.tail_whole = not tail or self.reader.guessed(self._array(self.pos, len(self.buf)))
        return False

    def _array(self, start: int, end: int) -> bytes:
        """buf[start:end] as a JSON array, in one copy."""
        return b"".join((b"[", memoryview(self.buf)[start:end], b"]"))

    def _cut_short_or_damaged(self):
        """A file cut short ends inside its last event. One that ends as a whole trace does (`}`) with events
        still in what is left had a string or bracket left open in the middle: it is damaged, not cut."""
        at = self.offset + self.pos
        tail = self.buf[self.pos:].strip()
        stream_cut = bool(getattr(self.source, "cut_short", ""))  # a gzip stream without its end: cut, surely
        if not (self.tail_whole or stream_cut) and tail.endswith(b"}") and first_cut(tail) >= 0:
            raise TraceError(f"{self.path}: not valid JSON, truncated or corrupt (a string or bracket opened after "
                             f"byte {at} is never closed)")
        raise _CutShort(f"the file ends inside traceEvents (cut short, or damaged after byte {at})")

    def _guess_cut(self) -> int:
        """The position of the comma after the last event that seems to end in the buffer, or -1."""
        hi = len(self.buf)
        for _ in range(64):
            end = self.buf.rfind(b"}", self.pos, hi)
            if end < 0:
                return -1
            if (comma := _comma_between_objects(self.buf, end)) >= 0:
                return comma
            hi = end
        return -1

    def _exact_cut(self) -> bool:
        """Decode the whole elements in the buffer, found exactly; True when the array's end was among them."""
        commas, close = outline(self.buf, self.pos, len(self.buf))
        end = close if close >= 0 else int(commas[-1]) if len(commas) else -1
        if end >= 0:
            if self.buf[self.pos:end].strip():
                self.reader.exact(self._array(self.pos, end))
            self.pos = end + 1
        return close >= 0


def first_cut(buf: bytes) -> int:
    """The position of the comma after the first event that seems to end in buf, or -1."""
    end = buf.find(b"}")
    while end >= 0:
        if (comma := _comma_between_objects(buf, end)) >= 0:
            return comma
        end = buf.find(b"}", end + 1)
    return -1


def _comma_between_objects(buf: bytes, end: int) -> int:
    """Where the `}` at `end` is followed by a comma and a `{` (whitespace aside), the comma's position; else -1."""
    comma = _skip_whitespace(buf, end + 1)
    if buf[comma:comma + 1] != b",":
        return -1
    after = _skip_whitespace(buf, comma + 1)
    return comma if buf[after:after + 1] == b"{" else -1


def _skip_whitespace(buf: bytes, at: int) -> int:
    while at < len(buf) and buf[at] in WHITESPACE:
        at += 1
    return at
