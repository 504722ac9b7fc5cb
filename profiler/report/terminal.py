"""The report as text for a terminal: plain lines that fit 80 columns, from the saved report and nothing else."""

import textwrap

from profiler.diagnosis.causes import CATEGORIES_OF, what
from profiler.report.model import Bottleneck, Communication, FlopsPerStep, Report
from profiler.report.reading import (
    ceilings,
    change_in_form,
    fmt_flops,
    ledger_bottom,
    ledger_unit,
    losses,
    memory_lines,
    pct,
    roofline_share,
    shorten,
    shown_categories,
    unsaid_warnings,
    what_if,
)


def flop_account(flops: FlopsPerStep) -> str:
    """The counted FLOPs by where they ran, in one line."""
    parts = [("forward", flops.forward), ("backward", flops.backward), ("recomputed in the backward", flops.recomputed),
             ("optimizer", flops.outside)]
    return ", ".join(f"{name} {fmt_flops(value)}FLOP" for name, value in parts if value)


def summary(report: Report, verbose: bool = True) -> str:
    """Everything the report holds (-v), or what fits one screen: the headline, the breakdown, the communication,
    the ledger, each cause in a line, each warning in a line."""
    if not verbose:
        return "\n".join(one_screen(report))
    lines = header_lines(report) + breakdown_lines(report) + communication_lines(report.communication)
    memory = memory_lines(report.memory)
    if memory:
        lines += [""] + [line for text in memory for line in wrap(text, "  ")]
    lines += top_ops_lines(report) + ledger_lines(report) + bottleneck_lines(report)
    if warnings := unsaid_warnings(report):
        lines += [""] + [line for w in warnings for line in wrap(f"warning: {w}", "  ")]
    return "\n".join(lines)


def header_lines(report: Report, verbose: bool = True) -> list[str]:
    """Where the figures come from, the device and its peak, the steps, MFU and HFU."""
    dev, mfu, steps = report.device, report.mfu, report.step_time_ms
    lines = [source_line(report.source.paths)] + health_lines(report, verbose)
    ranks = len(report.source.ranks)
    over = f", mean over {ranks} ranks" if report.job_aggregation else ""
    peak = (f"; peak {fmt_flops(dev.peak_flops)}FLOP/s ({dev.peak_source}), {fmt_flops(dev.peak_flops_run)}FLOP/s "
            f"in {dev.dtype or 'float32 (assumed)'}" if dev.peak_flops else "")
    if verbose:
        lines.append(f"device: {dev.name or dev.kind} ({dev.kind}), matmul dtype {dev.dtype or 'unknown'}")
        if dev.peak_flops:
            lines.append(f"peak: {fmt_flops(dev.peak_flops)}FLOP/s ({dev.peak_source}); "
                         f"{fmt_flops(dev.peak_flops_run)}FLOP/s in {dev.dtype or 'float32 (assumed)'}")
        if dev.peak_note:
            lines += wrap(f"  {dev.peak_note}", "    ")
    else:
        lines += wrap(f"device: {dev.name or dev.kind} ({dev.kind}){peak}", "  ")
    cv = f", CV {100 * steps.cv:.0f}%" if steps.cv is not None and len(report.source.steps) > 1 else ""
    lines.append(f"steps: {len(report.source.steps)} analysed, {steps.mean:.2f} ms mean "
                 f"({steps.min:.2f} - {steps.max:.2f}{cv}{over})")
    cost = report.profiler_cost
    if cost and cost.ms_per_step and verbose:
        lines += wrap(f"  {steps.mean - cost.ms_per_step:.2f} ms without the profiler's own recording cost "
                      f"({cost.ms_per_step:.2f} ms/step): the step that MFU and the ledger describe", "    ")
    flops = mfu.flops_per_step
    analytic = (f"{pct(mfu.analytic)} analytic ({fmt_flops(flops.analytic)}FLOP/step)" if flops.analytic
                else "analytic n/a (model unknown)")
    lines += wrap(f"MFU: {analytic}; HFU {pct(mfu.counted)} (every counted FLOP, {fmt_flops(flops.counted)}FLOP/step)",
                  "  ")
    if flops.forward is not None and flops.counted and (verbose or flops.recomputed):
        lines += wrap(f"  counted: {flop_account(flops)}", "    ")
    if mfu.analytic_from not in (None, "run metadata") and verbose:
        lines += wrap(f"  analytic FLOPs from {mfu.analytic_from}", "    ")
    elif mfu.analytic_from not in (None, "run metadata"):
        lines.append(shorten(f"  F from {mfu.analytic_from}", 80))
    if not verbose:
        return lines
    for c in report.conventions:
        lines += wrap(f"  convention: {c}", "    ")
    if report.device_utilization:
        u = report.device_utilization
        lines.append(f"device busy: {pct(u.busy_fraction)} of {u.window_ms:.1f} ms (first to last device event"
                     f"{over})")
    if over:
        lines += wrap(f"job figures are means over the {ranks} ranks (how each is formed: job_aggregation in the "
                      "JSON; each rank's own: per_rank)", "  ")
    return lines


def health_lines(report: Report, verbose: bool) -> list[str]:
    """What the trace lacks and lost, before any number: one screen names each lack with the argument that
    records it and gives each loss a line; -v says what each costs and each loss in full."""
    h = report.health
    if h is None:
        return []
    if verbose:
        said = [f"no {lack.what}: {lack.costs} (record with {lack.record_with})" for lack in h.lacks]
        return [line for text in said + h.lost for line in wrap(f"trace health: {text}", "  ")]
    lines = wrap("trace lacks: " + ", ".join(f"{lack.what} ({lack.record_with})" for lack in h.lacks), "  ") \
        if h.lacks else []
    return lines + [shorten(f"trace lost: {text}", 80) for text in h.lost]


def breakdown_lines(report: Report) -> list[str]:
    lines = ["", f"{'breakdown':<16}{'ms/step':>10}{'share':>9}  "]
    for c in shown_categories(report.breakdown):
        b = report.breakdown[c]
        lines.append(f"{c:<16}{b.ms:>10.2f}{100 * b.fraction:>8.2f}%  {'#' * round(40 * b.fraction)}")
    if report.classification_ms:
        k = report.classification_ms
        lines.append(f"kernel time by launching op {k.by_op:.2f}, by name {k.by_name:.2f}, "
                     f"unclassified {k.unclassified:.2f} ms/step")
    return lines


def top_ops_lines(report: Report, ops=None, title: str = "top ops") -> list[str]:
    ops = report.top_ops[:10] if ops is None else ops
    lines = ["", f"{title:<30}{'category':<14}{'calls':>6}{'ms/step':>8}{'TFLOP/s':>8}{'TB/s':>7}{'roof':>7}"]
    for op in ops:
        tf = f"{op.tflops_per_s:.2f}" if op.tflops_per_s else ""
        roof = op.roofline
        tb, of = (f"{roof.achieved_tb_s:.3f}", f"{roofline_share(roof)}") if roof else ("", "")
        lines.append(f"{shorten(op.name, 29):<30}{op.category:<14}{op.count:>6.0f}{op.ms:>8.2f}{tf:>8}"
                     f"{tb:>7}{of:>7}")
    if any(op.roofline for op in ops):
        lines += wrap(f"  roof: share of the op's roofline time, m memory-bound, c compute-bound "
                      f"({ceilings(report.device)})", "    ")
    return lines


ONE_SCREEN = 60  # lines: what `analyze`, `diff` and our runs print by default


def one_screen(report: Report) -> list[str]:
    """At most ONE_SCREEN lines: the warnings that do not fit are counted, and -v shows them."""
    lines = header_lines(report, verbose=False) + breakdown_lines(report) + communication_lines(report.communication)
    lines += ledger_lines(report)
    if report.bottlenecks:
        lines += ["", "Diagnosis (-v for the evidence, --explain CAUSE for one cause):"]
        for i, b in enumerate(report.bottlenecks, 1):  # the cause, and its fix (the change to try where known)
            fix = "try: " + change_in_form(b.fix_config, b.fix_form or None) if b.fix_config else b.fix.split("; ")[0]
            lines += [shorten(f"{i}. {b.cause}: {b.points:.1f} points, {b.ms:.2f} ms/step: "
                              f"{what(b.cause)}", 80), shorten(f"   {fix}", 80)]
    room = ONE_SCREEN - len(lines) - 2
    if warnings := unsaid_warnings(report):
        shown = warnings[:room] if len(warnings) <= room else warnings[:room - 1]
        lines += [""] + [shorten(f"warning: {w}", 80) for w in shown]
        if len(shown) < len(warnings):
            lines.append(f"... {len(warnings) - len(shown)} more warnings: -v")
    return lines


def explain(report: Report, cause: str) -> str:
    """One cause in full: its figures, evidence, fix, facts and the longest ops of its categories."""
    b = next(b for b in report.bottlenecks if b.cause == cause)  # the CLI checks that it is there
    lines = wrap(headline(report, b), "  ")
    lines += wrap(f"what: {what(b.cause)}", "  ") + wrap(f"evidence: {b.evidence}", "  ")
    lines += wrap(f"fix: {b.fix}", "  ")
    if b.fix_config:
        lines.append("try: " + change_in_form(b.fix_config, b.fix_form or None))
    lines += ["facts:"] + [line for k, v in b.facts.items() for line in wrap(f"  {k} = {v}", "      ")]
    ops = [op for op in report.top_ops if op.category in CATEGORIES_OF.get(cause, ())[:1]]
    return "\n".join(lines + (top_ops_lines(report, ops[:10], "its ops") if ops else []))


def communication_lines(comm: Communication | None) -> list[str]:
    """The parallelism named and the collectives by phase and kind, where the trace communicated."""
    if comm is None or not comm.collectives:
        return []
    over = f"{comm.group_size} ranks" + (f", {comm.backend}" if comm.backend else "") + (
        f"; link {comm.link}" if comm.link else "")
    lines = ["", *wrap(f"communication ({', '.join(comm.parallelism) or 'no parallelism library named'}; {over}):",
                       "  "),
             f"  {'phase':<10}{'collective':<16}{'calls':>6}{'MB':>8}{'ms':>8}{'exposed':>9}{'bus GB/s':>10}"]
    for r in comm.collectives[:6]:
        bus = f"{r.bus_gb_per_s:.2f}" if r.bus_gb_per_s else ""
        lines.append(f"  {r.phase:<10}{r.kind:<16}{r.calls:>6.0f}{r.mb:>8.2f}{r.ms:>8.2f}{r.exposed_ms:>9.2f}{bus:>10}")
    return lines


def source_line(paths: list[str]) -> str:
    """'trace: PATH', or 'traces: 3 files in FOLDER' where they share one."""
    if len(paths) == 1:
        return f"trace: {paths[0]}"
    folders = {p.rsplit("/", 1)[0] for p in paths}
    if len(folders) == 1:
        return f"traces: {len(paths)} files in {folders.pop()}"
    return f"traces: {len(paths)} files: " + ", ".join(paths)


def wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, 80, subsequent_indent=indent, break_on_hyphens=False, break_long_words=False)


def ledger_lines(report: Report) -> list[str]:
    """The ledger as a waterfall from 100 (peak, or the step) down to the MFU (or the useful work), largest
    loss first."""
    if not report.ledger:
        return []
    u = ledger_unit(report)
    lines = ["", f"{u['title']}: {u['unit']}", f"{'':>2}{100:>8.2f}  {u['top']}"]
    level = 100.0
    for e in losses(report):
        start, level = level, level - e.points
        lo, hi = sorted((round(level / 2.5), round(start / 2.5)))
        bar = " " * lo + ("#" if e.points >= 0 else "-") * max(hi - lo, 1)
        lines.append(f"{'-':>2}{e.points:>8.2f}  {e.cause:<18}|{bar}")
    lines.append(f"{'=':>2}{ledger_bottom(report):>8.2f}  {u['bottom']}")
    return lines


def interval(report: Report, cause: str) -> str:
    """' (37.1-43.0 over the steps)': a cause's points in its cheapest and dearest analysed step."""
    entry = next((e for e in report.ledger if e.cause == cause), None)
    if entry is None or not entry.interval or len(report.source.steps) <= 1:
        return ""
    low, high = entry.interval
    return f" ({low:.1f}-{high:.1f} over the steps)"


def headline(report: Report, b: Bottleneck) -> str:
    """'io: 33.4 points (29.0-36.9 over the steps), 59.26 ms/step; MFU 5.31% without it'."""
    return f"{b.cause}: {b.points:.1f} points{interval(report, b.cause)}, {b.ms:.2f} ms/step; {what_if(b)}"


def bottleneck_lines(report: Report) -> list[str]:
    lines = []
    for i, b in enumerate(report.bottlenecks, 1):
        lines += [""] + wrap(f"{i}. {headline(report, b)}", "   ")
        lines += wrap(f"   evidence: {b.evidence}", "     ") + wrap(f"   fix: {b.fix}", "     ")
        if b.fix_config:
            lines.append("   try: " + change_in_form(b.fix_config, b.fix_form or None))
    return ["", "Diagnosis (causes over 1 point, largest first):"] + lines if lines else lines


BOLD, RED, YELLOW, RESET = "\033[1m", "\033[31m", "\033[33m", "\033[0m"


def colorize(text: str) -> str:
    """ANSI colour for a terminal: headings and the MFU line bold, bottlenecks red, warnings yellow."""
    out = []
    for line in text.split("\n"):
        if line.startswith(("breakdown ", "top ops ", "MFU ledger", "Time ledger", "Diagnosis", "MFU: ")):
            line = f"{BOLD}{line}{RESET}"
        elif line[:1].isdigit() and ". " in line[:4]:
            line = f"{RED}{BOLD}{line}{RESET}"
        elif line.startswith("warning: "):
            line = f"{YELLOW}{line}{RESET}"
        out.append(line)
    return "\n".join(out)


def for_terminal(report: Report, stream, verbose: bool = False) -> str:
    """The summary (one screen, or everything with `verbose`), in colour only when `stream` is a terminal."""
    text = summary(report, verbose)
    return colorize(text) if stream.isatty() else text
