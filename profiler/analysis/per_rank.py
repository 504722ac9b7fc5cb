"""One rank's files (its profiler cycles) merged into one analysis: the steps in time order, each step once.

A file whose steps all appeared in an earlier file (the same cycle written twice) is left out whole, so that
the per-step table and the signals, the ops and the device time describe the same steps.
"""

from collections import defaultdict
from dataclasses import dataclass, fields

import numpy as np

from profiler.analysis.breakdown import KernelClassification, Utilization
from profiler.analysis.per_file import OpStats, StepTable, TraceAnalysis
from profiler.analysis.signals import Signals
from profiler.trace.location import file_name


@dataclass(frozen=True, kw_only=True)
class RankAnalysis:
    rank: int
    paths: list[str]
    kind: str  # device backend, or "cpu"
    device_names: list[str]
    metadata: dict  # our run's metadata (model, tokens, dtype, peak, ...); {} for a foreign trace
    dtype: str | None  # the matmuls' dtype: the run's own word, else the one that carried most FLOPs
    table: StepTable
    signals: Signals  # totals over the table's steps
    ops: dict[str, OpStats]  # totals over the table's steps
    classified_us: KernelClassification | None  # device time by how kernels were classified (GPU traces)
    utilization: Utilization | None  # device busy share of the files' device windows (HTA's definition)


def merge_rank(rank: int, analyses: list[TraceAnalysis]) -> tuple[RankAnalysis, list[str]]:
    """The rank's files merged, and warnings for the files and steps left out."""
    warnings: list[str] = []
    analyses = sorted(analyses, key=lambda a: a.trace.origin_us)
    kept, tables, seen = [], [], set()
    for a in analyses:
        fresh = np.array([i not in seen for i in a.table.ids])
        if not fresh.any():
            warnings.append(f"{file_name(a.trace.path)}: its steps {a.table.ids.tolist()} all appear in an earlier "
                            "file of the same rank: the file is left out")
            continue
        if not fresh.all():
            warnings.append(f"{file_name(a.trace.path)}: steps {a.table.ids[~fresh].tolist()} appear in an earlier "
                            "file of the same rank: their figures are counted once, the file's op statistics in full")
        seen.update(a.table.ids.tolist())
        kept.append(a)
        tables.append(a.table.select(fresh))
    signals, ops = Signals(), defaultdict[str, OpStats](OpStats)
    for a in kept:
        signals.add(a.signals)
        for name, stats in a.ops.items():
            ops[name].absorb(stats)
    first = kept[0]
    meta = first.trace.metadata or {}
    return RankAnalysis(rank=rank, paths=[str(a.trace.path) for a in kept], kind=first.kind,
                        device_names=first.trace.device_names, metadata=meta, dtype=meta.get("dtype") or first.dtype,
                        table=StepTable.concat(tables), signals=signals, ops=dict(ops),
                        classified_us=classification(kept), utilization=utilization(kept)), warnings


def utilization(analyses: list[TraceAnalysis]) -> Utilization | None:
    parts = [a.utilization for a in analyses if a.utilization]
    if not parts:
        return None
    window = sum(p.window_ms for p in parts)
    busy = sum(p.window_ms * p.busy_fraction for p in parts)
    return Utilization(window, busy / window if window else 0.0)


def classification(analyses: list[TraceAnalysis]) -> KernelClassification | None:
    parts = [a.classified_us for a in analyses if a.classified_us]
    if not parts:
        return None
    return KernelClassification(*(sum(getattr(p, f.name) for p in parts) for f in fields(KernelClassification)))
