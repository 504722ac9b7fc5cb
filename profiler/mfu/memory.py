"""Will a larger batch fit: the device's capacity, where it comes from, and the headroom the trace's own memory
events leave (analysis/memory.py measured them per step).

The headroom assumes that what a step inherits (parameters, gradients, optimizer state, caches) stays and that
the transient (activations and temporaries) grows linearly with the batch: batch_headroom = (capacity x USABLE
- persistent) / transient, how many times the batch can grow before the device is full.
"""

import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from profiler.analysis.records import RankAnalysis, milliseconds
from profiler.facts import Note
from profiler.mfu.records import Attribution, MemoryFigures
from profiler.settings import BATCH_FACTOR, GIGA, KILO, MEGA, MEMORY_USABLE, TERA, Options
from profiler.trace.metadata import RunMetadata

# device memory in GB (10^9 bytes) by the same patterns as peak.DEVICE_TABLE: where a name covers several
# sizes, the smallest (a capacity too low keeps the advice safe). A name that states its size ("A100-SXM4-80GB")
# gives it first; a unified-memory device (Jetson) shares the machine's and has no entry.
DEVICE_MEMORY_GB = [
    (r"GB200", 186), (r"B200", 180), (r"B100", 192), (r"GH200", 96), (r"H200", 141), (r"H100.*(PCIe|PCI)", 80),
    (r"H100|H800", 80), (r"H20\b", 96), (r"A100|A800", 40), (r"A30\b", 24), (r"A40\b", 48), (r"A10G", 24),
    (r"A10\b", 24), (r"A16\b", 16), (r"A2\b", 16), (r"L40S", 48), (r"L40\b", 48), (r"L20\b", 48), (r"L4\b", 24),
    (r"V100", 16), (r"T4\b", 16),
    (r"RTX 5000 Ada.*Laptop", 16), (r"RTX 4000 Ada.*Laptop", 12), (r"RTX 2000 Ada.*Laptop", 8),
    (r"RTX 500 Ada.*Laptop", 4), (r"RTX 4090 Laptop", 16), (r"RTX 4080 Laptop", 12), (r"RTX 4070 Laptop", 8),
    (r"RTX 4060 Laptop", 8), (r"RTX 4050 Laptop", 6), (r"RTX 3080 Ti Laptop", 16), (r"RTX 3080 Laptop", 8),
    (r"RTX 3070 Laptop", 8), (r"RTX 3060 Laptop", 6), (r"RTX 3050 Laptop", 4),
    (r"RTX PRO 6000", 96), (r"RTX 6000 Ada", 48), (r"RTX A6000", 48), (r"RTX A5000", 24), (r"RTX A4000", 16),
    (r"Quadro RTX (6000|8000)", 24), (r"TITAN RTX", 24), (r"TITAN V\b", 12), (r"RTX 5090", 32), (r"RTX 5080", 16),
    (r"RTX 4090", 24), (r"RTX 4080", 16), (r"RTX 3090", 24), (r"RTX 3080", 10), (r"RTX 3070", 8), (r"RTX 3060", 8),
    (r"RTX 2080 Ti", 11), (r"RTX 2080", 8), (r"RTX 2070", 8), (r"RTX 2060", 6),
    (r"MI355", 288), (r"MI325|MI300X", 192), (r"MI300A", 128), (r"MI250X", 64), (r"MI250", 64), (r"MI210", 64),
    (r"MI100", 32), (r"GPU Max 1550", 128), (r"GPU Max 1100", 48), (r"GAUDI ?3|HL-32\d", 128),
    (r"GAUDI ?2|HL-22\d", 96), (r"Ascend910_93|Ascend ?910C", 64),
]
STATED_SIZE = re.compile(r"(\d+)\s*GB", re.IGNORECASE)
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
UNITS = {"": 1, "b": 1, "k": KILO, "m": MEGA, "g": GIGA, "t": TERA, "ki": 2**10, "mi": 2**20, "gi": 2**30,
         "ti": 2**40}


def memory_size(text: str) -> float:
    """Bytes from "80GB", "24GiB", "8e9" or "8000000000" (argparse's type for --memory-capacity)."""
    try:
        value = float(text)
    except ValueError:
        found = SIZE.match(text)
        if not found:
            raise ValueError(f"not a memory size: {text!r} (say 80GB, 24GiB or bytes)") from None
        value = float(found[1]) * UNITS[(found[2] or "").lower().rstrip("b")]
    if not 0 < value < math.inf:
        raise ValueError(f"not a memory size: {text!r}")
    return value


def table_memory(device_name: str) -> float | None:
    """Bytes of a GPU's memory from its name: the size it states, else the table."""
    stated = STATED_SIZE.search(device_name)
    if stated:
        return int(stated[1]) * GIGA
    for pattern, gb in DEVICE_MEMORY_GB:
        if re.search(pattern, device_name, re.IGNORECASE):
            return gb * GIGA
    return None


def machine_memory(root: Path = Path("/")) -> tuple[float, str] | None:
    """This machine's memory for a process: its cgroup's limit where one is set below the physical memory."""
    try:
        text = (root / "proc/meminfo").read_text()
        physical = int(re.search(r"MemTotal:\s+(\d+) kB", text)[1]) * 1024  # type: ignore[index]
    except (OSError, TypeError):
        return None
    for limit_file in ("sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            limit = int((root / limit_file).read_text().strip())
        except (OSError, ValueError):  # absent, or "max"
            continue
        if 0 < limit < physical:
            return float(limit), "cgroup limit"
    return float(physical), "machine memory"


def capacity(analysis: RankAnalysis, options: Options) -> tuple[float | None, str | None, list[Note]]:
    """The device's memory in bytes and where it comes from: the user (--memory-capacity, then
    profile(memory_capacity=)), the trace's deviceProperties, the device table, and on a CPU what our run
    recorded of its machine, else this machine."""
    meta, device = analysis.metadata, analysis.memory
    if options.memory_capacity > 0:
        return options.memory_capacity, "--memory-capacity", []
    if meta.memory_capacity and meta.memory_capacity_from == "profile(memory_capacity=)":
        return float(meta.memory_capacity), meta.memory_capacity_from, []
    if analysis.kind != "cpu":
        if device and device.capacity_bytes:
            return float(device.capacity_bytes), "deviceProperties", []
        index = int(device.label.split(":")[1]) if device and ":" in device.label else 0
        names = analysis.device_names
        found = table_memory(names[min(index, len(names) - 1)]) if names else None
        return (found, "device table", []) if found else (None, None, [])
    if meta.memory_capacity:
        return float(meta.memory_capacity), meta.memory_capacity_from or "run metadata", []
    here = machine_memory()
    return (here[0], here[1], [Note("memory_capacity_of_this_machine")]) if here else (None, None, [])


def worst_rank(ranks: list[Attribution]) -> MemoryFigures | None:
    """A job's memory: its fullest rank's (by peak allocated, else by transient), saying which rank."""
    found = [(a.figures.memory, a.rank) for a in ranks if a.figures.memory]
    if not found:
        return None
    memory, rank = max(found, key=lambda mr: mr[0].peak_allocated_bytes or mr[0].transient_peak_bytes or 0.0)
    return replace(memory, rank=rank)


def memory_figures(analysis: RankAnalysis, options: Options) -> tuple[MemoryFigures | None, list[Note]]:
    """The worst step's memory (each figure its maximum over the steps), the capacity and the batch headroom;
    None, with a warning, where the trace records no memory of the device."""
    device, table = analysis.memory, analysis.table
    if device is None:
        return None, [Note("no_memory_events")]
    cap, source, notes = capacity(analysis, options)

    def worst(figure: str) -> float | None:
        values = getattr(table, figure)
        return float(np.nanmax(values)) if np.isfinite(values).any() else None

    persistent, transient = worst("at_start_bytes"), worst("transient_bytes")
    parts = memory_parts(analysis.metadata, BATCH_FACTOR)
    lives = persistent if persistent is not None else parts["model_states"] if parts else None  # CPU: no level
    headroom = None
    if cap and lives is not None and transient:
        headroom = max(cap * MEMORY_USABLE - lives, 0.0) / transient
    return MemoryFigures(
        device=device.label, source=device.source, capacity_bytes=cap,
        capacity_source=source, peak_allocated_bytes=worst("peak_allocated_bytes"),
        peak_reserved_bytes=worst("peak_reserved_bytes"), at_step_start_bytes=persistent,
        transient_peak_bytes=transient, reserved_free_bytes=worst("reserved_free_bytes"),
        allocator_calls_per_step=float(table.allocator_calls.mean()) if len(table) else 0.0,
        allocator_ms_per_step=milliseconds(float(table.allocator_us.mean())) if len(table) else 0.0,
        batch_headroom=headroom, parts=parts, median_step=device.curve), notes


def memory_parts(meta: RunMetadata, factor: int) -> dict | None:
    """Our run's model states, as it counted them, and the activations per sample fitted to its micro-steps'
    transients at its batch and `factor` times it, with the peak each batch the fix may propose would reach
    (the batch's multiples up to `factor`: beyond, nothing was measured). None for another program's trace."""
    parts, batch = meta.memory_parts or {}, meta.batch_size
    if not batch:
        return None
    try:
        measured = parts["transient_bytes_by_batch"]
        small, large = float(measured[str(batch)]), float(measured[str(factor * batch)])
        states = {k: float(parts[k]) for k in ("parameters", "gradients", "optimizer_state")}
    except (KeyError, TypeError, ValueError):
        return None
    per_sample = max((large - small) / ((factor - 1) * batch), 0.0)
    fixed = small - batch * per_sample  # gradients and what does not grow with the batch
    lives = states["parameters"] + states["optimizer_state"]  # the gradients are freed after each step
    return {**states, "model_states": lives, "activations_per_sample": per_sample,
            "predicted_peak_bytes_by_batch": {str(k * batch): lives + fixed + k * batch * per_sample
                                              for k in range(1, factor + 1)}}
