"""The ops of two reports matched: by name and input shapes (kernels by name), new, removed or reshaped, and the
ops behind each cause."""

from profiler.diagnosis.causes import CATEGORIES_OF
from profiler.diff.records import Change, OpChange
from profiler.report.model import OpShape, Report
from profiler.settings import OPS_IN_REPORT

OPS_PER_CAUSE = 3
MOVED_MS = 0.005  # an op whose time per step moved less than this (it rounds to 0.00 ms) did not move


def op_changes(a_ops: list[OpShape], b_ops: list[OpShape]) -> tuple[list[OpChange], int]:
    """Every op whose time, calls or shapes differ, by the size of its change; and how many were left out because
    they are missing from a side whose table was cut at OPS_IN_REPORT (below its shortest row: unknown there).

    An op name whose shapes are only in A and only in B is reshaped: the longest of A's such shapes against the
    longest of B's, and so on; the rest are removed or new."""
    ka, kb = {(o.name, o.shapes): o for o in a_ops}, {(o.name, o.shapes): o for o in b_ops}
    cut_a, cut_b = len(a_ops) >= OPS_IN_REPORT, len(b_ops) >= OPS_IN_REPORT
    out = [changed(ka[k], kb[k], "changed") for k in ka if k in kb]
    out = [c for c in out if abs(c.change_ms) >= MOVED_MS or c.calls_a != c.calls_b]
    left_out = 0
    for name in dict.fromkeys(o.name for o in [*a_ops, *b_ops]):
        gone = sorted((o for k, o in ka.items() if k[0] == name and k not in kb), key=lambda o: -o.ms)
        came = sorted((o for k, o in kb.items() if k[0] == name and k not in ka), key=lambda o: -o.ms)
        pairs = min(len(gone), len(came))
        out += [changed(x, y, "reshaped") for x, y in zip(gone, came)]
        left_out += cut_b * len(gone[pairs:]) + cut_a * len(came[pairs:])
        out += [changed(x, None, "removed") for x in gone[pairs:] if not cut_b]
        out += [changed(None, y, "new") for y in came[pairs:] if not cut_a]
    return sorted(out, key=lambda c: -abs(c.change_ms)), left_out


def changed(x: OpShape | None, y: OpShape | None, status: str) -> OpChange:
    """One op's row: A's figures from x, B's from y (0 on the side it is missing from)."""
    some = y or x
    assert some is not None
    return OpChange(name=some.name, shapes=some.shapes, status=status, category=some.category,
                    ms_a=x.ms if x else 0.0, ms_b=y.ms if y else 0.0, calls_a=x.count if x else 0.0,
                    calls_b=y.count if y else 0.0, tflops_a=x.tflops_per_s if x else None,
                    tflops_b=y.tflops_per_s if y else None,
                    shapes_a=x.shapes if status == "reshaped" and x else None)


def ops_behind(causes: list[tuple[str, Change]], a: Report, b: Report, ops: list[OpChange]) -> list[dict]:
    """For each cause (largest change first): the breakdown categories it is charged from, each [A, B] ms per
    step, and the ops of those categories that moved most the same way (an op's category is the one most of its
    time fell in). Each op is named under the first cause that moved beyond the noise and claims its category; a
    cause with no change beyond the noise names none."""
    claimed: set[int] = set()
    out = []
    for cause, points in causes:
        categories = CATEGORIES_OF.get(cause, ())
        free = [j for j, o in enumerate(ops) if j not in claimed and o.category in categories
                and abs(o.change_ms) >= MOVED_MS and (o.change_ms > 0) == (points.change > 0)]
        mine = [] if points.verdict == "no change" else free[:OPS_PER_CAUSE]
        claimed.update(mine)
        out.append({"categories": {c: [a.breakdown[c].ms, b.breakdown[c].ms] for c in categories},
                    "ops": [ops[j] for j in mine]})
    return out
