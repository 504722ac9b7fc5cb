"""The `mfu-report/1` of docs/DESIGN.md: a job's typed result as a Report (report/model.py), its JSON, and a
saved report read back into the same type.

This module computes nothing: every number it writes was made by the stages before it.
"""

from dataclasses import asdict
from pathlib import Path

import msgspec
from msgspec import UNSET

from profiler.diagnosis.causes import evidence_sentence
from profiler.facts import Note
from profiler.mfu.job import AGGREGATION, JobResult
from profiler.mfu.ledger import LedgerUnit
from profiler.mfu.parallelism import display_names
from profiler.mfu.records import Figures, Mfu, OpRow
from profiler.report import model
from profiler.report.model import SCHEMA, Report, json_data
from profiler.report.notes import LOST, lacks, note_data, note_text
from profiler.trace.errors import TraceError

MAX_NAMED = 5  # non-finite figures named in their warning; the count says how many there were


def flops_per_step(m: Mfu) -> model.FlopsPerStep:
    """The FLOPs per step, analytic and counted, with the counted ones' account where it was made."""
    a = m.account
    parts = dict(forward=a.forward, backward=a.backward, recomputed=a.recomputed, outside=a.outside) if a else {}
    return model.FlopsPerStep(analytic=m.flops_analytic, counted=m.flops_counted, **parts)


def report_of(result: JobResult) -> Report:
    """The job's report, with a warning where a figure is not finite (the JSON writes it as null)."""
    report = made(result)
    _, bad = json_data(report)
    if not bad:
        return report
    note = Note("non_finite_figures", {"figures": bad[:MAX_NAMED], "count": len(bad)})
    return msgspec.structs.replace(report, warnings=[*report.warnings, note_text(note)],
                                   warnings_data=[*report.warnings_data,
                                                  msgspec.convert(note_data(note), model.WarningData)])


def made(result: JobResult) -> Report:
    peak, bw = result.peak, result.bandwidth
    device = model.Device(
        name=result.device_name, kind=result.kind, dtype=result.dtype,
        peak_flops=peak.peak_flops if peak else None, peak_flops_run=peak.peak_flops_run if peak else None,
        peak_source=peak.source if peak else None, peak_note=peak.note if peak else None,
        bandwidth=bw.bytes_per_s if bw else None, bandwidth_source=bw.source if bw else None,
        link_bandwidth=bw.link_bytes_per_s if bw else None, bandwidth_note=bw.note if bw else None)
    several = bool(result.per_rank)
    return Report(
        source=model.Source(paths=result.paths, ranks=result.ranks, steps=result.steps,
                            torch_version=result.torch_version, world_size=result.world_size,
                            config=result.config),
        device=device, job_aggregation=AGGREGATION if several else UNSET,
        health=model.Health(recorded=vars(result.recorded),
                            lacks=[model.Lack(**lack) for lack in lacks(vars(result.recorded))],
                            lost=[note_text(n) for n in result.warnings if n.code in LOST]),
        **figures_fields(result.figures),
        warnings=[note_text(n) for n in result.warnings],
        warnings_data=[msgspec.convert(note_data(n), model.WarningData) for n in result.warnings],
        conventions=result.conventions,
        per_rank=[model.RankFigures(rank=a.rank, **figures_fields(a.figures)) for a in result.per_rank]
        if several else UNSET,
        stragglers=[model.Straggler(rank=s.rank, excess_ms=s.excess_ms, category=s.category)
                    for s in result.stragglers] if several else UNSET)


def figures_fields(f: Figures) -> dict:
    """The report's figures of a job or a rank, as the fields of model.Figures."""
    m = f.mfu
    time_ledger = f.ledger_unit is LedgerUnit.STEP_TIME
    return dict(
        ledger_unit=LedgerUnit.STEP_TIME.value if time_ledger else UNSET,  # absent: points of MFU
        step_time_ms=model.StepTime(mean=f.step_time_ms.mean, min=f.step_time_ms.min, max=f.step_time_ms.max,
                                    cv=f.step_time_ms.cv),
        device_utilization=None if f.device_utilization is None else model.DeviceUtilization(
            **asdict(f.device_utilization)),
        mfu=model.MfuFigures(analytic=m.analytic, counted=m.counted, analytic_from=m.analytic_from, hfu=m.counted,
                             flops_per_step=flops_per_step(m)),
        breakdown={c: model.CategoryShare(ms=s.ms, fraction=s.fraction) for c, s in f.breakdown.items()},
        ledger=[model.LedgerRow(cause=e.cause, points=e.points, ms=e.ms, what_if_mfu=e.what_if_mfu,
                                interval=None if e.low is None or e.high is None else [e.low, e.high],
                                what_if_step_ms=e.what_if_step_ms if time_ledger else UNSET,
                                speedup=e.speedup if time_ledger else UNSET) for e in f.ledger],
        bottlenecks=[model.Bottleneck(
            cause=b.cause, points=b.points, ms=b.ms, what_if_mfu=b.what_if_mfu,
            evidence=evidence_sentence(b.cause, b.facts),
            fix=b.fix, facts=b.facts,  # the numbers of the evidence, by name (each cause's module words them)
            what_if_step_ms=b.what_if_step_ms if b.speedup is not None else UNSET,
            speedup=b.speedup if b.speedup is not None else UNSET,
            fix_config=b.fix_config or UNSET, fix_form=b.fix_form if b.fix_config else UNSET,
            fix_speedup=UNSET if b.fix_speedup is None else b.fix_speedup) for b in f.bottlenecks],
        top_ops=[model.TopOp(name=o.name, category=o.category, count=o.count, ms=o.ms, flops=o.flops,
                             tflops_per_s=o.tflops_per_s, bytes=o.bytes or None,
                             roofline=None if o.roofline is None else model.Roofline(**asdict(o.roofline)))
                 for o in f.top_ops],
        classification_ms=None if f.classification_ms is None else model.Classification(
            **asdict(f.classification_ms)),
        copied_bytes_per_step=f.copied_bytes_per_step, matmul_without_flops_ms=f.matmul_without_flops_ms,
        communication=None if f.communication is None else model.Communication(
            total_ms=f.communication.total_ms, exposed_ms=f.communication.exposed_ms,
            exposed_fraction=f.communication.exposed_fraction, calls_per_step=f.communication.calls_per_step,
            bytes_per_step=f.communication.bytes_per_step,
            parallelism=display_names(f.communication.parallelism),
            collectives=[model.CollectiveRow(**asdict(r)) for r in f.communication.collectives],
            group_size=f.communication.group_size, backend=f.communication.backend,
            fsdp_all_gather_ms=f.communication.fsdp_all_gather_ms, micro_batches=f.communication.micro_batches,
            link=f.communication.link, link_gb_per_s=f.communication.link_gb_per_s),
        per_step=[model.StepRow(step=s.step, ms=s.ms, **s.categories, ledger=s.points) for s in f.per_step],
        ops=[shaped(o) for o in f.ops], kernels=[shaped(o) for o in f.kernels],
        profiler_cost=None if f.profiler_cost is None else model.ProfilerCost(**asdict(f.profiler_cost)),
        memory=None if f.memory is None else model.Memory(
            **{k: v for k, v in asdict(f.memory).items() if k not in ("rank", "median_step")},
            rank=UNSET if f.memory.rank is None else f.memory.rank,
            median_step=None if f.memory.median_step is None else model.MemoryCurve(**asdict(f.memory.median_step))))


def saved_report(path: Path) -> Report | None:
    """A saved mfu-report/1, or None when the file is not one. Only a file whose opening names the schema is read
    whole (a trace given to analyze is never decoded twice); one that names it and does not follow it is a
    TraceError."""
    if not (path.is_file() and path.suffix == ".json"):
        return None
    try:
        with open(path, "rb") as f:
            if f'"schema": "{SCHEMA}"'.encode() not in f.read(256):
                return None
        raw = path.read_bytes()
    except OSError:
        return None
    try:
        report = msgspec.json.decode(raw, type=Report)
    except msgspec.DecodeError as e:
        raise TraceError(f"{path}: names {SCHEMA} but does not follow it ({e})") from None
    return report if report.schema == SCHEMA else None


def shaped(o: OpRow) -> model.OpShape:
    return model.OpShape(name=o.name, shapes=o.shapes, category=o.category, count=o.count, ms=o.ms, flops=o.flops,
                         tflops_per_s=o.tflops_per_s)
