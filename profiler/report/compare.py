"""Two reports side by side, with deltas: what a fix changed."""

from profiler.mfu.ledger import CAUSES
from profiler.report.model import Report
from profiler.report.reading import shorten
from profiler.trace.classify import CATEGORIES

TOP = 10


def groups(before: Report, after: Report) -> list[tuple[str, list[tuple[str, float | None, float | None, str]]]]:
    """(heading, [(label, before, after, unit)]) for every figure the two reports share."""
    def pct(x: float | None) -> float | None:
        return 100 * x if x is not None else None

    out = [("", [("step time", before.step_time_ms.mean, after.step_time_ms.mean, "ms"),
                 ("MFU analytic", pct(before.mfu.analytic), pct(after.mfu.analytic), "%"),
                 ("MFU counted", pct(before.mfu.counted), pct(after.mfu.counted), "%")])]
    out.append(("breakdown (ms/step)", [(c, before.breakdown[c].ms, after.breakdown[c].ms, "ms")
                                        for c in CATEGORIES]))
    points = [{e.cause: e.points for e in r.ledger} for r in (before, after)]
    if all(points):
        causes = [c for c in (*CAUSES, "useful") if c in points[0] or c in points[1]]
        out.append(("ledger (points)", [(c, points[0].get(c, 0.0), points[1].get(c, 0.0), "pt") for c in causes]))
    ops = [{op.name: op.ms for op in r.top_ops} for r in (before, after)]
    names = sorted(set(ops[0]) | set(ops[1]), key=lambda n: -max(ops[0].get(n, 0), ops[1].get(n, 0)))[:TOP]
    out.append(("top ops (ms/step)", [(n, ops[0].get(n), ops[1].get(n), "ms") for n in names]))
    return out


def comparison(before: Report, after: Report) -> str:
    """The comparison as text for an 80-column terminal."""
    fmt = lambda x: "" if x is None else f"{x:.2f}"  # noqa: E731
    lines = [f"before: {', '.join(before.source.paths)}", f"after:  {', '.join(after.source.paths)}",
             "", f"{'':<40}{'before':>11}{'after':>11}{'delta':>11}"]
    for heading, rows in groups(before, after):
        lines += [heading] if heading else []
        for label, a, b, unit in rows:
            name = shorten(("  " if heading else "") + label, 39)
            delta = f"{b - a:+.2f} {unit}" if a is not None and b is not None else ""
            lines.append(f"{name:<40}{fmt(a):>11}{fmt(b):>11}{delta:>14}")
    return "\n".join(lines)
