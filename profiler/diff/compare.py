"""Two reports into a Diff: what changed between run A and run B, and whether it is beyond the noise.

Causes are compared in one unit: points of MFU where both sides have an MFU ledger on the same device and peak,
else points of the step time (an MFU ledger turns into one exactly: its points are shares of the step, and its
MFU with matmul_efficiency is the work itself, useful). Ops are matched by name and input shapes, kernels by
name; an op whose shapes changed is named as one.
"""

import json
import math
from dataclasses import dataclass

import msgspec
import numpy as np

from profiler.diff.noise import change_interval, method, resampled_means, run_factors
from profiler.diff.ops import op_changes, ops_behind
from profiler.diff.records import CauseChange, Change, Diff, SetupChange, Side
from profiler.report.model import Report, finite
from profiler.settings import DIFF_LEVEL, RUN_NOISE, TERA
from profiler.trace.classify import CATEGORIES

MFU, STEP_TIME = "mfu", "step_time"
PEAK_TOLERANCE = 0.01  # peaks within 1% are the same peak (a measured CPU peak varies by about that)


def diff_reports(a: Report, b: Report, run_noise: float | None = None) -> Diff:
    """B against A. `run_noise`: the relative standard deviation of a run's mean step that its own steps do not
    show (settings.RUN_NOISE by the device kind where not given), added to the step time's interval only: the
    causes' and the breakdown's intervals are their steps' alone."""
    if run_noise is None:
        run_noise = max(RUN_NOISE.get(r.device.kind, 0.0) for r in (a, b))
    notes = device_notes(a, b)
    unit = MFU if not notes and not a.time_ledger and not b.time_ledger and a.ledger and b.ledger else STEP_TIME
    if unit == STEP_TIME and a.ledger and b.ledger and a.time_ledger != b.time_ledger:
        which = "A" if not a.time_ledger else "B"
        notes.append(f"{which}'s ledger is in points of MFU, the other's in points of the step time: both are "
                     "compared in points of the step time (MFU with matmul_efficiency as useful)")
    columns = ["step", *CATEGORIES, *causes_of(a, b, unit)]
    sa, sb = (samples(r, columns, unit, seed, run_noise) for r, seed in ((a, 0), (b, 1)))
    if sa.resampled is None or sb.resampled is None:
        notes.append("a side has fewer than two analysed steps with per-step figures: no interval can be formed, "
                     "and no verdict")
    step = change(0, sa, sb, ("slower", "faster"))
    breakdown = {c: change(k, sa, sb) for k, c in enumerate(columns) if c in CATEGORIES}
    ops, cut = op_changes(a.ops, b.ops) if a.ops and b.ops else ([], 0)
    kernels, kernels_cut = op_changes(a.kernels, b.kernels) if a.kernels and b.kernels else ([], 0)
    if bool(a.ops) != bool(b.ops):
        notes.append(f"{'A' if not a.ops else 'B'}'s report has no table of ops by name and shapes (saved before "
                     "it had one): no ops are compared")
    if cut or kernels_cut:
        notes.append(f"{cut + kernels_cut} ops are in one side's table only because the other's keeps its longest "
                     "ones: left out")
    moved = sorted(((c, change(k, sa, sb)) for k, c in enumerate(columns) if k > len(CATEGORIES)),
                   key=lambda cp: -abs(cp[1].change))
    causes = [CauseChange(cause=c, points=p, **behind) for (c, p), behind in zip(moved, ops_behind(moved, a, b, ops))]
    return Diff(a=side(a), b=side(b), level=DIFF_LEVEL, conventions=[method(run_noise)], run_noise=run_noise, unit=unit,
                notes=notes, verdict=step.verdict, step_time=step, mfu=mfu_change(a, b) if unit == MFU else None,
                causes=causes, breakdown=breakdown, ops=ops, kernels=kernels, setup=setup_changes(a, b))


@dataclass(frozen=True)
class Samples:
    """One side's figures by column (the step, the categories, the causes): the report's own, the mean of its
    steps, and the means of the resampled steps (None under two steps; NaN columns where steps have none)."""

    headline: list[float]
    mean: np.ndarray | None
    resampled: np.ndarray | None


def samples(r: Report, columns: list[str], unit: str, seed: int, run_noise: float) -> Samples:
    values = step_columns(r, columns, unit)
    if values is None:
        return Samples(headline(r, columns, unit), None, None)
    resampled = resampled_means(values, seed)
    if resampled is not None:
        resampled[:, 0] *= run_factors(run_noise, seed + 2)  # the step time's run-to-run noise
    return Samples(headline(r, columns, unit), values.mean(axis=0), resampled)


def change(k: int, a: Samples, b: Samples, verdicts: tuple[str, str] = ("higher", "lower")) -> Change:
    """Column k's change from A to B, with its interval and verdict where both sides have resampled steps."""
    fa, fb = a.headline[k], b.headline[k]
    delta, pct = fb - fa, 100 * (fb / fa - 1) if fa else None
    if (a.mean is None or b.mean is None or a.resampled is None or b.resampled is None
            or not np.isfinite([a.mean[k], b.mean[k]]).all()):  # NaN: the steps have no figure of their own
        return Change(a=fa, b=fb, change=delta, change_pct=pct)
    ra, rb, ma, mb = a.resampled[:, k], b.resampled[:, k], a.mean[k], b.mean[k]
    interval = change_interval(delta, ra, rb, ma, mb)
    interval_pct = [100 * x for x in change_interval(fb / fa - 1, ra, rb, ma, mb, relative=True)] if fa and ma else None
    verdict = verdicts[0] if interval[0] > 0 else verdicts[1] if interval[1] < 0 else "no change"
    return Change(a=fa, b=fb, change=delta, change_pct=pct, interval=interval, interval_pct=interval_pct,
                  verdict=verdict)


def regressed(d: Diff, pct: float) -> bool:
    """The gate: B's step is slower than A's beyond the noise, and by more than `pct` percent."""
    return d.verdict == "slower" and d.step_time.change_pct is not None and d.step_time.change_pct > pct


def diff_json(d: Diff) -> str:
    """The diff's JSON file: indented, every non-finite figure null."""
    return json.dumps(finite(msgspec.to_builtins(d))[0], indent=1, allow_nan=False)


def device_notes(a: Report, b: Report) -> list[str]:
    """What the reader must know before any MFU point: the two runs ran on different devices, or peaks."""
    da, db = a.device, b.device
    if (da.name, da.kind) != (db.name, db.kind):
        return [f"the devices differ ({da.name or da.kind} against {db.name or db.kind}): compared by step time and "
                "the ledger in points of the step time, not MFU points at different peaks"]
    if not same(da.peak_flops, db.peak_flops) or not same(da.peak_flops_run, db.peak_flops_run):
        return [f"the peak differs ({tflops(da.peak_flops)} against {tflops(db.peak_flops)} TFLOP/s): compared by "
                "step time and the ledger in points of the step time, not MFU points at different peaks"]
    return []


def same(x: float | None, y: float | None) -> bool:
    if x is None or y is None:
        return x is None and y is None
    return abs(x - y) <= PEAK_TOLERANCE * max(abs(x), abs(y))


def tflops(x: float | None) -> str:
    return "no peak" if x is None else f"{x / TERA:,.3g}"


def causes_of(a: Report, b: Report, unit: str) -> list[str]:
    """The causes of either ledger in the unit, in the ledger's order."""
    return list(dict.fromkeys([*cause_points(a, unit), *cause_points(b, unit)]))


def cause_points(r: Report, unit: str) -> dict[str, float]:
    return in_unit({e.cause: e.points for e in r.ledger}, unit, r.time_ledger)


def in_unit(points: dict[str, float], unit: str, time_ledger: bool) -> dict[str, float]:
    """A ledger's points in the unit: an MFU ledger in points of the step time keeps every cause but
    matmul_efficiency, which with the MFU itself is the work (useful: 100 − the others)."""
    if unit == MFU or time_ledger or not points:
        return dict(points)
    out = {c: p for c, p in points.items() if c != "matmul_efficiency"}
    return {**out, "useful": 100 - sum(out.values())}


def headline(r: Report, columns: list[str], unit: str) -> list[float]:
    """The report's own figures for the columns: mean step, breakdown ms, the ledger's points (0 where absent,
    and a category a report saved before it has none of)."""
    points = cause_points(r, unit)
    return [r.step_time_ms.mean, *(r.breakdown[c].ms if c in r.breakdown else 0.0 for c in CATEGORIES),
            *(points.get(c, 0.0) for c in columns[1 + len(CATEGORIES):])]


def step_columns(r: Report, columns: list[str], unit: str) -> np.ndarray | None:
    """Steps × columns of the report's per-step figures; None without them. The causes' columns are NaN where
    the steps have no ledger of their own (a report saved before per-step ledgers, or none): no interval."""
    rows = r.per_step
    if not rows:
        return None
    causes = columns[1 + len(CATEGORIES):]
    have = all(s.ledger for s in rows)
    out = []
    for s in rows:
        points = in_unit(s.ledger, unit, r.time_ledger) if have else {}
        out.append([s.ms, *(getattr(s, c) for c in CATEGORIES), *(points.get(c, 0.0 if have else math.nan)
                                                                     for c in causes)])
    return np.array(out, dtype=float)


def mfu_change(a: Report, b: Report) -> Change | None:
    """MFU in %, where both sides have one at the same peak; no interval of its own (its complement is the sum of
    the causes, each with its interval)."""
    ma, mb = a.ledger_mfu, b.ledger_mfu
    if ma is None or mb is None:
        return None
    return Change(a=100 * ma, b=100 * mb, change=100 * (mb - ma), change_pct=100 * (mb / ma - 1) if ma else None)


def side(r: Report) -> Side:
    steps = [s.step for s in r.per_step]
    cycles = 1 + sum(1 for x, y in zip(steps, steps[1:]) if y != x + 1) if steps else 0
    return Side(paths=r.source.paths, samples=len(steps), ranks=len(r.source.ranks), cycles=cycles)


def setup_changes(a: Report, b: Report) -> list[SetupChange]:
    """The set-up keys whose values differ: the device and its peak, the run's dtype, torch, the world size and
    every configuration key either run states."""
    def keys(r: Report) -> dict:
        d = r.device
        return {"device": f"{d.name} ({d.kind})" if d.name else d.kind, "dtype": d.dtype, "peak_flops": d.peak_flops,
                "peak_flops_run": d.peak_flops_run, "torch_version": r.source.torch_version,
                "world_size": r.source.world_size or len(r.source.ranks), **r.source.config}
    ka, kb = keys(a), keys(b)
    out = []
    for k in dict.fromkeys([*ka, *kb]):
        x, y = ka.get(k), kb.get(k)
        if isinstance(x, float) and isinstance(y, float) and math.isclose(x, y, rel_tol=PEAK_TOLERANCE):
            continue
        if x != y:
            out.append(SetupChange(key=k, a=x, b=y))
    return out
