"""Reading a saved report: the helpers every writer (terminal, Markdown / HTML, charts, compare, the dashboard's
listing) shares, so that no writer imports another for them. They format and select; they compute nothing."""

from profiler.report.model import Bottleneck, Device, Figures, LedgerRow, Memory, Report, Roofline
from profiler.settings import LEDGER_ROW_MIN_POINTS, MEMORY_USABLE
from profiler.trace.classify import CATEGORIES


def fmt_flops(x: float | None) -> str:
    if x is None:
        return "n/a"
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g} "


def shorten(name: str, width: int) -> str:
    """A name cut to width characters, "..." marking the cut (kernel names run to hundreds)."""
    return name if len(name) <= width else name[:width - 3] + "..."


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def roofline_share(roof: Roofline) -> str:
    """'54%c': the share of its roofline an op reached and what bounds it ('>' where it beat the memory ceiling)."""
    return f"{'>' if roof.above_ceiling else ''}{100 * roof.of_roofline:.0f}%{roof.bound[0]}"


def ceilings(dev: Device) -> str:
    """'P_run 989 TFLOP/s, 4.8 TB/s (table)': the roofline's two ceilings."""
    compute = f"P_run {fmt_flops(dev.peak_flops_run)}FLOP/s, " if dev.peak_flops_run else ""
    if not dev.bandwidth:
        return compute
    rate = dev.bandwidth
    memory = f"{rate / 1e12:.3g} TB/s" if rate >= 1e11 else f"{rate / 1e9:.3g} GB/s"
    return f"{compute}{memory} ({dev.bandwidth_source})"


def ledger_unit(report: Figures) -> dict:
    """How a report's ledger is read: its name, unit, top and bottom (MFU points, or points of step time)."""
    if report.time_ledger:
        return {"title": "Time ledger", "unit": "points of the step per cause (MFU cannot be formed)",
                "top": "step", "bottom": "useful", "axis": "% of the step time"}
    return {"title": "MFU ledger", "unit": "points of peak lost per cause", "top": "peak", "bottom": "MFU",
            "axis": "% of peak FLOP/s"}


def ledger_bottom(report: Figures) -> float:
    """Where the waterfall ends: the MFU in percent, or the useful share of the step."""
    if report.time_ledger:
        return next((e.points for e in report.ledger if e.cause == "useful"), 0.0)
    return 100 * (report.ledger_mfu or 0.0)


def losses(report: Figures) -> list[LedgerRow]:
    """The ledger's causes, largest first, without the rows that round to 0 and the time ledger's useful work."""
    return [e for e in sorted(report.ledger, key=lambda e: -e.points)
            if abs(e.points) >= LEDGER_ROW_MIN_POINTS and e.cause != "useful"]


def overrides(config: dict) -> list[str]:
    """A configuration change as profile_run's command line spells it: ['--batch_size=32', ...]."""
    return [f"--{k}={v}" for k, v in config.items()]


def change_in_form(config: dict, form: str | None) -> str:
    """A bottleneck's fix_config as the program that ran writes it: `--batch_size=32 --dtype=bfloat16`, or
    `TrainingArguments(per_device_train_batch_size=32, bf16=True)`, or `Trainer(precision='bf16-mixed')`."""
    if form in (None, "--key=value"):
        return " ".join(overrides(config))
    return f"{form}(" + ", ".join(f"{k}={v!r}" for k, v in config.items()) + ")"


def what_if(entry: Bottleneck) -> str:
    """'MFU 12.34% without it', or in a time ledger 'step 45.20 ms without it (x1.52)'."""
    if isinstance(entry.speedup, float) and isinstance(entry.what_if_step_ms, float):
        return f"step {entry.what_if_step_ms:.2f} ms without it (x{entry.speedup:.2f})"
    return f"MFU {pct(entry.what_if_mfu)} without it"


def fmt_bytes(x: float) -> str:
    """'4.49 GB', '312.5 MB': decimal units, as device memory is sold."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f} B"


def memory_lines(memory: Memory | None) -> list[str]:
    """The memory section's sentences: the worst step's levels against the capacity, and the headroom."""
    if memory is None:
        return []
    m = memory
    of = (f" of {fmt_bytes(m.capacity_bytes)} ({m.capacity_source})" if m.capacity_bytes
          else " (capacity unknown: pass --memory-capacity)")
    rank = f" on rank {m.rank}" if isinstance(m.rank, int) else ""
    if m.peak_allocated_bytes is None:
        alone = ("the allocator's changes alone" if m.source != "cpu"
                 else "what was allocated since the profiler started (the CPU's count)")
        lines = [f"memory of {m.device}{rank}, from {alone}, no absolute level: "
                 f"{fmt_bytes(m.transient_peak_bytes or 0.0)} transient in the worst step{of}; "
                 + (f"the run's model states, {fmt_bytes(m.parts['model_states'])}, stand for what a step starts "
                    f"with: the batch can grow x{m.batch_headroom:.1f} before {100 * MEMORY_USABLE:.0f}% of the "
                    "memory is full" if m.parts and m.batch_headroom is not None
                    else "what a step starts with is unknown, and so is how far the batch can grow")]
    else:
        reserved = (f", {fmt_bytes(m.peak_reserved_bytes)} reserved" if m.peak_reserved_bytes is not None else "")
        lines = [f"memory of {m.device}{rank}, the worst step: peak {fmt_bytes(m.peak_allocated_bytes)} allocated"
                 f"{reserved}{of}",
                 f"{fmt_bytes(m.at_step_start_bytes or 0.0)} at a step's start (model states, caches) + "
                 f"{fmt_bytes(m.transient_peak_bytes or 0.0)} transient (activations, temporaries)"
                 + (f": the batch can grow x{m.batch_headroom:.1f} before {100 * MEMORY_USABLE:.0f}% of the "
                    "memory is full" if m.batch_headroom is not None else "")]
    if m.reserved_free_bytes:
        lines.append(f"{fmt_bytes(m.reserved_free_bytes)} reserved by the caching allocator but free at the peak")
    if m.allocator_calls_per_step:
        lines.append(f"{m.allocator_calls_per_step:.1f} allocator calls (cudaMalloc / cudaFree) per step, "
                     f"{m.allocator_ms_per_step:.2f} ms")
    return lines


def shown_categories(breakdown: dict) -> list[str]:
    """The breakdown's categories a writer shows: unrecorded only where the trace lost device work (reports saved
    before it have none)."""
    return [c for c in CATEGORIES if c in breakdown and (c != "unrecorded" or breakdown[c].ms > 0)]


def unsaid_warnings(report: Report) -> list[str]:
    """The warnings the health section has not said already."""
    said = set(report.health.lost) if report.health else set()
    return [w for w in report.warnings if w not in said]
