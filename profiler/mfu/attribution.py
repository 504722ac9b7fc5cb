"""Attribution: one rank's merged analysis, the peak and F_model → a frozen, typed result.

The result holds what the report shows (Figures: step times, MFU, breakdown, ledger, top ops, ...) and what
it rests on: the per-step table, the overheads that the ledger moves between causes, the seconds per cause
and the evidence the diagnosis cites. Nothing downstream recomputes a number; each is made here once.
"""

from dataclasses import fields, replace

import numpy as np

from profiler.analysis.records import KernelClassification, RankAnalysis, StepTable, by_name, merged, milliseconds
from profiler.facts import Note
from profiler.mfu.communication import communication_figures
from profiler.mfu.consistency import implausible_input
from profiler.mfu.inputs import counted_rate
from profiler.mfu.ledger import (
    CAUSES,
    Cause,
    LedgerUnit,
    Overheads,
    at_peaks,
    cause_seconds,
    ledger,
    time_ledger,
    without_profiler,
)
from profiler.mfu.observed import observed
from profiler.mfu.ops import kernel_rows, op_rows, shaped_rows
from profiler.mfu.peak import Peak, table_peaks
from profiler.mfu.records import (
    Attribution,
    Evidence,
    Figures,
    LedgerEntry,
    Mfu,
    ModelFlops,
    OpRow,
    ProfilerCost,
    RankInputs,
    Share,
    StepRow,
    StepTimes,
)
from profiler.mfu.roofline import fusion_removable
from profiler.mfu.shapetime import ShapeTiming
from profiler.settings import (
    FLOPS_GAP,
    GIGA,
    MOSTLY_UNCOUNTED,
    MS_PER_S,
    UNCOUNTED_MATMUL_SHARE,
    WARMUP_RATIO,
    WIDE_STEP_CV,
)
from profiler.trace import classify


def attribute(analysis: RankAnalysis, given: RankInputs) -> Attribution:
    """The rank's figures and its ledger: in points of MFU where F and P can be formed and are plausible, else
    in points of step time (docs/DESIGN.md, "When MFU cannot be formed"), so that every trace gets a diagnosis."""
    peak, bandwidth, f_model = given.peak, given.bandwidth, given.f_model
    notes = warmup_note(analysis.table) + flops_notes(analysis, f_model)
    ops = op_rows(merged([analysis.ops], by_name), len(analysis.table), peak.peak_flops_run if peak else None,
                  bandwidth.bytes_per_s if bandwidth else None)
    if ops and not any(op.bytes for op in ops):
        notes.append(Note("no_op_bytes"))
    figures = replace(rank_figures(analysis, peak, f_model, ops[:given.top]), memory=given.memory)
    flops = f_model.per_step or figures.mfu.flops_counted  # the ledger's F: the model's, else every counted FLOP
    why = why_no_mfu(analysis, peak, f_model)
    if why is not None and f_model.from_counts:  # the counts that stood in for F_model are not the model's
        figures = replace(figures, mfu=replace(figures.mfu, analytic=None))
    if why is None and peak:
        category_s = analysis.table.category_s()
        why = implausible_input(peak, counted_rate(analysis), flops, f_model.source or "F_counted",
                                analysis.table.mean_s("step_us"), category_s["matmul"], category_s["unrecorded"])
        if why:  # the inputs cannot be true together: no MFU is printed
            figures = replace(figures, mfu=replace(figures.mfu, analytic=None, counted=None))
    attribution = ledger_attribution(analysis, figures, ops, given, flops, why)  # why_no_mfu: no peak is a why
    return replace(attribution, warnings=notes + attribution.warnings)


def uncounted_matmul(analysis: RankAnalysis) -> tuple[float, float]:
    """The matmul time (µs, over the steps) in ops whose FLOPs the trace does not let us count, and all of it."""
    return analysis.signals.uncounted_matmul_total_us, float(analysis.table.breakdown_us[classify.MATMUL].sum())


def why_no_mfu(analysis: RankAnalysis, peak: Peak | None, f_model: ModelFlops) -> Note | None:
    """Why the MFU ledger cannot be formed for this rank, or None when it can."""
    uncounted, matmul_us = uncounted_matmul(analysis)
    if not peak:
        return Note("no_peak")
    if not (f_model.per_step or analysis.table.flops.any()):
        return Note("no_flops")
    if (not f_model.per_step or f_model.from_counts) and uncounted > MOSTLY_UNCOUNTED * matmul_us:
        return Note("mostly_uncounted", {"uncounted_pct": 100 * uncounted / matmul_us})
    return None


def rank_figures(analysis: RankAnalysis, peak: Peak | None, f_model: ModelFlops, top_ops: list[OpRow]) -> Figures:
    """What a report shows of the rank before any ledger: step times, MFU, breakdown, top ops, per step."""
    t = analysis.table  # the figures are in ms, as the report shows them; the ledger computes in seconds
    n, step_s = len(t), t.mean_s("step_us")
    f_counted = float(t.flops.mean())
    model = f_model.per_step
    P = peak.peak_flops if peak else None
    total_us = t.breakdown_us.sum(axis=1)
    breakdown = {c: Share(milliseconds(float(total_us[k]) / n), float(total_us[k] / t.step_us.sum()))
                 for k, c in enumerate(classify.CATEGORIES)}
    classified = (KernelClassification(*(milliseconds(getattr(analysis.classified_us, f.name) / n)
                                         for f in fields(KernelClassification))) if analysis.classified_us else None)
    return Figures(
        step_time_ms=StepTimes(milliseconds(float(t.step_us.mean())), milliseconds(float(t.step_us.min())),
                               milliseconds(float(t.step_us.max())), float(t.step_us.std() / t.step_us.mean())),
        device_utilization=analysis.utilization,
        mfu=Mfu(analytic=None, counted=None, flops_analytic=float(model) if model else None, flops_counted=f_counted,
                analytic_from=f_model.source, account=f_model.account).over(step_s, P),
        breakdown=breakdown, ledger=[], bottlenecks=[], top_ops=top_ops,
        classification_ms=classified, copied_bytes_per_step=float(t.copied_bytes.mean()),
        matmul_without_flops_ms=milliseconds(analysis.signals.per_step(analysis.signals.uncounted_matmul_total_us)),
        communication=communication_figures(analysis, breakdown), ops=shaped_rows(analysis.ops, n),
        kernels=kernel_rows(analysis.kernels, n),
        per_step=[StepRow(int(i), milliseconds(float(us)), {c: milliseconds(float(t.breakdown_us[k, j]))
                                                             for k, c in enumerate(classify.CATEGORIES)})
                  for j, (i, us) in enumerate(zip(t.ids, t.step_us))])


def ledger_attribution(analysis: RankAnalysis, figures: Figures, ops: list[OpRow], given: RankInputs, flops: float,
                       why: Note | None = None) -> Attribution:
    """The ledger in either unit, and the evidence the diagnosis cites. Without `why`, points of MFU: 100 − MFU
    over the causes, each with its what-if MFU. With it (no P, no F, or inputs that cannot be true together),
    100 points of step time over the causes that need neither, precision from the kernels' names, and the work
    itself (useful); each what-if a steady-state step time and speed-up."""
    t, peak = analysis.table, given.peak
    unit = LedgerUnit.MFU if why is None and peak else LedgerUnit.STEP_TIME
    overheads, speed = unit_overheads(analysis, given, unit)
    peaks = at_peaks(flops, peak.peak_flops, peak.peak_flops_run) if peak and unit is LedgerUnit.MFU else None
    category_s = t.category_s()
    seconds, recording = without_profiler(cause_seconds(category_s, overheads, **(peaks or {})), overheads.profiler)
    step_s = t.mean_s("step_us") - recording
    points = step_points(t, overheads, peaks)
    removable = {Cause.NON_FUSED: non_fused_removable(analysis, category_s, overheads, seconds)}
    if peaks and peak:
        figures, notes = without_recording(analysis, figures, step_s, recording, flops, peak, category_s)
        figures = with_step_points(figures, points)
        entries = [LedgerEntry(**e, low=min(p[e["cause"]] for p in points), high=max(p[e["cause"]] for p in points))
                   for e in ledger(step_s, seconds, flops, peak.peak_flops, removable)]
        notes += spread_note(figures.step_time_ms, entries)
    else:
        entries = [LedgerEntry(**e) for e in time_ledger(step_s, seconds, removable)]
        why = why or Note("no_peak")  # never None here: without a why, a peak and an MFU ledger (typing's sake)
        notes = [Note("time_ledger", {"why": why.code, **why.numbers, "step_ms": MS_PER_S * step_s})]
        figures = replace(with_step_points(figures, points), ledger_unit=unit)
    mfu = unit is LedgerUnit.MFU
    evidence = rank_evidence(analysis, figures, ops, overheads, given, step_s=step_s, profiler_s=recording,
                             flops=flops if mfu else 0.0, unit=unit, fp32_speed=speed,
                             precision_ms=MS_PER_S * seconds[Cause.PRECISION] if mfu else 0.0,
                             timing=given.timing if mfu else None)
    return Attribution(rank=analysis.rank, figures=replace(figures, ledger=entries), steps=t, overheads=overheads,
                       seconds={c: seconds[c] for c in CAUSES}, evidence=evidence, warnings=notes)


def unit_overheads(analysis: RankAnalysis, given: RankInputs, unit: LedgerUnit) -> tuple[Overheads, float | None]:
    """The overheads the ledger moves between causes; a time ledger's precision from its float32 kernels' time
    and the device table's float32 speed (which it also returns), with no P_run to give matmuls an excess."""
    peak = given.peak
    if unit is LedgerUnit.MFU and peak:
        return rank_overheads(analysis, peak.peak_flops_run, peak.fastest, given.timing), None
    speed = fp32_speed(analysis)
    fp32_s = analysis.signals.per_step_s(analysis.signals.fp32_matmul_total_us)
    return replace(rank_overheads(analysis, None, None), precision=(1 - speed) * fp32_s if speed else None), speed


def without_recording(analysis: RankAnalysis, figures: Figures, step_s: float, recording: float, flops: float,
                      peak: Peak, category_s: dict[str, float]) -> tuple[Figures, list[Note]]:
    """MFU of the step as it runs unprofiled (our runs measured the recording cost per op), and notes where the
    FLOPs at the peaks need more than the matmul time (and the device work the trace lost, which may be some)."""
    matmul_s, lost_s = category_s["matmul"], category_s["unrecorded"]
    notes = []
    if recording:
        cost = ProfilerCost(analysis.metadata.recording_cost_us_per_op or 0.0,
                            analysis.signals.per_step(analysis.signals.host_ops), MS_PER_S * recording)
        figures = replace(figures, mfu=figures.mfu.over(step_s, peak.peak_flops), profiler_cost=cost)
        notes.append(Note("profiler_cost", {"ms_per_step": cost.ms_per_step, "ops_per_step": cost.ops_per_step,
                                            "us_per_op": cost.us_per_op}))
    if flops / peak.peak_flops > matmul_s + lost_s + 1e-9:
        notes.append(Note("flops_beyond_matmul_time", {"ideal_ms": MS_PER_S * flops / peak.peak_flops,
                                                       "matmul_ms": MS_PER_S * matmul_s,
                                                       **({"unrecorded_ms": MS_PER_S * lost_s} if lost_s else {})}))
    elif flops / peak.peak_flops_run > matmul_s + 1e-9:
        notes.append(Note("precision_capped", {"dtype": peak.dtype}))
    return figures, notes


def fp32_speed(analysis: RankAnalysis) -> float | None:
    """The device's float32 peak over its fastest, from the device table: what float32 SIMT kernels lose is
    (1 − this) of their time. None on a CPU or a device the table lacks."""
    rates = table_peaks(analysis.device_names[0]) if analysis.kind != "cpu" and analysis.device_names else None
    return rates["float32"] / max(rates.values()) if rates and "float32" in rates else None


def rank_evidence(analysis: RankAnalysis, figures: Figures, ops: list[OpRow], overheads: Overheads,
                  given: RankInputs, *, step_s: float, profiler_s: float, flops: float, unit: LedgerUnit,
                  fp32_speed: float | None, precision_ms: float, timing: ShapeTiming | None) -> Evidence:
    """What the diagnosis cites, in ms per step as the report shows it, made once with everything it holds:
    where the rank's seconds become its evidence's milliseconds."""
    ms = MS_PER_S
    o, peak = overheads, given.peak
    return Evidence(
        step_ms=ms * step_s, kind=analysis.kind, dtype=analysis.dtype, meta=analysis.metadata,
        peak=peak.peak_flops if peak else 0.0,
        peak_run=peak.peak_flops_run if peak else 0.0, flops=flops, counted_flops=figures.mfu.flops_counted,
        uncounted_matmul_ms=figures.matmul_without_flops_ms,
        account=figures.mfu.account, communication=figures.communication,
        breakdown=figures.breakdown, observed=observed(analysis.signals, analysis.kind), ops=ops,
        short_idle_ms=ms * o.short_idle,
        optimizer_overhead_ms=ms * (o.optimizer_host + o.optimizer_idle),
        fixed_ms=ms * o.fixed_compute + ms * o.fixed_memory,
        parameter_ms=ms * (o.parameter_compute + o.parameter_memory),
        copied_bytes=float(analysis.table.copied_bytes.mean()), allocator_ms=ms * o.allocator, sync_ms=ms * o.sync,
        python_ms=milliseconds(float(analysis.table.python_us.mean())),
        other_ops_per_step=sum(op.count for op in ops if op.category == "other_compute"),
        step_ms_by_dtype=analysis.metadata.step_ms_by_dtype or {},
        step_ms_by_batch=analysis.metadata.step_ms_by_batch or {}, profiler_ms=ms * profiler_s,
        fastest_dtype=peak.fastest if peak else None, unit=unit, fp32_speed=fp32_speed,
        short_gap_us=given.short_gap_us, bandwidth=given.bandwidth, shape_timing=timing, precision_ms=precision_ms,
        memory=given.memory)


def flops_notes(analysis: RankAnalysis, f_model: ModelFlops) -> list[Note]:
    """Warnings on the FLOP counts: counted and analytic apart, matmul time without a FLOP count."""
    out = []
    model, account = f_model.per_step, f_model.account
    if model and account and not f_model.from_counts and account.model and abs(account.model / model - 1) > FLOPS_GAP:
        out.append(Note("flops_gap", {"ratio": account.model / model, "executed_ratio": account.executed / model,
                                      "recomputed_gflops": account.recomputed / GIGA,
                                      "outside_gflops": account.outside / GIGA}))
    uncounted, matmul_us = uncounted_matmul(analysis)
    if uncounted > UNCOUNTED_MATMUL_SHARE * matmul_us:
        ms = lambda us: milliseconds(analysis.signals.per_step(us))
        largest = analysis.signals.uncounted_matmul_us.most_common(3)
        out.append(Note("uncounted_matmul", {"ms": ms(uncounted), "share_pct": 100 * uncounted / matmul_us,
                                             "largest": [{"name": name, "ms": ms(us)} for name, us in largest]}))
    return out


def step_points(table: StepTable, overheads: Overheads, peaks: dict | None) -> list[dict[str, float]]:
    """Each analysed step's own ledger, with that step's overheads and the others' per-step averages: points of
    MFU where `peaks` (at_peaks: the FLOPs at P and P_run) are given, else of the step time (matmul_efficiency's
    share is then the work itself, useful). The ledger's intervals and the diff's samples."""
    points = []
    per_step = {f: table.seconds(f"{f}_us") for f in ("step", "breakdown", "short_idle", "optimizer_host",
                                                       "optimizer_idle", "allocator", "sync", "warmup")}
    for j in range(len(table)):
        step_o = replace(overheads, **{f: float(per_step[f][j]) for f in ("short_idle", "optimizer_host",
                                                                          "optimizer_idle", "allocator", "sync",
                                                                          "warmup")})
        category_s = {c: float(per_step["breakdown"][k, j]) for k, c in enumerate(classify.CATEGORIES)}
        s, recording = without_profiler(cause_seconds(category_s, step_o, **(peaks or {})), overheads.profiler)
        step = max(per_step["step"][j] - recording, 1e-12)
        name = (lambda c: c) if peaks else (lambda c: Cause.USEFUL if c is Cause.MATMUL_EFFICIENCY else c)
        points.append({str(name(c)): 100 * s[c] / step for c in CAUSES})
    return points


def with_step_points(figures: Figures, points: list[dict[str, float]]) -> Figures:
    return replace(figures, per_step=[replace(row, points=p) for row, p in zip(figures.per_step, points)])


def spread_note(times: StepTimes, entries: list[LedgerEntry]) -> list[Note]:
    """A warning when the steps vary so much that the two largest causes could trade places."""
    first, second = sorted(entries, key=lambda e: -e.points)[:2]
    if times.cv <= WIDE_STEP_CV or first.low is None or second.high is None or first.low > second.high:
        return []
    return [Note("steps_spread", {"min_ms": times.min, "max_ms": times.max, "cv_pct": 100 * times.cv,
                                  "first": first.cause, "first_low": first.low, "first_high": first.high,
                                  "second": second.cause, "second_low": second.low, "second_high": second.high})]


def warmup_note(table: StepTable) -> list[Note]:
    """A first step far slower than the others is warm-up: the averages include it, and the report says so."""
    if len(table) < 3 or table.step_us[0] <= WARMUP_RATIO * np.median(table.step_us[1:]):
        return []
    first, median = float(table.step_us[0]), float(np.median(table.step_us[1:]))
    return [Note("first_step_warmup", {"step": int(table.ids[0]), "ms": milliseconds(first), "ratio": first / median,
                                       "median_ms": milliseconds(median)})]


def rank_overheads(analysis: RankAnalysis, peak_run: float | None, fastest: str | None,
                   timing: ShapeTiming | None = None) -> Overheads:
    """The seconds per step that the ledger moves between causes, from the rank's signals. Without P_run (a
    time ledger) small and unfused-attention matmuls have no excess over their FLOPs to move."""
    sig, t = analysis.signals, analysis.table
    per_step = sig.per_step_s
    excess = ((lambda us, flops: per_step(us) - sig.per_step(flops) / peak_run) if peak_run
              else (lambda us, flops: 0.0))  # the time beyond the FLOPs at P_run
    return Overheads(
        small_matmul_excess=excess(sig.small_matmul_us, sig.small_matmul_flops),
        short_idle=t.mean_s("short_idle_us"),
        fixed_compute=per_step(sig.fixed_us["other_compute"]), fixed_memory=per_step(sig.fixed_us["memory"]),
        parameter_compute=per_step(sig.parameter_us["other_compute"]),
        parameter_memory=per_step(sig.parameter_us["memory"]),
        optimizer_host=t.mean_s("optimizer_host_us"), optimizer_idle=t.mean_s("optimizer_idle_us"),
        attention_matmul_excess=excess(sig.attention_us["matmul"], sig.attention_flops),
        attention_memory=per_step(sig.attention_us["memory"]),
        attention_host=per_step(sig.attention_us["host_overhead"]),
        recompute_matmul=per_step(sig.recompute_us["matmul"]),
        recompute_compute=per_step(sig.recompute_us["other_compute"]),
        recompute_memory=per_step(sig.recompute_us["memory"]),
        recompute_host=per_step(sig.recompute_us["host_overhead"]),
        allocator=t.mean_s("allocator_us"), sync=t.mean_s("sync_us"), warmup=t.mean_s("warmup_us"),
        precision=measured_precision(analysis, fastest, timing),
        profiler=per_step((analysis.metadata.recording_cost_us_per_op or 0.0) * sig.host_ops))


def measured_precision(analysis: RankAnalysis, fastest: str | None, timing: ShapeTiming | None = None) -> float | None:
    """Seconds per step that a faster precision saves against the run's dtype at the run's own shapes.

    Our run measures it before training (forward and backward of one micro-step, times the micro-steps), for
    the device's fastest precision (the dtype of P): bfloat16 on most devices, float32 on a CPU that emulates
    bfloat16. Not the fastest at these shapes alone: at tiny shapes autocast's casts can make bfloat16 slower
    where its GEMMs are faster, and that is per-op overhead, not precision. Elsewhere on the recording machine
    the trace's matmul and attention shapes are timed (shapetime.py): the saving of the fastest precision at
    those shapes, 0 where the run's own is fastest. None where nothing was measured."""
    measured = analysis.metadata.step_ms_by_dtype or {}
    target = fastest if fastest in measured else "bfloat16"
    if analysis.dtype not in measured or target not in measured:
        return timing.saving_share * analysis.signals.per_step_s(analysis.signals.matmul_us) if timing else None
    micro_steps = analysis.metadata.micro_steps()
    return (measured[analysis.dtype] - measured[target]) * micro_steps / MS_PER_S  # the run measured ms


def non_fused_removable(analysis: RankAnalysis, category_s: dict[str, float], overheads: Overheads,
                        seconds: dict[Cause, float]) -> float:
    """The seconds of non_fused that fusion removes: its elementwise kernels' share of it bounded by their
    intermediate traffic (roofline.fusion_removable), the rest (dispatch, unfused attention) whole."""
    kernel_s = category_s["other_compute"] - overheads.fixed_compute - overheads.parameter_compute
    sig = analysis.signals
    return fusion_removable(seconds[Cause.NON_FUSED], kernel_s, sig.fusable_bytes, sig.elementwise_bytes)
