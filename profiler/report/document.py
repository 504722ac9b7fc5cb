"""The report as a document: Markdown, and a self-contained HTML page with the charts inline as SVG.

Both are rendered from one list of sections, so they always hold the same content.
"""

import html
import io
from dataclasses import dataclass, field
from pathlib import Path

from profiler.files import write_atomic
from profiler.report.model import Report, TopOp, json_text
from profiler.report.reading import (
    ceilings,
    change_in_form,
    memory_lines,
    pct,
    roofline_share,
    shown_categories,
    unsaid_warnings,
    what_if,
)


@dataclass(kw_only=True)
class Section:
    title: str
    lines: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    chart: str = ""  # name of a chart in charts.figures()


def summary_section(report: Report) -> Section:
    """Where the figures come from, the device and its peak, the step, MFU and HFU with the FLOP account."""
    dev, mfu, step, source = report.device, report.mfu, report.step_time_ms, report.source
    flops = mfu.flops_per_step
    summary = Section(title="Summary", lines=[
        f"Source: {', '.join(source.paths)}; steps {source.steps}"
        + (f"; ranks {source.ranks}" if len(source.ranks) > 1 else ""),
        f"Device: {dev.name or dev.kind} ({dev.kind}), matmuls in {dev.dtype or 'unknown dtype'}",
        f"Peak: {dev.peak_flops / 1e12:.4g} TFLOP/s ({dev.peak_source}), {(dev.peak_flops_run or 0) / 1e12:.4g} in "
        f"{dev.dtype or 'float32 (assumed)'}" + (f"; {dev.peak_note}" if dev.peak_note else "")
        if dev.peak_flops else "Peak: unknown",
        f"Step time: {step.mean:.2f} ms mean ({step.min:.2f} - {step.max:.2f})",
        f"MFU: {pct(mfu.analytic)} analytic ({flops.analytic or 0:.4g} FLOP/step); HFU {pct(mfu.counted)}, every "
        f"counted FLOP ({flops.counted or 0:.4g} FLOP/step)" + (f"; analytic FLOPs from {mfu.analytic_from}"
                                                                if mfu.analytic_from else ""),
    ])
    if flops.forward is not None and flops.counted:
        summary.lines.append(f"Counted FLOPs per step: forward {flops.forward:.4g}, backward "
                             f"{flops.backward or 0:.4g}, recomputed in the backward {flops.recomputed or 0:.4g}, "
                             f"optimizer {flops.outside or 0:.4g}")
    if report.device_utilization:
        u = report.device_utilization
        summary.lines.append(f"Device busy: {pct(u.busy_fraction)} of {u.window_ms:.1f} ms")
    summary.lines += [f"Convention: {c}" for c in report.conventions]
    return summary


def health_section(report: Report) -> list[Section]:
    """What the trace lacks and lost, before any number (absent in reports saved before it)."""
    h = report.health
    if h is None or not (h.lacks or h.lost):
        return []
    return [Section(title="Trace health", lines=[f"Lost: {text}" for text in h.lost] + [
        f"No {lack.what}: {lack.costs} (record with `{lack.record_with}`)" for lack in h.lacks])]


def sections(report: Report) -> list[Section]:
    dev = report.device
    summary = summary_section(report)
    out = health_section(report) + [summary]
    shares = report.breakdown
    out.append(Section(title="Breakdown of the step", headers=["category", "ms/step", "share"], chart="steps", rows=[
        [c, f"{shares[c].ms:.2f}", pct(shares[c].fraction)] for c in shown_categories(shares)]))
    comm = report.communication
    if comm and comm.collectives:
        out.append(Section(title="Communication", lines=[
            f"Parallelism: {', '.join(comm.parallelism) or 'no library named'}; {comm.group_size} ranks"
            + (f", {comm.backend}" if comm.backend else "") + ". Bus bandwidth as nccl-tests defines it."],
                           headers=["phase", "collective", "calls/step", "MB/step", "ms/step", "exposed ms/step",
                                    "bus GB/s"], rows=[
            [r.phase, r.kind, f"{r.calls:.0f}", f"{r.mb:.2f}", f"{r.ms:.2f}", f"{r.exposed_ms:.2f}",
             f"{r.bus_gb_per_s:.2f}" if r.bus_gb_per_s else ""] for r in comm.collectives]))
    if report.memory:
        out.append(Section(title="Memory", lines=[line[0].upper() + line[1:] for line in memory_lines(report.memory)],
                           chart="memory"))
    ledger = sorted(report.ledger, key=lambda e: -e.points)
    if report.time_ledger:
        out.append(Section(title="Time ledger", lines=[
            "MFU cannot be formed for this trace (the warnings say why): the ledger is in points of the step time, "
            "100 in all with the useful work; each what-if is the steady-state step without the cause, and its "
            "speed-up."],
                           headers=["cause", "points", "ms/step", "step without it", "speed-up"], chart="ledger", rows=[
            [e.cause, f"{e.points:.2f}", f"{e.ms:.2f}",
             f"{e.what_if_step_ms:.2f}" if isinstance(e.what_if_step_ms, float) else "",
             f"x{e.speedup:.2f}" if isinstance(e.speedup, float) else ""] for e in ledger]))
    elif report.ledger:
        out.append(Section(title="MFU ledger", lines=[
            "Points of peak lost per cause; they add up to 100 − MFU. The range is the cause's points in its "
            "cheapest and dearest analysed step."],
                           headers=["cause", "points", "range over steps", "ms/step", "MFU without it"],
                           chart="ledger", rows=[
            [e.cause, f"{e.points:.2f}", "{:.2f} - {:.2f}".format(*e.interval) if e.interval else "",
             f"{e.ms:.2f}", pct(e.what_if_mfu)] for e in ledger]))
    for i, b in enumerate(report.bottlenecks, 1):
        lines = [f"Evidence: {b.evidence}", f"Fix: {b.fix}"]
        if b.fix_config:
            lines.append("Try: " + change_in_form(b.fix_config, b.fix_form or None))
        out.append(Section(title=f"{i}. {b.cause}: {b.points:.1f} points, {what_if(b)}", lines=lines))
    ceiling = f" Ceilings: {ceilings(dev)}." if dev.bandwidth else ""
    out.append(Section(title="Top ops", lines=[ROOFLINE_NOTE + ceiling],
                       headers=["op", "category", "calls/step", "ms/step", "TFLOP/s", "MB/step", "TB/s", "FLOP/byte",
                        "of roofline"], chart="roofline", rows=[op_cells(op) for op in report.top_ops]))
    if report.stragglers:
        out.append(Section(title="Stragglers", headers=["rank", "excess ms", "category"], rows=[
            [str(s.rank), f"{s.excess_ms:.2f}", s.category] for s in report.stragglers]))
    if warnings := unsaid_warnings(report):
        out.append(Section(title="Warnings", lines=warnings))
    return out


ROOFLINE_NOTE = ("Each op's roofline time is max(FLOPs / P_run, bytes / memory bandwidth), bytes being each input "
                 "read once and each output written once; 'of roofline' is that time over the time it took "
                 "(m: memory-bound, c: compute-bound, >: faster than the memory ceiling, its data in cache).")


def op_cells(op: TopOp) -> list[str]:
    roof = op.roofline
    return [op.name, op.category, f"{op.count:.1f}", f"{op.ms:.3f}",
            f"{op.tflops_per_s:.3f}" if op.tflops_per_s else "",
            f"{op.bytes / 1e6:.1f}" if op.bytes else "",
            f"{roof.achieved_tb_s:.3f}" if roof else "", f"{roof.intensity:.1f}" if roof else "",
            roofline_share(roof) if roof else ""]


def markdown(report: Report) -> str:
    parts = ["# MFU report", ""]
    for s in sections(report):
        listed = s.title in ("Trace health", "Summary", "Warnings")
        parts += [f"## {s.title}", ""] + [f"- {line}" if listed else line + "  " for line in s.lines]
        if s.rows:
            parts += ["", "| " + " | ".join(s.headers) + " |", "|" + "---|" * len(s.headers)]
            parts += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in s.rows]
        parts.append("")
    return "\n".join(parts)


def svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def html_page(report: Report) -> str:
    """One self-contained page: no scripts, no external files; the charts are inline SVG."""
    import matplotlib.pyplot as plt

    from profiler.report import charts

    figures = charts.figures(report)
    try:
        drawn = {name: svg(fig) for name, fig in figures.items()}
    finally:
        for fig in figures.values():
            plt.close(fig)
    body = []
    for s in sections(report):
        body.append(f"<section><h2>{html.escape(s.title)}</h2>")
        body += [f"<p>{html.escape(line)}</p>" for line in s.lines]
        if s.chart in drawn:
            body.append(f'<figure class="chart" id="chart-{s.chart}">{drawn[s.chart]}</figure>')
        if s.rows:
            body.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in s.headers) + "</tr>")
            body += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in s.rows]
            body.append("</table>")
        body.append("</section>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>MFU report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #1a202c; }}
table {{ border-collapse: collapse; margin: 0.5rem 0; }}
td, th {{ border: 1px solid #cbd5e0; padding: 0.2rem 0.6rem; text-align: left; font-size: 0.9rem; }}
figure.chart svg {{ max-width: 100%; height: auto; }}
</style></head>
<body><h1>MFU report</h1>
{chr(10).join(body)}
</body></html>
"""


def write_reports(report: Report, json_path: Path | None, markdown_path: Path | None, html_path: Path | None):
    """The report as JSON, Markdown and HTML, each where a path is given, each written atomically."""
    for path, render in ((json_path, json_text), (markdown_path, markdown),
                         (html_path, html_page)):
        if path:
            write_atomic(path, render(report))
