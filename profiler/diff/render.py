"""A Diff as text: for the terminal, and as Markdown for a pull-request comment (under 60 lines, the full tables
in a collapsed block). Computes nothing: every figure is the Diff's."""

import os
import textwrap

from profiler.diff.records import Change, Diff, OpChange
from profiler.report.reading import shorten

TOP_CAUSES, TOP_OPS, FULL_OPS = 5, 8, 16
NAME_CHARS = 90  # a kernel's template arguments cut
MARKDOWN_LINES = 59  # a pull-request comment stays under 60 lines
UNIT = {"mfu": "points of MFU", "step_time": "points of the step time"}


def interval_text(c: Change, pct: bool = False, unit: str = "") -> str:
    """'[+1.23, +3.45]' of the change ('[+1.2, +3.4]%' in percent), or 'no interval'."""
    low_high, digits = (c.interval_pct, 1) if pct else (c.interval, 2)
    return f"[{low_high[0]:+.{digits}f}, {low_high[1]:+.{digits}f}]{unit}" if low_high else "no interval"


def headline(d: Diff) -> str:
    s = d.step_time
    change = f"{s.change_pct:+.1f}%" if s.change_pct is not None else f"{s.change:+.2f} ms"
    words = {"slower": "B is slower", "faster": "B is faster", "no change": "no change beyond the noise",
             "no interval": "no verdict (no interval)"}[d.verdict]
    return (f"{words}: step {s.a:.2f} → {s.b:.2f} ms, {change} {interval_text(s, True, '%')} at "
            f"{100 * d.level:.0f}%")


def op_name(o: OpChange) -> str:
    name = shorten(o.name, NAME_CHARS)
    if o.status == "reshaped":
        return f"{name} {o.shapes_a} → {o.shapes}"
    return f"{name} {o.shapes}".strip()


def rate(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def op_line(o: OpChange) -> str:
    status = "" if o.status == "changed" else f" ({o.status})"
    calls = f", calls {o.calls_a:g} → {o.calls_b:g}" if o.calls_a != o.calls_b else ""
    rates = (f", {rate(o.tflops_a)} → {rate(o.tflops_b)} TFLOP/s"
             if o.tflops_a is not None or o.tflops_b is not None else "")
    return f"{op_name(o)}{status}: {o.ms_a:.2f} → {o.ms_b:.2f} ms ({o.change_ms:+.2f}){calls}{rates}"


def where(paths: list[str]) -> str:
    """A side's file, or the folder its files share."""
    if len(paths) == 1:
        return paths[0]
    return (os.path.commonprefix(paths).rpartition("/")[0] or ".") + "/"  # as strings: a URL's // stays


def set_up(d: Diff) -> list[str]:
    return [f"{s.key} {s.a} → {s.b}" for s in d.setup]


def moved_ops(d: Diff) -> list[OpChange]:
    """The ops to show: the largest movers, and every new, removed or reshaped op among the longest."""
    return d.ops[:TOP_OPS] + [o for o in d.ops[TOP_OPS:FULL_OPS] if o.status != "changed"]


def diff_summary(d: Diff) -> str:
    """The diff in a line (tune's kept and rejected steps): the step time with its interval, and the cause that
    moved most with its own category and the op behind it that moved most."""
    s = d.step_time
    step = (f"step {s.change_pct:+.1f}% {interval_text(s, True, '%')}" if s.change_pct is not None
            else f"step {s.change:+.2f} ms")
    if not d.causes:
        return step
    c = d.causes[0]
    parts = [f"{c.cause} {c.points.change:+.1f} points ({c.points.verdict})"]
    parts += [f"{k} {ab[0]:.2f} → {ab[1]:.2f} ms" for k, ab in list(c.categories.items())[:1]]
    parts += [f"{op_name(o)} {o.ms_a:.2f} → {o.ms_b:.2f} ms" for o in c.ops[:1]]
    return f"{step}, " + ", ".join(parts)


def diff_text(d: Diff) -> str:
    """The diff for an 80-column terminal."""
    lines = [f"{name}: {where(s.paths)} ({f'{len(s.paths)} files, ' if len(s.paths) > 1 else ''}{s.samples} steps, "
             f"{s.cycles} cycle(s), {s.ranks} rank(s))" for name, s in (("A", d.a), ("B", d.b))] + [""]
    lines += [line for n in d.notes for line in textwrap.wrap(f"note: {n}", 80, subsequent_indent="  ")]
    lines.append(headline(d))
    if d.mfu:
        lines.append(f"MFU {d.mfu.a:.2f}% → {d.mfu.b:.2f}% ({d.mfu.change:+.2f} points)")
    if d.setup:
        lines += ["", "set-up: " + "; ".join(set_up(d))]
    lines += ["", f"causes ({UNIT[d.unit]}), largest change first:"]
    for c in d.causes[:TOP_CAUSES]:
        p = c.points
        lines.append(f"  {c.cause:<18}{p.a:>7.2f} → {p.b:>6.2f}  {p.change:+6.2f} {interval_text(p):<16} {p.verdict}")
        own = list(c.categories.items())[:1]  # the cause's own category; it takes overheads from the others
        lines += [f"      {k} {ab[0]:.2f} → {ab[1]:.2f} ms" for k, ab in own
                  if abs(ab[1] - ab[0]) >= 0.005 and p.verdict != "no change"]
        lines += [f"      {op_line(o)}" for o in c.ops if p.verdict != "no change"]
    lines += ["", "ops that moved most (ms per step):"] + [f"  {op_line(o)}" for o in moved_ops(d)]
    if d.kernels:
        lines += ["", "kernels that moved most (ms per step):"] + [f"  {op_line(o)}" for o in d.kernels[:TOP_OPS]]
    lines += [""] + [line for c in d.conventions for line in textwrap.wrap(c, 80, subsequent_indent="  ")]
    return "\n".join(lines)


def row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def figures(c: Change) -> tuple[str, ...]:
    return f"{c.a:.2f}", f"{c.b:.2f}", f"{c.change:+.2f}", interval_text(c)


def diff_markdown(d: Diff) -> str:
    """The diff as a pull-request comment: the verdict, set-up, causes and ops that moved, then the full tables
    collapsed; under 60 lines."""
    lines = [f"### MFU diff: {headline(d)}", ""]
    lines += [f"> {n}" for n in d.notes] + ([""] if d.notes else [])
    if d.mfu:
        lines += [f"MFU {d.mfu.a:.2f}% → {d.mfu.b:.2f}% ({d.mfu.change:+.2f} points)", ""]
    if d.setup:
        lines += ["Set-up: " + "; ".join(f"`{s}`" for s in set_up(d)), ""]
    lines += [row(f"cause ({UNIT[d.unit]})", "A", "B", "change", f"{100 * d.level:.0f}% interval", ""),
              "|---|--:|--:|--:|---|---|"]
    lines += [row(c.cause, *figures(c.points), c.points.verdict) for c in d.causes[:TOP_CAUSES]]
    shown = moved_ops(d)[:TOP_OPS]
    if shown:
        lines += ["", "Ops that moved most (ms per step):", ""] + [f"- `{op_line(o)}`" for o in shown]
    lines += ["", "<details><summary>All causes, the breakdown and more ops</summary>", ""]
    lines += [row("figure", "A", "B", "change", "interval"), "|---|--:|--:|--:|---|"]
    lines += [row(c.cause, *figures(c.points)) for c in d.causes[TOP_CAUSES:]]
    lines += [row(f"{k} (ms)", *figures(c)) for k, c in d.breakdown.items()]
    tail = ["", *(f"{c}." for c in d.conventions), "</details>"]
    room = MARKDOWN_LINES - len(lines) - len(tail) - 1  # the more ops, as many as fit
    lines += [""] + [f"- `{op_line(o)}`" for o in d.ops[TOP_OPS:FULL_OPS]][:max(room, 0)] + tail
    return "\n".join(lines)
