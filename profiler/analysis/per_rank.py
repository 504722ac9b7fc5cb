"""One rank's files (its profiler cycles) merged into one analysis: the steps in time order, each step once.

A file whose steps all appeared in an earlier file (the same cycle written twice) is left out whole, so that
the per-step table and the signals, the ops and the device time describe the same steps.
"""

from dataclasses import fields

import numpy as np

from profiler.analysis.records import (
    KernelClassification,
    RankAnalysis,
    Signals,
    StepTable,
    TraceAnalysis,
    Utilization,
    merged,
)
from profiler.facts import Note
from profiler.trace.location import file_name


def merge_rank(rank: int, analyses: list[TraceAnalysis]) -> tuple[RankAnalysis, list[Note]]:
    """The rank's files merged, and warnings for the files and steps left out."""
    warnings: list[Note] = []
    analyses = sorted(analyses, key=lambda a: a.trace.origin_us)
    kept, tables, seen = [], [], set()
    for a in analyses:
        fresh = np.array([i not in seen for i in a.table.ids])
        if not fresh.any():
            warnings.append(Note("file_repeats_steps", {"file": file_name(a.trace.path),
                                                        "steps": a.table.ids.tolist()}))
            continue
        if not fresh.all():
            warnings.append(Note("steps_repeated", {"file": file_name(a.trace.path),
                                                    "steps": a.table.ids[~fresh].tolist()}))
        seen.update(a.table.ids.tolist())
        kept.append(a)
        tables.append(a.table.select(fresh))
    signals = Signals()
    for a in kept:
        signals.add(a.signals)
    first = kept[0]
    meta = first.trace.metadata
    return RankAnalysis(rank=rank, paths=[str(a.trace.path) for a in kept], kind=first.kind,
                        device_names=first.trace.device_names, metadata=meta, dtype=meta.dtype or first.dtype,
                        table=StepTable.concat(tables), signals=signals, ops=merged(a.ops for a in kept),
                        kernels=merged(a.kernels for a in kept),
                        classified_us=classification(kept), utilization=utilization(kept),
                        memory=next((a.memory for a in kept if a.memory), None),
                        recorded=first.recorded.of_all([a.recorded for a in kept[1:]]),
                        group_size=int(first.trace.distributed.get("world_size") or 1),
                        comm_backend=str(first.trace.distributed.get("backend") or "")), warnings


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
