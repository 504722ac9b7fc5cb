"""A trace file as msgspec decodes it: the fields read (each event's args kept as raw JSON, decoded later only
where a stage needs them), gzip, and the slow path that drops events whose fields have the wrong type."""

import gzip
import math
import os
import zlib

import msgspec

from profiler.facts import Note
from profiler.trace.errors import TraceError

GUNZIP_CHUNK = 1 << 20


class Event(msgspec.Struct):
    ph: str = ""
    cat: str = ""
    name: str = ""
    pid: int | str = 0
    tid: int | str = 0
    ts: float = math.nan  # NaN marks a missing field
    dur: float = math.nan
    args: msgspec.Raw = msgspec.Raw(b"{}")


class DeviceProperties(msgspec.Struct):
    name: str = ""
    id: int = 0
    totalGlobalMem: float = 0.0  # bytes of device memory (float: any JSON number reads)


class Header(msgspec.Struct, kw_only=True):
    deviceProperties: list[DeviceProperties] = []
    computeProperties: list[DeviceProperties] = []  # the name of the field in some torch 1.x traces
    distributedInfo: dict | None = None
    mfu_analyzer: msgspec.Raw = msgspec.Raw()  # empty where absent; read apart: bad metadata costs only itself


class TraceFile(Header, kw_only=True):
    traceEvents: list[Event]


class LooseTraceFile(Header, kw_only=True):
    traceEvents: list[msgspec.Raw]


def read_bytes(path, opener) -> bytes | bytearray:
    """The file's bytes, decompressed when gzip; `opener(path)` opens it for reading bytes (a local file or an
    fsspec URL). A gzip file is decompressed in chunks into one buffer sized from its trailer, so the compressed
    file is never held whole beside the decompressed text."""
    with opener(path) as f:
        if f.read(2) == b"\x1f\x8b":
            try:
                return _gunzip(f)
            except (OSError, EOFError, zlib.error) as e:
                raise TraceError(f"{path}: truncated or corrupt gzip data ({e})") from None
    if str(path).endswith(".gz"):
        raise TraceError(f"{path}: named .gz but is not gzip data")
    with opener(path) as f:  # opened afresh: a whole read from the start is sized at once, never regrown
        return f.read()


def _gunzip(raw) -> bytearray:
    raw.seek(-4, os.SEEK_END)
    size_hint = int.from_bytes(raw.read(4), "little")  # the size modulo 2^32 (of the last member)
    raw.seek(0)
    out = bytearray(size_hint)
    filled = 0
    with gzip.GzipFile(fileobj=raw, mode="rb") as f:
        view = memoryview(out)
        while filled < len(out):
            n = f.readinto(view[filled:filled + GUNZIP_CHUNK])
            if not n:
                break
            filled += n
        view.release()
        while chunk := f.read(GUNZIP_CHUNK):  # larger than the trailer said (over 4 GB, several members)
            out += chunk
            filled += len(chunk)
    del out[filled:]
    return out


def decode(raw: bytes | bytearray, path: object) -> tuple[TraceFile, list[Note]]:
    """The parsed file and warnings; events whose fields have the wrong types are dropped (slow path)."""
    if not raw.strip():
        raise TraceError(f"{path}: empty file")
    try:
        return msgspec.json.decode(raw, type=TraceFile), []
    except msgspec.DecodeError as e:
        if not isinstance(e, msgspec.ValidationError):
            raise TraceError(f"{path}: not valid JSON, truncated or corrupt ({e})") from None
        if "missing required field `traceEvents`" in str(e) or " - at " not in str(e):
            raise TraceError(f"{path}: not a Kineto trace (no object with traceEvents)") from None
        reason = str(e)
    try:
        loose = msgspec.json.decode(raw, type=LooseTraceFile)
    except msgspec.DecodeError as e:
        raise TraceError(f"{path}: not a Kineto trace ({e})") from None
    events, dropped = [], 0
    for item in loose.traceEvents:
        try:
            events.append(msgspec.json.decode(item, type=Event))
        except msgspec.DecodeError:
            dropped += 1
    parsed = TraceFile(traceEvents=events, **{f: getattr(loose, f) for f in Header.__struct_fields__})
    return parsed, [Note("wrong_types_skipped", {"events": dropped, "first_error": reason})]
