"""Attribution: one rank's merged analysis, the peak and F_model → a frozen, typed result.

The result holds what the report shows (Figures: step times, MFU, breakdown, ledger, top ops, ...) and what
it rests on: the per-step table, the overheads that the ledger moves between causes, the seconds per cause
and the evidence the diagnosis cites. Nothing downstream recomputes a number; each is made here once.
"""

from dataclasses import dataclass, field, fields, replace

import numpy as np

from profiler.analysis.breakdown import KernelClassification, Utilization
from profiler.analysis.per_file import OpStats, StepTable
from profiler.analysis.per_rank import RankAnalysis
from profiler.analysis.signals import Signals
from profiler.mfu.consistency import implausible_input
from profiler.mfu.inputs import ModelFlops
from profiler.mfu.ledger import CAUSES, Overheads, cause_seconds, ledger, without_profiler
from profiler.mfu.peak import Peak
from profiler.settings import FLOPS_GAP, UNCOUNTED_MATMUL_SHARE, WARMUP_RATIO, WIDE_STEP_CV
from profiler.trace import classify


@dataclass(frozen=True)
class StepTimes:
    mean: float  # ms
    min: float
    max: float
    cv: float = 0.0  # coefficient of variation (standard deviation over the mean) of the analysed steps


@dataclass(frozen=True)
class Share:
    ms: float  # per step
    fraction: float  # of the step time


@dataclass(frozen=True)
class ProfilerCost:
    """What recording the step cost, measured before the run: µs per recorded op × the ops recorded per step."""

    us_per_op: float
    ops_per_step: float
    ms_per_step: float  # taken out of the step time for MFU and the ledger (capped by small_batch + other)


@dataclass(frozen=True)
class Mfu:
    analytic: float | None  # F_model / (T · P)
    counted: float | None  # F_counted / (T · P)
    flops_analytic: float | None
    flops_counted: float
    analytic_from: str | None


@dataclass(frozen=True)
class OpRow:
    name: str
    category: str
    count: float  # per step
    ms: float  # per step
    flops: float  # per step
    tflops_per_s: float | None


@dataclass(frozen=True)
class Communication:
    total_ms: float  # collectives running, exposed or hidden, per step
    exposed_ms: float
    exposed_fraction: float | None
    calls_per_step: dict[str, float]
    bytes_per_step: float | None


@dataclass(frozen=True)
class StepRow:
    step: int
    ms: float
    categories: dict[str, float]  # ms of each breakdown category


@dataclass(frozen=True)
class LedgerEntry:
    cause: str
    points: float
    ms: float
    what_if_mfu: float
    low: float | None = None  # the cause's points in the analysed step where it cost least
    high: float | None = None  # ... and most


@dataclass(frozen=True)
class Bottleneck:
    cause: str
    points: float
    ms: float
    what_if_mfu: float
    evidence: str
    fix: str
    fix_config: dict | None = None  # our run's --key=value change that applies the fix


@dataclass(frozen=True)
class Figures:
    """What a report shows of a rank or of a job."""

    step_time_ms: StepTimes
    device_utilization: Utilization | None  # HTA's definition
    mfu: Mfu
    breakdown: dict[str, Share]  # by category, in classify.CATEGORIES order
    ledger: list[LedgerEntry]
    bottlenecks: list[Bottleneck]
    top_ops: list[OpRow]
    classification_ms: KernelClassification | None  # device time per step (ms) by how kernels were classified
    copied_bytes_per_step: float
    matmul_without_flops_ms: float
    communication: Communication | None
    per_step: list[StepRow]
    profiler_cost: ProfilerCost | None = None  # the recording cost taken out of MFU and the ledger (our runs)


@dataclass(frozen=True)
class Evidence:
    """The measurements the diagnosis cites (ms per step unless said)."""

    step_ms: float
    kind: str
    dtype: str | None
    meta: dict  # our run's metadata ({} for a foreign trace): the diagnosis speaks in its keys
    peak: float
    peak_run: float
    flops: float  # F_model, or F_counted standing in
    counted_flops: float
    breakdown: dict[str, Share]
    signals: Signals
    ops: list[OpRow]  # every op, largest first
    short_idle_ms: float
    optimizer_overhead_ms: float
    fixed_ms: float  # fixed per-op cost of compute and copy ops
    parameter_ms: float
    copied_bytes: float
    allocator_ms: float
    sync_ms: float
    python_ms: float
    other_ops_per_step: float  # elementwise / norm / softmax / optimizer ops
    step_ms_by_dtype: dict  # forward and backward of a micro-step per dtype, measured by our run ({} if not)
    profiler_ms: float = 0.0  # the profiler's own recording cost taken out of the step and small_batch
    fastest_dtype: str | None = None  # the dtype of P, where known


@dataclass(frozen=True)
class Attribution:
    rank: int
    figures: Figures
    steps: StepTable
    overheads: Overheads | None  # None when there is no ledger (no peak, no FLOPs, implausible inputs)
    seconds: dict[str, float]  # per cause, per step
    evidence: Evidence | None
    warnings: list[str] = field(default_factory=list)


def attribute(r: RankAnalysis, peak: Peak | None, f_model: ModelFlops, top: int) -> Attribution:
    warnings: list[str] = []
    t = r.table
    n = len(t)
    step_s = t.step_us.mean() / 1e6
    warnings += warmup_note(t)
    f_counted = float(t.flops.mean())
    model = f_model.per_step
    P = peak.peak_flops if peak else None
    if model and f_counted and abs(f_counted / model - 1) > FLOPS_GAP:
        warnings.append(flops_gap_note(model, f_counted))
    uncounted = sum(r.signals.uncounted_matmul_us.values())
    matmul_us = t.breakdown_us[classify.MATMUL].sum()
    if uncounted > UNCOUNTED_MATMUL_SHARE * matmul_us:
        per = max(r.signals.steps, 1) * 1000
        warnings.append(f"{uncounted / per:.2f} ms/step of matmul time ({100 * uncounted / matmul_us:.0f}% of it) ran "
                        "in ops whose FLOPs the trace does not let us count (no recorded shapes, or custom ops); "
                        "F_counted leaves it out; largest: " + ", ".join(
                            f"{name} {us / per:.2f} ms" for name, us in r.signals.uncounted_matmul_us.most_common(3)))
    total = t.breakdown_us.sum(axis=1)
    breakdown = {c: Share(float(total[k] / n / 1000), float(total[k] / t.step_us.sum()))
                 for k, c in enumerate(classify.CATEGORIES)}
    ops = op_rows(r.ops, n)
    figures = Figures(
        StepTimes(float(t.step_us.mean() / 1000), float(t.step_us.min() / 1000), float(t.step_us.max() / 1000),
                  float(t.step_us.std() / t.step_us.mean())),
        r.utilization,
        Mfu(model / (step_s * P) if model and P else None, f_counted / (step_s * P) if P and f_counted else None,
            float(model) if model else None, f_counted, f_model.source),
        breakdown, [], [], ops[:top],
        KernelClassification(*(getattr(r.classified_us, f.name) / n / 1000 for f in fields(KernelClassification)))
        if r.classified_us else None,
        float(t.copied_bytes.mean()), uncounted / max(r.signals.steps, 1) / 1000, communication(r, breakdown),
        [StepRow(int(i), float(us / 1000),
                 {c: float(t.breakdown_us[k, j] / 1000) for k, c in enumerate(classify.CATEGORIES)})
         for j, (i, us) in enumerate(zip(t.ids, t.step_us))])
    flops = model or f_counted
    without_ledger = Attribution(r.rank, figures, t, None, {}, None, warnings)
    if not (P and flops):
        warnings.append("no peak or no FLOPs: the MFU ledger and the diagnosis are left empty")
        return without_ledger
    problem = implausible_input(peak, counted_rate(r), flops, f_model.source or "F_counted", step_s,
                                breakdown["matmul"].ms / 1000)
    if problem:
        warnings.append(problem)
        mfu = replace(figures.mfu, analytic=None, counted=None)
        return Attribution(r.rank, replace(figures, mfu=mfu), t, None, {}, None, warnings)
    overheads = rank_overheads(r, peak.peak_flops_run)
    seconds = cause_seconds({c: b.ms / 1000 for c, b in breakdown.items()}, flops, P, peak.peak_flops_run, overheads)
    seconds, recording = without_profiler(seconds, overheads.profiler)
    if recording:  # MFU and the ledger of the step as it runs unprofiled
        step_s -= recording
        mfu = replace(figures.mfu, analytic=model / (step_s * P) if model else None,
                      counted=f_counted / (step_s * P) if f_counted else None)
        cost = ProfilerCost(r.metadata["recording_cost_us_per_op"], r.signals.host_ops / max(r.signals.steps, 1),
                            1000 * recording)
        figures = replace(figures, mfu=mfu, profiler_cost=cost)
        warnings.append(f"the profiler's own cost, {cost.ms_per_step:.2f} ms/step ({cost.ops_per_step:,.0f} ops "
                        f"recorded per step x {cost.us_per_op:.2f} us, measured before the run), is taken out of "
                        "the step time and small_batch: MFU and the ledger describe the step unprofiled")
    if flops / P > breakdown["matmul"].ms / 1000 + 1e-9:
        warnings.append(f"the FLOPs per step need {1000 * flops / P:.2f} ms at P, more than the "
                        f"{breakdown['matmul'].ms:.2f} ms the matmuls took: the other causes give up the difference "
                        "in proportion (the FLOPs count more than ran, or P is low)")
    elif flops / peak.peak_flops_run > breakdown["matmul"].ms / 1000 + 1e-9:
        warnings.append(f"the matmuls took less time than the FLOPs need at P_run ({peak.dtype}): precision is "
                        "capped at the matmul time beyond the FLOPs at P (the matmuls may have run in a faster "
                        "precision than recorded, or F_model counts more than ran)")
    low, high = step_ranges(t, overheads, flops, P, peak.peak_flops_run)
    entries = [LedgerEntry(**e, low=low[e["cause"]], high=high[e["cause"]]) for e in ledger(step_s, seconds, flops, P)]
    warnings += spread_note(figures.step_time_ms, entries)
    evidence = Evidence(
        step_s * 1000, r.kind, r.dtype, r.metadata, P, peak.peak_flops_run, flops, f_counted, breakdown, r.signals, ops,
        1000 * overheads.short_idle, 1000 * (overheads.optimizer_host + overheads.optimizer_idle),
        1000 * overheads.fixed_compute + 1000 * overheads.fixed_memory,
        1000 * (overheads.parameter_compute + overheads.parameter_memory), float(t.copied_bytes.mean()),
        1000 * overheads.allocator, 1000 * overheads.sync, float(t.host_us[2].mean()) / 1000,
        sum(op.count for op in ops if op.category == "other_compute"), r.metadata.get("step_ms_by_dtype") or {},
        1000 * recording, peak.fastest)
    figures = replace(figures, ledger=entries)
    return Attribution(r.rank, figures, t, overheads, {c: seconds[c] for c in CAUSES}, evidence, warnings)


def step_ranges(t: StepTable, o: Overheads, flops: float, peak: float, peak_run: float) -> tuple[dict, dict]:
    """Each cause's lowest and highest points over the analysed steps: the ledger of each step on its own, with
    the per-step overheads of that step and the others' per-step averages."""
    points = []
    for j in range(len(t)):
        step_o = replace(o, short_idle=t.short_idle_us[j] / 1e6, optimizer_host=t.optimizer_us[0, j] / 1e6,
                         optimizer_idle=t.optimizer_us[1, j] / 1e6, allocator=t.host_us[0, j] / 1e6,
                         sync=t.host_us[1, j] / 1e6)
        category_s = {c: t.breakdown_us[k, j] / 1e6 for k, c in enumerate(classify.CATEGORIES)}
        s, recording = without_profiler(cause_seconds(category_s, flops, peak, peak_run, step_o), o.profiler)
        points.append({c: 100 * s[c] * 1e6 / (t.step_us[j] - 1e6 * recording) for c in CAUSES})
    return ({c: min(p[c] for p in points) for c in CAUSES}, {c: max(p[c] for p in points) for c in CAUSES})


def spread_note(times: StepTimes, entries: list[LedgerEntry]) -> list[str]:
    """A warning when the steps vary so much that the two largest causes could trade places."""
    first, second = sorted(entries, key=lambda e: -e.points)[:2]
    if times.cv <= WIDE_STEP_CV or first.low > second.high:
        return []
    return [f"the analysed steps ranged {times.min:.2f}-{times.max:.2f} ms (coefficient of variation "
            f"{100 * times.cv:.0f}%: another job on the machine, throttling, or warm-up): the causes' order could "
            f"change, {first.cause} ranging {first.low:.1f}-{first.high:.1f} points over the steps and "
            f"{second.cause} {second.low:.1f}-{second.high:.1f}; profile again on a quiet machine or more steps"]


def warmup_note(t: StepTable) -> list[str]:
    """A first step far slower than the others is warm-up: the averages include it, and the report says so."""
    if len(t) < 3 or t.step_us[0] <= WARMUP_RATIO * np.median(t.step_us[1:]):
        return []
    median = np.median(t.step_us[1:])
    return [f"step {t.ids[0]} took {t.step_us[0] / 1000:.2f} ms, {t.step_us[0] / median:.0f}x the median of the others "
            f"({median / 1000:.2f} ms): most likely warm-up (first allocations, cuDNN / MIOpen algorithm search, "
            "compilation); the figures average over all steps, per_step has each"]


def counted_rate(r: RankAnalysis) -> float | None:
    """FLOP/s of the counted matmul, attention and convolution ops over the time they ran."""
    flops = float(r.table.flops.sum())
    return flops / (r.signals.matmul_us / 1e6) if r.signals.matmul_us and flops else None


def rank_overheads(r: RankAnalysis, peak_run: float) -> Overheads:
    """The seconds per step that the ledger moves between causes, from the rank's signals."""
    sig, t = r.signals, r.table
    per_step = 1e6 * max(sig.steps, 1)  # µs totals over the steps → seconds per step
    optimizer_host, optimizer_idle = t.optimizer_us.mean(axis=1) / 1e6
    return Overheads(
        small_matmul_excess=(sig.small_matmul_us - 1e6 * sig.small_matmul_flops / peak_run) / per_step,
        short_idle=float(t.short_idle_us.mean()) / 1e6,
        fixed_compute=sig.fixed_us["other_compute"] / per_step, fixed_memory=sig.fixed_us["memory"] / per_step,
        parameter_compute=sig.parameter_us["other_compute"] / per_step,
        parameter_memory=sig.parameter_us["memory"] / per_step,
        optimizer_host=optimizer_host, optimizer_idle=optimizer_idle,
        attention_matmul_excess=(sig.attention_us["matmul"] - 1e6 * sig.attention_flops / peak_run) / per_step,
        attention_memory=sig.attention_us["memory"] / per_step,
        attention_host=sig.attention_us["host_overhead"] / per_step,
        allocator=float(t.host_us[0].mean()) / 1e6, sync=float(t.host_us[1].mean()) / 1e6,
        precision=measured_precision(r),
        profiler=r.metadata.get("recording_cost_us_per_op", 0.0) * sig.host_ops / per_step)


def measured_precision(r: RankAnalysis) -> float | None:
    """Seconds per step that the fastest dtype saved against the run's dtype at the run's own shapes, as our run
    measured before training (forward and backward of one micro-step, times the micro-steps): bfloat16 on most
    devices, float32 on a CPU that emulates bfloat16. None where not measured."""
    measured = r.metadata.get("step_ms_by_dtype") or {}
    if r.dtype not in measured or len(measured) < 2:
        return None
    micro_steps = r.metadata.get("gradient_accumulation_steps", 1)
    return (measured[r.dtype] - min(measured.values())) * micro_steps / 1000


def op_rows(ops: dict[str, OpStats], n_steps: int) -> list[OpRow]:
    """All ops of the rank by time per step, largest first."""
    rows = sorted(ops.items(), key=lambda kv: -kv[1].us)
    return [OpRow(name, s.category, s.count / n_steps, s.us / n_steps / 1000, s.flops / n_steps,
                  s.flops / s.flop_us / 1e6 if s.flop_us and s.flops else None) for name, s in rows]


def communication(r: RankAnalysis, breakdown: dict[str, Share]) -> Communication | None:
    """Collective time per step, how much of it no compute hid, and the calls and bytes where recorded."""
    if not r.signals.collectives and not r.table.collective_us.any():
        return None
    n = max(r.signals.steps, 1)
    total = float(r.table.collective_us.mean() / 1000)
    exposed = breakdown["communication"].ms
    return Communication(total, exposed, exposed / total if total else None,
                         {k: v / n for k, v in r.signals.collectives.items()},
                         r.signals.collective_bytes / n if r.signals.collective_bytes else None)


def flops_gap_note(f_model: float, f_counted: float) -> str:
    return (f"counted FLOPs are {f_counted / f_model:.2f}× the analytic model FLOPs: the analytic formula counts "
            "the full T×T attention and all parameters; the counted ones miss ops without recorded shapes and "
            "include recomputation and any matmuls outside the model (a foreign model's formula may differ)")
