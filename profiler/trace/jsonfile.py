"""A trace's events as msgspec decodes them, one chunk of whole events at a time: the fields read, and of each
event's args only those some stage uses (the rest are skipped by the decoder, never built), so that nothing of a
chunk outlives it. Events whose own fields have the wrong type are dropped (the slow path), as are args of the
wrong shape, one part at a time, as a stage reading them alone would."""

import math
import re
from dataclasses import dataclass

import msgspec

EMPTY = msgspec.Raw()  # a field the args do not hold


class Args(msgspec.Struct, frozen=True, gc=False, rename={
        "dims": "Input Dims", "dims_1x": "Input dims", "types": "Input type", "concrete": "Concrete Inputs",
        "nelems": "In msg nelems", "mem_bytes": "Bytes", "allocated": "Total Allocated",
        "reserved": "Total Reserved", "device_type": "Device Type", "device_id": "Device Id", "label": "name"}):
    """Every args field any stage reads, decoded with the event."""

    # a runtime call's or a device event's: which launch it is, the bytes a memcpy/memset moved, the device
    correlation: int = -1
    connection_id: int = -1  # torch_npu's (msprof's) correlation: a CANN call's and the task it launched
    bytes: int = 0
    device: int = -1
    # kept as raw JSON (texts that repeat, or few): an op's recorded inputs (torch 1.8 spells the dims
    # "Input dims") and a collective's message size (record_param_comms)
    dims: msgspec.Raw = EMPTY
    dims_1x: msgspec.Raw = EMPTY
    types: msgspec.Raw = EMPTY
    concrete: msgspec.Raw = EMPTY
    nelems: msgspec.Raw = EMPTY
    dtype: msgspec.Raw = EMPTY
    # a [memory] event's (trace/memory.py)
    mem_bytes: int = 0
    allocated: int = -1  # -1: not recorded (Bytes-only traces)
    reserved: int = -1
    device_type: int = 0  # c10's: 0 the CPU
    device_id: int = -1
    # a process_name metadata event's: the process's name ("Ascend Hardware" holds torch_npu's device events)
    label: str = ""


NO_ARGS = Args()


def _part(name: str, fields: tuple[str, ...]):
    """A struct of some of Args' fields: where one field has the wrong type, the others of its part are lost,
    as a stage decoding that part alone would lose them."""
    kept = [f for f in msgspec.structs.fields(Args) if f.name in fields]
    return msgspec.defstruct(name, [(f.name, f.type, f.default) for f in kept],
                             rename={f.name: f.encode_name for f in kept})


ARGS_PARTS = (_part("LaunchArgs", ("correlation", "connection_id", "bytes", "device")), _part("LabelArgs", ("label",)),
              _part("RecordedArgs", ("dims", "dims_1x", "types", "concrete", "nelems", "dtype")),
              MEMORY_ARGS := _part("MemoryArgs", ("mem_bytes", "allocated", "reserved", "device_type", "device_id")))


class Event(msgspec.Struct, gc=False):  # no cycles: the collector need not track a chunk's events
    ph: str = ""
    cat: str = ""
    name: str = ""
    pid: int | str = 0
    tid: int | str = 0
    ts: float = math.nan  # NaN marks a missing field
    dur: float = math.nan
    args: Args = NO_ARGS


# an event whose args did not fit Args: its own fields decide whether it is kept
LooseArgsEvent = msgspec.defstruct("LooseArgsEvent", [(f.name, f.type if f.name != "args" else msgspec.Raw,
                                                       f.default if f.name != "args" else EMPTY)
                                                      for f in msgspec.structs.fields(Event)])


class DeviceProperties(msgspec.Struct):
    name: str = ""
    id: int = 0
    totalGlobalMem: float = 0.0  # bytes of device memory (float: any JSON number reads)


class Header(msgspec.Struct, kw_only=True):
    """The top-level keys read besides traceEvents, wherever they sit in the file."""

    deviceProperties: list[DeviceProperties] = []
    computeProperties: list[DeviceProperties] = []  # the name of the field in some torch 1.x traces
    distributedInfo: dict | None = None
    mfu_analyzer: msgspec.Raw = EMPTY  # read apart: bad metadata costs only itself
    WARNING: msgspec.Raw = EMPTY  # Kineto's own log lines (builds without glog, 2024-2026): read apart too
    ERROR: msgspec.Raw = EMPTY


HEADER_KEYS = set(Header.__struct_fields__)
# strict=False reads a number written as a string ("ts": "1700000000123.456", as torch_npu writes them) at no cost
EVENTS = msgspec.json.Decoder(list[Event], strict=False)
ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])
ONE_EVENT = msgspec.json.Decoder(Event, strict=False)
ONE_LOOSE_EVENT = msgspec.json.Decoder(LooseArgsEvent, strict=False)
MEMORY_EVENT = "[memory]"


@dataclass
class Chunk:
    events: list[Event]
    elements: int  # the array's elements it held, the dropped ones included
    dropped: int = 0  # with fields of the wrong type
    first_error: str = ""  # the first of those, as msgspec says it, with its place in the file


def decode_chunk(text: bytes, first_index: int) -> Chunk | None:
    """The events of a JSON array of them (its first element the file's `first_index`-th), or None where the
    text is not one array."""
    try:
        events = EVENTS.decode(text)
        return Chunk(events, len(events))
    except msgspec.ValidationError:
        pass
    except msgspec.DecodeError:
        return None
    try:
        elements = ELEMENTS.decode(text)
    except msgspec.DecodeError:
        return None
    chunk = Chunk([], len(elements))
    for i, element in enumerate(elements):
        try:
            chunk.events.append(ONE_EVENT.decode(element))
            continue
        except msgspec.DecodeError:
            pass
        try:
            loose = ONE_LOOSE_EVENT.decode(element)
        except msgspec.DecodeError as e:
            chunk.dropped += 1
            chunk.first_error = chunk.first_error or _placed(str(e), first_index + i)
            continue
        if (event := _with_usable_args(loose)) is not None:
            chunk.events.append(event)
    return chunk


def _placed(error: str, index: int) -> str:
    """msgspec's message for one element, with the element's place in the file: `$.traceEvents[12].ts`."""
    place = f"$.traceEvents[{index}]"
    return error.replace("`$", f"`{place}", 1) if " - at `$" in error else f"{error} - at `{place}`"


def _with_usable_args(loose) -> Event | None:
    """The event with each part of its args that has the right types (the others left empty); None for a
    memory event whose memory fields do not fit."""
    parts = {}
    for kind in ARGS_PARTS:
        try:
            parts.update(msgspec.structs.asdict(msgspec.json.decode(loose.args, type=kind, strict=False)))
        except msgspec.DecodeError:
            if kind is MEMORY_ARGS and loose.name == MEMORY_EVENT:
                return None
    fields = msgspec.structs.asdict(loose)
    return Event(**dict(fields, args=Args(**parts)))


def as_lists(key: list[bytes]) -> list[bytes]:
    """A recorded-inputs key (Input Dims, Input dims, Input type, Concrete Inputs) with torch_npu's one-string
    forms of the dims and types ("64,64;64,64", "float;float", inputs apart by ';' or line breaks) as the JSON
    lists Kineto writes."""
    dims, dims_1x, types, concrete = key
    if not (dims.startswith(b'"') or types.startswith(b'"')):
        return key
    return [_listed(dims, shape=True), dims_1x, _listed(types, shape=False), concrete]


def _listed(text: bytes, shape: bool) -> bytes:
    if not text.startswith(b'"'):
        return text
    try:
        value = msgspec.json.decode(text, type=str).strip()
    except msgspec.DecodeError:
        return b""
    if value.startswith("["):  # a JSON list written as a string
        return value.encode()
    parts = [part.strip() for part in re.split(r"\r?\n|;", value)] if value else []
    if not shape:
        return msgspec.json.encode(parts)
    try:
        return msgspec.json.encode([[int(d) for d in part.split(",") if d.strip()] for part in parts])
    except ValueError:  # not dims: left unread
        return b""
