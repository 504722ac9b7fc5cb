"""Memory per analysed step, from the allocator's events (trace/memory.py), for the device the kernels ran on
(on a CPU trace, the CPU): what a larger batch needs to know before it is tried.

Where the trace records a GPU's `Total Allocated` (the caching allocator's own count), a step's level at its
start is what the step inherits (parameters, gradients, optimizer state, caches) and its peak above that start is
the transient (activations and temporaries). Where it records `Bytes` alone, the running sum gives the
transient, and the absolute level stays unknown (NaN): it is never guessed. A CPU's `Total Allocated` is of the
same kind: the profiler counts only what was allocated since it started (a tensor made before is left out), so a
CPU trace has transients and no level.
"""

from dataclasses import replace

import numpy as np

from profiler.analysis.records import MemoryCurve, MemoryDevice, milliseconds
from profiler.analysis.timeline import median_step
from profiler.settings import MEMORY_CURVE_POINTS
from profiler.trace import classify
from profiler.trace.kinds import RUNTIME
from profiler.trace.load import Trace
from profiler.trace.memory import CPU_DEVICE_TYPE, MemoryEvents, device_label
from profiler.trace.steps import Steps

FIGURES = ("peak_allocated_bytes", "peak_reserved_bytes", "at_start_bytes", "transient_bytes",
           "reserved_free_bytes")


def memory_device(trace: Trace, gpu: bool) -> tuple[MemoryEvents, MemoryDevice] | None:
    """The device to describe, with its events, or None where the trace records none of its memory:
    the device most kernels ran on (else the device with most events), or the CPU on a CPU trace. On a GPU trace
    the CPU's events are host tensors, not the device's memory."""
    memory = trace.memory
    counts = np.bincount(memory.device, minlength=len(memory.devices))
    candidates = [c for c, (kind, _) in enumerate(memory.devices) if (kind != CPU_DEVICE_TYPE) == gpu and counts[c]]
    if not candidates:
        return None
    ran_on = [c for c in candidates if memory.devices[c][1] == trace.kernel_device]
    code = (ran_on or sorted(candidates, key=lambda c: -counts[c]))[0]
    kind, index = memory.devices[code]
    events = memory.of_device(code)
    capacity = trace.device_memory[index] if gpu and 0 <= index < len(trace.device_memory) else 0
    source = "cpu" if kind == CPU_DEVICE_TYPE else "totals" if (events.allocated >= 0).all() else "bytes only"
    return events, MemoryDevice(label=device_label((kind, index)), source=source, capacity_bytes=capacity)


def step_memory(trace: Trace, steps: Steps, gpu: bool) -> tuple[MemoryDevice | None, dict[str, np.ndarray]]:
    """Per step: the FIGURES (bytes, NaN where unknown) and `allocator_calls` (runtime calls that allocate or
    free device memory: the caching allocator growing or shrinking inside the step)."""
    n = len(steps.ids)
    out = {name: np.full(n, np.nan) for name in FIGURES}
    out["allocator_calls"] = allocator_calls(trace, steps)
    found = memory_device(trace, gpu)
    if found is None or not n:
        return None, out
    events, device = found
    lo = np.searchsorted(events.ts, steps.start, side="left")
    hi = np.searchsorted(events.ts, steps.end, side="left")
    if device.totals:
        _from_totals(events, lo, hi, out)
    else:
        _from_changes(events, lo, hi, out)
    k = median_step(steps)
    return replace(device, curve=_curve(events, steps, k, slice(lo[k], hi[k]), out, device.totals)), out


def _curve(events: MemoryEvents, steps: Steps, k: int, inside: slice, out: dict, totals: bool) -> MemoryCurve | None:
    """Step k's memory in MEMORY_CURVE_POINTS slices: each the highest level in it, or the level it enters
    with where no event falls in it. None where the step's level is unknown."""
    start, length = float(steps.start[k]), float(steps.end[k] - steps.start[k])
    entering = float(out["at_start_bytes"][k]) if totals else 0.0
    if not np.isfinite(entering):
        return None
    t = events.ts[inside] - start
    edges = np.linspace(0.0, length, MEMORY_CURVE_POINTS + 1)[:-1]
    slot = np.minimum((t / max(length, 1e-9) * MEMORY_CURVE_POINTS).astype(int), MEMORY_CURVE_POINTS - 1)
    last = np.searchsorted(t, edges, side="right") - 1  # the event whose level each slice enters with

    def highest(values: np.ndarray, before: float) -> list[float]:
        levels = np.full(len(edges), before)
        if len(values):
            levels = np.where(last >= 0, values[np.maximum(last, 0)], before)
            np.maximum.at(levels, slot, values)
        return levels.tolist()

    level = events.allocated[inside].astype(float) if totals else np.cumsum(events.nbytes[inside], dtype=float)
    reserved = None
    if totals:
        held = events.reserved  # before the step, the last event's; before any event, the first's
        before = float(held[inside.start - 1] if inside.start else held[0]) if len(held) else 0.0
        reserved = highest(held[inside].astype(float), before)
    return MemoryCurve(step=int(steps.ids[k]), t_ms=[milliseconds(float(e)) for e in edges],
                       allocated_bytes=highest(level, entering), reserved_bytes=reserved, relative=not totals)


def _from_totals(events: MemoryEvents, lo: np.ndarray, hi: np.ndarray, out: dict):
    """Levels read off `Total Allocated` / `Total Reserved`."""
    allocated, reserved = events.allocated.astype(float), events.reserved.astype(float)
    for k, (a, b) in enumerate(zip(lo, hi)):
        if a == b == 0:
            continue  # no event before the step or in it: its level is unknown
        start = allocated[a - 1] if a else allocated[0] - events.nbytes[0]  # the first event's level before it
        first = max(a - 1, 0)  # the event whose level holds at the step's start, then those inside it
        at = first + int(np.argmax(allocated[first:b]))
        peak = max(start, allocated[at])
        out["at_start_bytes"][k], out["peak_allocated_bytes"][k], out["transient_bytes"][k] = start, peak, peak - start
        out["peak_reserved_bytes"][k] = reserved[first:b].max()
        out["reserved_free_bytes"][k] = max(reserved[at] - peak, 0.0)


def _from_changes(events: MemoryEvents, lo: np.ndarray, hi: np.ndarray, out: dict):
    """The transient from `Bytes` alone: the running sum's rise above its level at the step's start."""
    level = np.concatenate(([0.0], np.cumsum(events.nbytes, dtype=float)))  # level[i]: after the first i events
    for k, (a, b) in enumerate(zip(lo, hi)):
        out["transient_bytes"][k] = max(level[a + 1:b + 1].max() - level[a], 0.0) if b > a else 0.0


def allocator_calls(trace: Trace, steps: Steps) -> np.ndarray:
    """Allocator runtime calls (cudaMalloc, cudaFree, hipMalloc, ...) per step."""
    runtime = np.flatnonzero(trace.kind == RUNTIME)
    calls = runtime[trace.by_name(classify.ALLOCATOR_CALL.match)[runtime]]
    step = steps.window_index(trace.start[calls])
    return np.bincount(step[step >= 0], minlength=len(steps.ids)).astype(float)
