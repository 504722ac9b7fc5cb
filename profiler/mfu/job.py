"""One job from its ranks' typed results: the job's figures over the ranks, and the stragglers.

Under DDP the ranks wait for each other in the all-reduce, so their step times come out alike; a slow rank
shows as the others' exposed communication. Stragglers are therefore found by busy time: the step minus
the exposed communication.
"""

from dataclasses import dataclass, field, fields, replace

import numpy as np

from profiler.analysis.records import ALL_RECORDED, Recorded, Timeline
from profiler.facts import Note
from profiler.mfu.bandwidth import Bandwidth
from profiler.mfu.ledger import Cause, LedgerUnit
from profiler.mfu.memory import worst_rank
from profiler.mfu.parallelism import NAMES, CollectiveRow
from profiler.mfu.peak import Peak
from profiler.mfu.records import (
    Attribution,
    Communication,
    Figures,
    LedgerEntry,
    OpRow,
    Share,
    StepRow,
    StepTimes,
)
from profiler.settings import MIN_POINTS, MS_PER_S, STRAGGLER_THRESHOLD, TERA
from profiler.trace.classify import CATEGORIES

# how each job-level figure is formed from the ranks' figures (the report says so in job_aggregation)
AGGREGATION = {
    "step_time_ms": "mean over ranks", "breakdown": "mean over ranks",
    "mfu": "mean over ranks (per device, as nanoGPT computes it under DDP)",
    "ledger": "mean over ranks; interval: the lowest and highest step of any rank",
    "bottlenecks": "ledger mean over ranks; evidence from the rank where the cause costs most",
    "device_utilization": "mean over ranks",
    "top_ops": "mean over ranks of each rank's top ops (TFLOP/s: FLOPs over their time, all ranks; roofline: of "
               "the rank where the op took longest)",
    "classification_ms": "mean over ranks", "communication": "mean over ranks",
    "copied_bytes_per_step": "mean over ranks", "matmul_without_flops_ms": "mean over ranks",
    "per_step": "mean over ranks per step number",
    "memory": "the rank with the highest peak (its rank is given); each rank's own in per_rank",
}


@dataclass(frozen=True)
class Straggler:
    rank: int
    excess_ms: float  # busy time per step over the other ranks' median
    category: str  # the breakdown category that makes most of the difference


@dataclass(frozen=True, kw_only=True)
class JobResult:
    """Everything a report says of a trace, a run or a job, before it is serialized."""

    paths: list[str]
    ranks: list[int]
    steps: list[int]
    torch_version: str | None
    device_name: str | None
    kind: str
    dtype: str | None
    peak: Peak | None
    bandwidth: Bandwidth | None  # the roofline's memory ceiling
    figures: Figures  # of the one rank, or of the job
    per_rank: list[Attribution]  # with their own figures, only for several ranks
    stragglers: list[Straggler]
    warnings: list[Note]
    conventions: list[str]
    timeline: Timeline | None = None  # of the first file, when asked for
    config: dict = field(default_factory=dict)  # the run's configuration in its program's keys (vocabulary.py)
    world_size: int = 1
    recorded: Recorded = ALL_RECORDED  # what every file of the job records


def mean(values: list):
    return float(np.mean(values)) if values and None not in values else None


def job_figures(ranks: list[Attribution], min_points: float = MIN_POINTS) -> Figures:
    """The job's figures over its ranks, each formed as AGGREGATION says; bottleneck evidence comes from the
    rank where that cause costs most, and says which rank."""
    figs = [a.figures for a in ranks]
    ledger, bottlenecks = job_ledger(figs), []
    for entry in ledger:
        found = [(b, a.rank) for a in ranks for b in a.figures.bottlenecks if b.cause == entry.cause]
        if entry.points < min_points or not found:
            continue
        worst, rank = max(found, key=lambda br: br[0].points)
        facts = {**worst.facts, "rank": rank}
        if entry.cause is Cause.COMMUNICATION:
            facts["exposed_by_rank"] = rank_exposure(ranks)
        bottlenecks.append(replace(worst, points=entry.points, ms=entry.ms, what_if_mfu=entry.what_if_mfu,
                                   what_if_step_ms=entry.what_if_step_ms, speedup=entry.speedup, facts=facts))
    bottlenecks.sort(key=lambda b: -b.points)
    return Figures(
        step_time_ms=StepTimes(*(mean([getattr(f.step_time_ms, k) for f in figs])
                                 for k in ("mean", "min", "max", "cv"))),
        device_utilization=mean_fields([f.device_utilization for f in figs]),
        mfu=replace(figs[0].mfu, analytic=mean([f.mfu.analytic for f in figs]),
                    counted=mean([f.mfu.counted for f in figs])),
        breakdown={c: Share(mean([f.breakdown[c].ms for f in figs]), mean([f.breakdown[c].fraction for f in figs]))
                   for c in CATEGORIES},
        ledger=ledger, bottlenecks=bottlenecks, top_ops=job_top_ops([f.top_ops for f in figs]),
        ops=job_top_ops([f.ops for f in figs]), kernels=job_top_ops([f.kernels for f in figs]),
        classification_ms=mean_fields([f.classification_ms for f in figs]),
        copied_bytes_per_step=mean([f.copied_bytes_per_step for f in figs]),
        matmul_without_flops_ms=mean([f.matmul_without_flops_ms for f in figs]),
        communication=job_communication([f.communication for f in figs]),
        per_step=job_per_step([f.per_step for f in figs]), profiler_cost=mean_fields([f.profiler_cost for f in figs]),
        ledger_unit=figs[0].ledger_unit, memory=worst_rank(ranks))


def job_ledger(figs: list[Figures]) -> list[LedgerEntry]:
    """Each cause's entry averaged over the ranks (a cause a rank lacks, such as warmup, counts 0 there);
    empty unless every rank has a ledger in the same unit."""
    if not all(f.ledger for f in figs) or len({f.ledger_unit for f in figs}) > 1:
        return []
    by_cause = [{e.cause: e for e in f.ledger} for f in figs]
    causes = list(dict.fromkeys(e.cause for f in figs for e in f.ledger))
    out = []
    for c in causes:
        entries = [d.get(c) or absent(f, c) for d, f in zip(by_cause, figs)]
        lows, highs = [e.low for e in entries if e.low is not None], [e.high for e in entries if e.high is not None]
        out.append(LedgerEntry(cause=c, points=mean([e.points for e in entries]), ms=mean([e.ms for e in entries]),
                               what_if_mfu=mean([e.what_if_mfu for e in entries]),
                               low=min(lows) if len(lows) == len(entries) else None,
                               high=max(highs) if len(highs) == len(entries) else None,
                               what_if_step_ms=mean([e.what_if_step_ms for e in entries]),
                               speedup=mean([e.speedup for e in entries])))
    return out


def absent(f: Figures, cause: Cause) -> LedgerEntry:
    """A cause that a rank's ledger lacks (no warmup there): 0 points, its what-if the rank as it is."""
    if f.ledger_unit is LedgerUnit.MFU:
        return LedgerEntry(cause=cause, points=0.0, ms=0.0, what_if_mfu=f.mfu.of_ledger, low=0.0, high=0.0)
    return LedgerEntry(cause=cause, points=0.0, ms=0.0, what_if_mfu=None, what_if_step_ms=f.step_time_ms.mean,
                       speedup=1.0)


def mean_fields(parts: list):
    """Field by field mean of the ranks' records of numbers (None when any rank has none)."""
    if not parts or any(p is None for p in parts):
        return None
    return type(parts[0])(*(mean([getattr(p, f.name) for p in parts]) for f in fields(parts[0])))


def job_communication(parts: list[Communication | None]) -> Communication | None:
    present = [p for p in parts if p]
    if not present:
        return None
    n = len(parts)
    total = sum(p.total_ms for p in present) / n
    exposed = sum(p.exposed_ms for p in present) / n
    calls: dict[str, float] = {}
    for p in present:
        for k, v in p.calls_per_step.items():
            calls[k] = calls.get(k, 0.0) + v / n
    sent = [p.bytes_per_step for p in present if p.bytes_per_step]
    marks = [m for m, _ in NAMES if any(m in p.parallelism for p in present)]
    return Communication(total_ms=total, exposed_ms=exposed, exposed_fraction=exposed / total if total else None,
                         calls_per_step=calls, bytes_per_step=sum(sent) / n if sent else None, parallelism=marks,
                         collectives=job_collectives([p.collectives for p in present], n),
                         group_size=max(p.group_size for p in present), backend=present[0].backend,
                         fsdp_all_gather_ms=present[0].fsdp_all_gather_ms, micro_batches=present[0].micro_batches,
                         link=present[0].link, link_gb_per_s=present[0].link_gb_per_s)


def job_collectives(parts: list[list[CollectiveRow]], ranks: int) -> list[CollectiveRow]:
    """Each phase and kind averaged over the ranks (a rank without it counts 0), its bus bandwidth the mean of the
    ranks that have one."""
    rows: dict[tuple[str, str], list[CollectiveRow]] = {}
    for part in parts:
        for r in part:
            rows.setdefault((r.phase, r.kind), []).append(r)
    out = []
    for (phase, kind), found in rows.items():
        bus = [r.bus_gb_per_s for r in found if r.bus_gb_per_s]
        out.append(CollectiveRow(phase=phase, kind=kind, calls=sum(r.calls for r in found) / ranks,
                                 mb=sum(r.mb for r in found) / ranks, ms=sum(r.ms for r in found) / ranks,
                                 exposed_ms=sum(r.exposed_ms for r in found) / ranks,
                                 bus_gb_per_s=sum(bus) / len(bus) if bus else None))
    return sorted(out, key=lambda r: -r.exposed_ms)


def job_top_ops(parts: list[list[OpRow]]) -> list[OpRow]:
    """Each op's time, count, FLOPs and bytes per step averaged over the ranks (an op missing on a rank counts 0),
    with the roofline of the rank where it took longest."""
    merged: dict[tuple, list] = {}  # (name, shapes) → [category, count, ms, flops, ms of FLOPs, bytes, slowest row]
    for ops in parts:
        for op in ops:
            m = merged.setdefault((op.name, op.shapes), [op.category, 0.0, 0.0, 0.0, 0.0, 0.0, op])
            m[1] += op.count / len(parts)
            m[2] += op.ms / len(parts)
            m[3] += op.flops / len(parts)
            m[4] += op.flop_ms
            m[5] += op.bytes / len(parts)
            m[6] = op if op.ms > m[6].ms else m[6]
    rows = [OpRow(name=name, category=c, count=count, ms=ms, flops=flops,
                  tflops_per_s=flops * len(parts) / (flop_ms / MS_PER_S) / TERA if flop_ms else None, bytes=moved,
                  roofline=slowest.roofline, flop_ms=flop_ms / len(parts), shapes=shapes)
            for (name, shapes), (c, count, ms, flops, flop_ms, moved, slowest) in merged.items()]
    return sorted(rows, key=lambda o: -o.ms)[:max(len(p) for p in parts)]


def job_per_step(parts: list[list[StepRow]]) -> list[StepRow]:
    """Per step number present on every rank: each figure's mean over the ranks (the ranks' same step is one
    sample of the job: they wait for each other in it)."""
    by_step = [{s.step: s for s in steps} for steps in parts]
    common = sorted(set.intersection(*(set(d) for d in by_step)))
    return [StepRow(i, mean([d[i].ms for d in by_step]),
                    {c: mean([d[i].categories[c] for d in by_step]) for c in by_step[0][i].categories},
                    {c: mean([d[i].points.get(c, 0.0) for d in by_step]) for c in by_step[0][i].points}
                    if all(d[i].points for d in by_step) else {})
            for i in common]


def stragglers(ranks: list[Attribution], threshold: float = STRAGGLER_THRESHOLD) -> list[Straggler]:
    """Ranks whose busy time exceeds the median of the others' by `threshold`, with the category that makes the
    largest part of the difference."""
    figs = [a.figures for a in ranks]
    busy = np.array([f.step_time_ms.mean - f.breakdown["communication"].ms for f in figs])
    baseline = medians_of_the_others(busy)
    out = []
    for i in np.flatnonzero(busy > baseline * (1 + threshold)):
        diff = {c: figs[i].breakdown[c].ms - float(medians_of_the_others(
                    np.array([f.breakdown[c].ms for f in figs]))[i]) for c in CATEGORIES if c != "communication"}
        out.append(Straggler(ranks[i].rank, float(busy[i] - baseline[i]), max(diff, key=lambda c: diff[c])))
    return out


def rank_exposure(ranks: list[Attribution], shown: int = 8) -> list[dict]:
    """Each rank's communication that no compute hid, per step and as a share of its step, most first: the time
    each rank waits on the others (under pipeline parallelism, each stage's measured bubble and transfers)."""
    rows = [{"rank": a.rank, "ms": a.figures.breakdown["communication"].ms,
             "pct": 100 * a.figures.breakdown["communication"].fraction} for a in ranks]
    return sorted(rows, key=lambda r: -r["ms"])[:shown]


def medians_of_the_others(values: np.ndarray) -> np.ndarray:
    """For each element, the median of all the others: from one sort, not one median per element (16,384 ranks
    would make that 268 million comparisons)."""
    n = len(values)
    if n < 2:
        return np.full(n, np.nan)
    order = np.argsort(values, kind="stable")
    ranked = values[order]
    position = np.empty(n, np.int64)
    position[order] = np.arange(n)

    def without_self(k: np.ndarray) -> np.ndarray:  # the k-th smallest of the others
        return ranked[np.where(k < position, k, k + 1)]

    m = n - 1
    if m % 2:
        return without_self(np.full(n, m // 2))
    return (without_self(np.full(n, m // 2 - 1)) + without_self(np.full(n, m // 2))) / 2


def with_stragglers(figures: Figures, found: list[Straggler]) -> Figures:
    """The communication bottleneck's facts name the ranks the others wait for."""
    if not found:
        return figures
    waits = [{"rank": s.rank, "excess_ms": s.excess_ms, "category": s.category} for s in found]
    return replace(figures, bottlenecks=[replace(b, facts={**b.facts, "waited_for": waits})
                                         if b.cause is Cause.COMMUNICATION else b for b in figures.bottlenecks])
