"""The `mfu-report/1` JSON of docs/DESIGN.md: a job's typed result written out, and a saved report read back.

This module computes nothing: every number it writes was made by the stages before it.
"""

import json
from dataclasses import asdict
from pathlib import Path

from profiler.mfu.job import AGGREGATION, JobResult
from profiler.mfu.ledger import LedgerUnit
from profiler.mfu.records import Bottleneck, Figures, LedgerEntry, OpRow
from profiler.report.notes import note_data, note_text
from profiler.report.phrases import evidence

SCHEMA = "mfu-report/1"


def to_json(result: JobResult) -> dict:
    peak, bw = result.peak, result.bandwidth
    report: dict = {
        "schema": SCHEMA,
        "source": {"paths": result.paths, "ranks": result.ranks, "steps": result.steps,
                   "torch_version": result.torch_version},
        "device": {"name": result.device_name, "kind": result.kind, "dtype": result.dtype,
                   "peak_flops": peak.peak_flops if peak else None,
                   "peak_flops_run": peak.peak_flops_run if peak else None,
                   "peak_source": peak.source if peak else None,
                   "peak_note": peak.note if peak else None,
                   "bandwidth": bw.bytes_per_s if bw else None, "bandwidth_source": bw.source if bw else None,
                   "link_bandwidth": bw.link_bytes_per_s if bw else None,
                   "bandwidth_note": bw.note if bw else None},
    }
    if result.per_rank:
        report["job_aggregation"] = AGGREGATION
    report.update(figures_json(result.figures))
    report["warnings"] = [note_text(n) for n in result.warnings]
    report["warnings_data"] = [note_data(n) for n in result.warnings]  # the same warnings as data, in order
    report["conventions"] = result.conventions
    if result.per_rank:
        report["per_rank"] = [{"rank": a.rank, **figures_json(a.figures)} for a in result.per_rank]
        report["stragglers"] = [{"rank": s.rank, "excess_ms": s.excess_ms, "category": s.category}
                                for s in result.stragglers]
    return report


def figures_json(f: Figures) -> dict:
    m = f.mfu
    unit = {} if f.ledger_unit is LedgerUnit.MFU else {"ledger_unit": f.ledger_unit}  # absent: points of MFU
    return {**unit,
        "step_time_ms": {"mean": f.step_time_ms.mean, "min": f.step_time_ms.min, "max": f.step_time_ms.max,
                         "cv": f.step_time_ms.cv},
        "device_utilization": None if f.device_utilization is None else asdict(f.device_utilization),
        "mfu": {"analytic": m.analytic, "counted": m.counted,
                "flops_per_step": {"analytic": m.flops_analytic, "counted": m.flops_counted},
                "analytic_from": m.analytic_from},
        "breakdown": {c: {"ms": s.ms, "fraction": s.fraction} for c, s in f.breakdown.items()},
        "ledger": [ledger_json(e, f.ledger_unit) for e in f.ledger],
        "bottlenecks": [bottleneck_json(b) for b in f.bottlenecks],
        "top_ops": [op_json(o) for o in f.top_ops],
        "classification_ms": None if f.classification_ms is None else asdict(f.classification_ms),
        "copied_bytes_per_step": f.copied_bytes_per_step,
        "matmul_without_flops_ms": f.matmul_without_flops_ms,
        "communication": None if f.communication is None else {
            "total_ms": f.communication.total_ms, "exposed_ms": f.communication.exposed_ms,
            "exposed_fraction": f.communication.exposed_fraction,
            "calls_per_step": f.communication.calls_per_step, "bytes_per_step": f.communication.bytes_per_step},
        "per_step": [{"step": s.step, "ms": s.ms, **s.categories} for s in f.per_step],
        "profiler_cost": None if f.profiler_cost is None else asdict(f.profiler_cost),
    }


def op_json(o: OpRow) -> dict:
    """An op's row: calls, time, FLOPs and bytes per step, and its roofline (null where it cannot be formed)."""
    return {"name": o.name, "category": o.category, "count": o.count, "ms": o.ms, "flops": o.flops,
            "tflops_per_s": o.tflops_per_s, "bytes": o.bytes or None,
            "roofline": None if o.roofline is None else asdict(o.roofline)}


def ledger_json(e: LedgerEntry, unit: LedgerUnit) -> dict:
    item = {"cause": e.cause, "points": e.points, "ms": e.ms, "what_if_mfu": e.what_if_mfu,
            "interval": None if e.low is None else [e.low, e.high]}
    if unit is LedgerUnit.STEP_TIME:
        item.update(what_if_step_ms=e.what_if_step_ms, speedup=e.speedup)
    return item


def bottleneck_json(b: Bottleneck) -> dict:
    item = {"cause": b.cause, "points": b.points, "ms": b.ms, "what_if_mfu": b.what_if_mfu,
            "evidence": evidence(b.cause, b.facts), "fix": b.fix}
    if b.speedup is not None:
        item.update(what_if_step_ms=b.what_if_step_ms, speedup=b.speedup)
    if b.fix_config:
        item["fix_config"] = b.fix_config
        item["fix_form"] = b.fix_form
    if b.fix_speedup is not None:
        item["fix_speedup"] = b.fix_speedup
    item["facts"] = b.facts  # the numbers of the evidence, by name (report/phrases.py)
    return item


def saved_report(path: Path) -> dict | None:
    """A saved mfu-report/1 JSON as it is, or None when the file is not one. Only a file whose opening names the
    schema is read whole (a trace given to analyze is never decoded twice)."""
    if not (path.is_file() and path.suffix == ".json"):
        return None
    try:
        with open(path, "rb") as f:
            if f'"schema": "{SCHEMA}"'.encode() not in f.read(256):
                return None
        report = json.loads(path.read_text())
    except (ValueError, OSError, RecursionError):  # not JSON, unreadable, or nested past the parser's depth
        return None
    return report if isinstance(report, dict) and report.get("schema") == SCHEMA else None
