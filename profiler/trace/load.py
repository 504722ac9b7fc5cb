"""Kineto trace files → columnar numpy arrays, in one decoding pass.

msgspec decodes the JSON straight into typed structs and keeps each event's `args` as raw bytes, so only
the args that a later stage asks for are ever decoded. Old (torch 1.x: "Operator", "Kernel") and new
("cpu_op", "kernel") category names, microsecond and fractional (nanosecond-resolution) timestamps,
`.json` and `.json.gz` are all read the same way.
"""

import math
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import msgspec
import numpy as np

from profiler.facts import Note
from profiler.files import REPORT, written_here
from profiler.trace.errors import TraceError
from profiler.trace.jsonfile import decode, read_bytes
from profiler.trace.location import Location, is_url, open_binary, url_trace_files
from profiler.trace.memory import MEMORY_EVENT, NO_MEMORY_EVENTS, MemoryEvents, memory_events
from profiler.trace.metadata import RunMetadata, read_metadata


# event kinds, by the trace's category names across Kineto versions and backends (CUDA, ROCm/HIP, MTIA, XPU,
# Gaudi, PrivateUse1); torch 1.x wrote "Operator", "Kernel", "Runtime"
class Kind(IntEnum):
    """What an event is, whatever its trace called it: the values fill Trace.kind."""

    OP = 0  # an operator on the host (ATen, a custom op, a collective's host side)
    ANNOTATION = 1  # a user's record_function, ProfilerStep#N, DataLoader and optimizer spans
    PYTHON = 2  # a Python frame (with_stack / the Python tracer)
    RUNTIME = 3  # a runtime or driver call (cudaLaunchKernel, hipMemcpy, ...)
    KERNEL = 4
    MEMCPY = 5
    MEMSET = 6
    OTHER = 7


OP, ANNOTATION, PYTHON, RUNTIME, KERNEL, MEMCPY, MEMSET, OTHER = Kind
DEVICE_KINDS = (KERNEL, MEMCPY, MEMSET)
KIND_OF_CATEGORY = {
    "cpu_op": OP, "operator": OP,
    "user_annotation": ANNOTATION,
    "python_function": PYTHON, "python": PYTHON,
    "cuda_runtime": RUNTIME, "runtime": RUNTIME, "cuda_driver": RUNTIME, "hip_runtime": RUNTIME,
    "mtia_runtime": RUNTIME, "xpu_runtime": RUNTIME, "xpu_driver": RUNTIME, "privateuse1_runtime": RUNTIME,
    "privateuse1_driver": RUNTIME, "glow_runtime": RUNTIME, "mlu_runtime": RUNTIME,
    "kernel": KERNEL, "mtia_ccp_events": KERNEL, "hpu_op": KERNEL,
    "gpu_memcpy": MEMCPY, "memcpy": MEMCPY, "mlu_memcpy": MEMCPY,
    "gpu_memset": MEMSET, "memset": MEMSET, "mlu_memset": MEMSET,
}
# categories Kineto writes that hold no time of their own for the analysis (mirrors, markers, counters)
IGNORED_CATEGORIES = {
    "gpu_user_annotation", "mlu_user_annotation", "external_correlation", "cpu_instant_event", "overhead",
    "mtia_insight", "mtia_counters", "cuda_sync", "cuda_event", "xpu_sync", "cuda_profiler_range",
    "mlu_profiler_range", "collective_comm", "xpu_scope_profiler", "trace", "",
}
# the accelerator behind the device events, from the runtime's category or call names
BACKEND_OF_CATEGORY = {"mtia_runtime": "mtia", "mtia_ccp_events": "mtia", "xpu_runtime": "xpu", "xpu_driver": "xpu",
                       "privateuse1_runtime": "privateuse1", "privateuse1_driver": "privateuse1", "hpu_op": "hpu",
                       "hip_runtime": "rocm", "mlu_runtime": "mlu"}


class LaunchArgs(msgspec.Struct):
    correlation: int = -1
    bytes: int = 0
    device: int = -1


class ShapeArgs(msgspec.Struct, rename={"dims": "Input Dims", "types": "Input type", "concrete": "Concrete Inputs"}):
    dims: list = []
    types: list = []
    concrete: list = []


class DimsArgs(msgspec.Struct, rename={"dims": "Input Dims"}):
    dims: list = []


# a time more than this far (µs: a day) from the trace's median, or a duration this long, is damage: a profiled
# window lasts seconds to hours, and a float64 axis that reached it would keep no sub-µs precision elsewhere
MAX_EVENT_US = 86_400e6
EVENT_COLUMNS = np.dtype([("ts", "f8"), ("dur", "f8"), ("name", "i4"), ("cat", "i4"), ("thread", "i4")])


def _finder(kind, spelled_1x: bool):
    """The same fields as `kind`, each kept as raw JSON under the name the trace spells it (the 2021 Kineto
    samples, torch 1.8, write "Input dims"; every later torch "Input Dims"): finding them is cheap, building
    their lists is not."""
    names = ["Input dims" if spelled_1x and n == "Input Dims" else n for n in kind.__struct_encode_fields__]
    fields = [(f, msgspec.Raw, msgspec.Raw(b"[]")) for f in kind.__struct_fields__]
    return msgspec.defstruct(f"{kind.__name__}Raw", fields, rename=dict(zip(kind.__struct_fields__, names)))


FINDERS = {(kind, spelled_1x): _finder(kind, spelled_1x) for kind in (ShapeArgs, DimsArgs)
           for spelled_1x in (False, True)}


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
    raw_args: list  # msgspec.Raw per row
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
    warnings: list[Note] = field(default_factory=list)

    def __len__(self):
        return len(self.name)

    def shapes(self, rows: np.ndarray, kind=ShapeArgs) -> list:
        """Decode recorded input shapes (and types) for the given rows only; DimsArgs decodes the dims alone."""
        codes, values = self.distinct_shapes(rows, kind)
        return [values[c] for c in codes]

    def distinct_shapes(self, rows: np.ndarray, kind=ShapeArgs) -> tuple[np.ndarray, list]:
        """The rows' recorded shapes as a code per row into a list of distinct decoded values.

        The same shapes recur step after step, so each row's fields are found as raw JSON and each distinct
        text is decoded once; later stages work per distinct value and index back with the codes."""
        find = msgspec.json.Decoder(FINDERS[kind, self.dims_1x]).decode
        code_of: dict[tuple, int] = {}
        codes = np.empty(len(rows), dtype=np.int64)
        for j, i in enumerate(rows):
            try:
                key = tuple(map(bytes, msgspec.structs.astuple(find(self.raw_args[i]))))
            except msgspec.DecodeError:
                key = ()
            codes[j] = code_of.setdefault(key, len(code_of))
        return codes, [_from_fields(kind, key) for key in code_of]

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
    if not texts:
        return kind()
    names = kind.__struct_encode_fields__
    fields = b",".join(msgspec.json.encode(name) + b":" + text for name, text in zip(names, texts))
    try:
        return msgspec.json.decode(b"{" + fields + b"}", type=kind)
    except msgspec.DecodeError:
        return kind()


def load_trace(path: Location) -> Trace:
    """Read one trace file (a local path or an fsspec URL) into columns. Raises TraceError with a one-line
    reason."""
    path = path if is_url(path) else Path(path)
    try:
        parsed, warnings = decode(read_bytes(path, open_binary), path)
    except OSError as e:
        raise TraceError(f"{path}: cannot read ({e.strerror or e})") from None
    except RecursionError:
        raise TraceError(f"{path}: not a Kineto trace (JSON nested too deeply)") from None
    events = [e for e in parsed.traceEvents if e.ph == "X"]
    interned: dict[str, int] = {}
    category: dict[str, int] = {}
    threads: dict[tuple, int] = {}
    # one pass over the events for every column (a structured array, split below): Python's per-event work
    # is the cost here, not numpy's
    columns = np.fromiter(((e.ts, e.dur, interned.setdefault(e.name, len(interned)),
                            category.setdefault(e.cat, len(category)), threads.setdefault((e.pid, e.tid), len(threads)))
                           for e in events), EVENT_COLUMNS, len(events))
    ts, dur, name, cat, thread = (np.ascontiguousarray(columns[f]) for f in ("ts", "dur", "name", "cat", "thread"))
    del columns
    timed = np.isfinite(ts) & np.isfinite(dur) & (np.abs(dur) <= MAX_EVENT_US)
    if timed.any():  # a time far from the others' would leave no precision to the rest in one float axis
        timed &= np.abs(ts - np.median(ts[timed])) <= MAX_EVENT_US
    if not timed.all():
        warnings.append(Note("unusable_times", {"events": int((~timed).sum())}))
        events = [e for e, keep in zip(events, timed) if keep]
        ts, dur, name, cat, thread = (column[timed] for column in (ts, dur, name, cat, thread))
    if not events:
        raise TraceError(f"{path}: the trace holds no complete ('X') events with a time")

    cats = {c: KIND_OF_CATEGORY.get(c.lower(), OTHER) for c in category}
    kind = np.array(list(cats.values()), np.int8)[cat]
    counts = np.bincount(cat, minlength=len(category))
    unknown = sorted(c for c, k in cats.items()
                     if k == OTHER and c.lower() not in IGNORED_CATEGORIES and counts[category[c]])
    if unknown:
        warnings.append(Note("unknown_categories", {"categories": [{"category": c, "events": int(counts[category[c]])}
                                                                   for c in unknown]}))
    if (dur < 0).any():
        warnings.append(Note("negative_durations", {"events": int((dur < 0).sum())}))
        dur = np.maximum(dur, 0)
    origin = float(ts.min())
    raw_args = [e.args for e in events]

    correlation = np.full(len(events), -1, dtype=np.int64)
    nbytes = np.zeros(len(events), dtype=np.int64)
    device = np.full(len(events), -1, dtype=np.int64)
    decode_launch = msgspec.json.Decoder(LaunchArgs).decode
    for i in np.flatnonzero((kind == RUNTIME) | np.isin(kind, DEVICE_KINDS)):
        try:
            args = decode_launch(raw_args[i])
        except msgspec.DecodeError:
            continue
        correlation[i], nbytes[i], device[i] = args.correlation, args.bytes, args.device
    ran_on = device[np.isin(kind, DEVICE_KINDS) & (device >= 0)]

    metadata, said = read_metadata(parsed.mfu_analyzer)
    warnings += said
    devices = parsed.deviceProperties or parsed.computeProperties
    device_names = [d.name for d in devices]
    memory = memory_events([e for e in parsed.traceEvents if e.name == MEMORY_EVENT and e.ph == "i"], origin)
    return Trace(
        path=path, names=list(interned), name=name, kind=kind, start=ts - origin, end=ts - origin + dur,
        thread=thread, correlation=correlation, nbytes=nbytes, raw_args=raw_args, origin_us=origin,
        device_names=device_names, threads=list(threads), distributed=parsed.distributedInfo or {},
        metadata=metadata, memory=memory,
        device_memory=[int(m) if 0 < (m := d.totalGlobalMem) < math.inf else 0 for d in devices],
        kernel_device=int(np.bincount(ran_on).argmax()) if len(ran_on) else -1,
        backend=backend_of(set(cats), interned, device_names), dims_1x=spelled_1x(raw_args, kind), warnings=warnings,
    )


def spelled_1x(raw_args: list, kind: np.ndarray) -> bool:
    """Whether the ops' args spell the shapes "Input dims", judged on the first ops that record any."""
    for i in np.flatnonzero(kind == OP)[:200]:
        raw = bytes(raw_args[i])
        if b'"Input Dims"' in raw:
            return False
        if b'"Input dims"' in raw:
            return True
    return False


def backend_of(categories: set[str], names, device_names: list[str]) -> str:
    """The accelerator the device events ran on: by the runtime's category, HIP call names or an AMD device."""
    for category in categories:
        if category.lower() in BACKEND_OF_CATEGORY:
            return BACKEND_OF_CATEGORY[category.lower()]
    if any(name.startswith("hip") for name in names) or any("AMD" in d or "Instinct" in d for d in device_names):
        return "rocm"
    return "cuda"


def trace_files(path: Location) -> list[Location]:
    """A trace file, or a folder's profiler traces (*.pt.trace.json[.gz], else any *.json[.gz]), sorted; a URL's
    through fsspec."""
    if is_url(path):
        return list(url_trace_files(str(path)))
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise TraceError(f"{path}: no such file or folder")
    for pattern in ("*.pt.trace.json", "*.pt.trace.json.gz"), ("*.json", "*.json.gz"):
        files: list[Location] = sorted(p for glob in pattern for p in path.rglob(glob)
                                       if p.is_file() and not written_here(p))
        if files:
            return files
    if (path / REPORT).is_file():
        raise TraceError(f"{path}: holds a saved report ({REPORT}), no traces: `python -m profiler analyze "
                         f"{path / REPORT}` prints it, `tensorboard --logdir={path}` shows it in the MFU tab")
    raise TraceError(f"{path}: no trace files (*.json, *.json.gz) in this folder")
