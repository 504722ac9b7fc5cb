"""The report's charts as matplotlib figures, drawn from the report alone: the HTML report embeds them
as SVG, TensorBoard shows them as images."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from profiler.report.model import Report  # noqa: E402
from profiler.report.reading import ledger_bottom, ledger_unit, losses, shorten, shown_categories  # noqa: E402
from profiler.settings import GIGA, MEGA  # noqa: E402

COLORS = {"matmul": "#2b6cb0", "other_compute": "#63b3ed", "memory": "#d69e2e", "communication": "#805ad5",
          "data_loading": "#e53e3e", "host_overhead": "#ed8936", "idle": "#a0aec0", "unrecorded": "#805ad5"}


def ledger_waterfall(report: Report):
    """From 100 (peak, or the step) down to the MFU (or the useful work), one falling bar per cause, largest
    first."""
    u, entries, bottom = ledger_unit(report), losses(report), ledger_bottom(report)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(entries) + 1.6))
    labels, level = [u["top"]], 100.0
    ax.barh(0, 100, color="#cbd5e0")
    for i, e in enumerate(entries, 1):
        ax.barh(i, -e.points, left=level, color="#e53e3e" if e.points >= 0 else "#38a169")
        ax.text(max(level - e.points, level) + 1, i, f"-{e.points:.1f}", va="center", fontsize=8)
        level -= e.points
        labels.append(e.cause)
    ax.barh(len(entries) + 1, bottom, color="#2b6cb0")
    ax.text(bottom + 1, len(entries) + 1, f"{bottom:.2f}%", va="center", fontsize=8)
    labels.append(u["bottom"])
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_xlabel(u["axis"])
    ax.set_title(f"{u['title']}: {u['unit']}")
    fig.tight_layout()
    return fig


def step_breakdown(report: Report):
    """Each analysed step's time, stacked by category."""
    steps = report.per_step
    fig, ax = plt.subplots(figsize=(8, 3.6))
    x = [str(s.step) for s in steps]
    bottom = [0.0] * len(steps)
    for c in shown_categories(report.breakdown):
        values = [getattr(s, c) for s in steps]
        ax.bar(x, values, bottom=bottom, label=c, color=COLORS[c])
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xlabel("step")
    ax.set_ylabel("ms")
    ax.set_title("Step time by category", pad=34)
    ax.legend(fontsize=7, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    return fig


def matmul_rates(report: Report):
    """Achieved TFLOP/s of the largest FLOP-counting ops against the peaks."""
    ops = [op for op in report.top_ops if op.tflops_per_s][:8]
    dev = report.device
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(ops) + 1.6))
    names = [shorten(op.name, 47) for op in ops]
    ax.barh(names, [op.tflops_per_s or 0.0 for op in ops], color="#2b6cb0")
    for value, label, style in ((dev.peak_flops, "P", "-"), (dev.peak_flops_run, "P_run", "--")):
        if value:
            ax.axvline(value / 1e12, color="#e53e3e", linestyle=style, label=f"{label} {value / 1e12:.3g} TFLOP/s")
    ax.invert_yaxis()
    ax.set_xlabel("TFLOP/s")
    ax.set_title("Achieved rate of the largest matmul / attention / convolution ops")
    if dev.peak_flops:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def roofline(report: Report):
    """The top ops against the two ceilings: the ops with counted FLOPs on a log-log roofline (arithmetic
    intensity against achieved TFLOP/s, under min(P_run, intensity x bandwidth)), and the ops without (elementwise,
    norms, copies) by the bandwidth they achieved against the memory ceiling."""
    dev = report.device
    rooflines = [(op, op.roofline) for op in report.top_ops if op.roofline]
    flop_ops = [(op, r) for op, r in rooflines if r.achieved_tflops][:10]
    memory_ops = [(op, r) for op, r in rooflines if not r.achieved_tflops][:10]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.1, 1]})
    bandwidth, peak = (dev.bandwidth or 0) / 1e12, (dev.peak_flops_run or 0) / 1e12
    if flop_ops and peak:
        xs = [r.intensity for _, r in flop_ops]
        low, high = min(xs + [peak / bandwidth]) / 4, max(xs + [peak / bandwidth]) * 4
        grid = [low * (high / low) ** (i / 60) for i in range(61)]
        left.plot(grid, [min(peak, x * bandwidth) for x in grid], color="#e53e3e",
                  label=f"min(P_run {peak:.3g} TFLOP/s, AI x {bandwidth:.3g} TB/s)")
        for op, r in flop_ops:
            left.scatter(r.intensity, r.achieved_tflops, color=COLORS.get(op.category, "#2b6cb0"), zorder=3)
            left.annotate(shorten(op.name.removeprefix("aten::"), 24), (r.intensity, r.achieved_tflops),
                          fontsize=7, xytext=(4, 2), textcoords="offset points")
        left.set_xscale("log")
        left.set_yscale("log")
        left.legend(fontsize=7, loc="upper left")
    left.set_xlabel("arithmetic intensity (FLOP/byte)")
    left.set_ylabel("TFLOP/s achieved")
    left.set_title("Roofline: ops with counted FLOPs", fontsize=10)
    names = [shorten(op.name, 30) for op, _ in memory_ops]
    right.barh(names, [r.achieved_tb_s for _, r in memory_ops], color="#63b3ed")
    right.axvline(bandwidth, color="#e53e3e", label=f"memory ceiling {bandwidth:.3g} TB/s")
    right.invert_yaxis()
    right.tick_params(axis="y", labelsize=7)
    right.set_xlabel("TB/s achieved")
    right.set_title("Ops without counted FLOPs: bandwidth", fontsize=10)
    right.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def memory_over_step(report: Report):
    """The median step's allocated and reserved memory over time, against the level a step starts with and the
    capacity (a line where it is within reach of the curve, else its size in the title). Where the trace has no
    level, what was allocated since the step began, on top of our run's model states where it counted them."""
    m = report.memory
    curve = m.median_step if m else None
    assert m is not None and curve is not None
    base = m.parts["model_states"] if curve.relative and m.parts else 0.0
    highest = max([base + v for v in curve.allocated_bytes] + list(curve.reserved_bytes or []))
    unit, scale = ("GB", GIGA) if highest >= GIGA else ("MB", MEGA)
    fig, ax = plt.subplots(figsize=(8, 3.4))
    ax.step(curve.t_ms, [(base + v) / scale for v in curve.allocated_bytes], where="post", color="#2b6cb0",
            label="allocated")
    if curve.reserved_bytes:
        ax.step(curve.t_ms, [v / scale for v in curve.reserved_bytes], where="post", color="#ed8936", label="reserved")
    lives = m.at_step_start_bytes if m.at_step_start_bytes is not None else base or None
    if lives:
        ax.axhline(lives / scale, color="#718096", linestyle=":", label="at the step's start" if not curve.relative
                   else "model states")
    capacity = f"; capacity {m.capacity_bytes / GIGA:.2f} GB ({m.capacity_source})" if m.capacity_bytes else ""
    if m.capacity_bytes and m.capacity_bytes <= 3 * highest:
        ax.axhline(m.capacity_bytes / scale, color="#e53e3e", linestyle="--", label="capacity")
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"ms into step {curve.step} (the median step)")
    ax.set_ylabel(unit + (" (model states + allocated in the step)" if base else
                          " allocated in the step" if curve.relative else ""))
    ax.set_title(f"Memory of {m.device} over the step{capacity}", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def figures(report: Report) -> dict:
    """The charts this report has data for, by name; the caller closes them."""
    out = {}
    if report.ledger:
        out["ledger"] = ledger_waterfall(report)
    if report.per_step:
        out["steps"] = step_breakdown(report)
    if report.device.bandwidth and any(op.roofline for op in report.top_ops):
        out["roofline"] = roofline(report)
    elif any(op.tflops_per_s for op in report.top_ops):
        out["roofline"] = matmul_rates(report)
    if report.memory and report.memory.median_step:
        out["memory"] = memory_over_step(report)
    return out
