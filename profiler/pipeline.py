"""A trace, a folder of traces or a run folder through every stage, to the job's typed result or its JSON.

files → analyze_file (load, links, steps, FLOPs, breakdown, signals) → merge_rank per rank → inputs (peak,
F_model) → attribute per rank → diagnose → job_figures and stragglers (several ranks) → schema.report_of.
"""

import json
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import msgspec
from tqdm import tqdm

from profiler.analysis.per_file import STAGES, analyze_file
from profiler.analysis.per_rank import merge_rank
from profiler.analysis.records import TraceAnalysis
from profiler.analysis.timeline import timeline_json
from profiler.diagnosis.causes import diagnose
from profiler.executors import local_workers, run_here, run_on_cluster
from profiler.facts import Note
from profiler.mfu.attribution import Attribution, attribute
from profiler.mfu.consistency import violations
from profiler.mfu.inputs import learn_peak, rank_model_flops, resolve
from profiler.mfu.job import JobResult, job_figures, stragglers, with_stragglers
from profiler.mfu.memory import memory_figures
from profiler.mfu.peak import NARROW_FORMATS, table_peaks
from profiler.mfu.records import RankInputs
from profiler.mfu.vocabulary import run_config
from profiler.report.model import Report, to_json
from profiler.report.schema import report_of, saved_report
from profiler.settings import MEMORY_USABLE, TOP_OPS, Options
from profiler.trace.errors import TraceError
from profiler.trace.load import trace_files
from profiler.trace.location import Location, is_url


def analyze_path(path: Location, options: Options) -> dict:
    """The mfu-report/1 JSON of a trace file or a folder of traces (a local path or an fsspec URL). Raises
    TraceError when nothing can be analysed."""
    return to_json(report_of(analyze_job(path, options)))


def load_report(path: Location, options: Options) -> Report:
    """A saved mfu-report/1 as it is, or the report of a trace, a folder of traces or a run folder."""
    return (None if is_url(path) else saved_report(Path(path))) or report_of(analyze_job(path, options))


def analyze_view(path: Location, options: Options) -> tuple[Report, dict | None]:
    """The report and the step timeline (of the first file's median step) that the dashboard shows."""
    result = analyze_job(path, options, timeline=True)
    return report_of(result), timeline_json(result.timeline) if result.timeline else None


def analyze_job(path: Location, options: Options, timeline: bool = False) -> JobResult:
    files = listed_on_cluster(str(path), options.scheduler) if options.scheduler and is_url(path) else trace_files(path)
    if len(files) == 1 and not options.scheduler:  # on a cluster, even one file is read where it is
        with progress_bar(options, len(STAGES), "stage") as bar:
            done = lambda stage: bar.set_postfix_str(stage, refresh=False) or bar.update()  # noqa: E731
            analyses = [analyze_file(files[0], options.short_gap_us, timeline, done, readers=options.jobs)]
            skipped = []
    else:
        results = analyze_files(files, options, timeline)
        analyses = [r for r in results if isinstance(r, TraceAnalysis)]
        skipped = [r for r in results if isinstance(r, str)]
    if not analyses:
        raise TraceError(f"{path}: none of its {len(files)} files could be analysed (first: {skipped[0]})")
    runs = {run_signature(a) for a in analyses}
    if len(runs) > 1:
        raise TraceError(f"{path}: the folder mixes traces of {len(runs)} different runs (model, world size or "
                         "device differ): analyze them one by one")
    result = build(analyses, options)
    return replace(result, warnings=[Note("skipped_file", {"reason": s}) for s in skipped] + result.warnings,
                   timeline=analyses[0].timeline)


def analyze_files(files: list[Location], options: Options, timeline: bool = False) -> list:
    """Each file through the per-file stages, in `options.jobs` worker processes here or on the Dask cluster at
    `options.scheduler` (executors.py), each handing back the compact per-file result; a file that cannot be
    read, or whose task failed, gives its one-line reason."""
    bar = progress_bar(options, len(files), "file")
    items = [(f, options.short_gap_us, timeline and i == 0) for i, f in enumerate(files)]
    try:
        if options.scheduler:
            return run_on_cluster(analyze_one, items, options.scheduler, bar)
        return run_here(analyze_one, items, local_workers(files, options.jobs), bar)
    finally:
        bar.close()


def listed_on_cluster(url: str, scheduler: str) -> list[Location]:
    """A URL's trace files as a worker lists them: the storage may be reachable from the cluster only."""
    with progress_bar(Options(), 1, "listing") as bar:
        found = run_on_cluster(trace_files, [(url,)], scheduler, bar)[0]
    if isinstance(found, str):
        raise TraceError(found)
    return found


def progress_bar(options: Options, total: int, unit: str) -> tqdm:
    """A bar on stderr once the work has taken a second, only on a terminal and not with --quiet."""
    return tqdm(total=total, unit=unit, delay=1.0, leave=False, disable=not (options.progress and sys.stderr.isatty()))


def analyze_one(path: Location, short_gap_us: float, timeline: bool) -> TraceAnalysis | str:
    """One file's analysis, or the one line that says why it has none (run by a worker, here or on a cluster)."""
    try:
        return analyze_file(path, short_gap_us, timeline)
    except TraceError as e:
        return str(e)


def build(analyses: list[TraceAnalysis], options: Options) -> JobResult:
    warnings = [w for a in analyses for w in a.warnings]
    ranks = sorted({a.trace.rank() for a in analyses})
    merged = []
    files_of = defaultdict(list)  # rank → its files, grouped once (16,384 ranks make a scan per rank quadratic)
    for a in analyses:
        files_of[a.trace.rank()].append(a)
    for number in ranks:
        one_rank, notes = merge_rank(number, files_of[number])
        merged.append(one_rank)
        warnings += notes
    first = merged[0]
    inputs = resolve(first, options)  # the peak, bandwidth and shape timing of the job: its first rank's
    learn_peak(inputs, first.metadata)
    warnings += inputs.notes
    f_models = [(inputs.f_model, inputs.f_model_notes)]  # (F_model, warnings) per rank
    f_models += [rank_model_flops(r, options) for r in merged[1:]]
    peak, bandwidth, timing = inputs.peak, inputs.bandwidth, inputs.timing
    results: list[Attribution] = []
    said: dict[str, tuple[Note, list[int]]] = {}  # a warning's key → it and the ranks that gave it
    for r, (f_model, notes) in zip(merged, f_models):
        rank_warnings = list(notes)
        memory, memory_notes = memory_figures(r, options)
        result = attribute(r, RankInputs(peak=peak, bandwidth=bandwidth, f_model=f_model, timing=timing,
                                         memory=memory, short_gap_us=options.short_gap_us, top=TOP_OPS))
        rank_warnings += result.warnings + memory_notes
        if result.evidence:
            bottlenecks = diagnose(result.figures.ledger, result.evidence, options.min_points)
            result = replace(result, figures=replace(result.figures, bottlenecks=bottlenecks))
        if len(merged) > 1:
            result, said_now = checked(result)
            rank_warnings += said_now
        results.append(result)
        for w in rank_warnings:
            said.setdefault(w.key(), (w, []))[1].append(r.rank)
    for w, rs in said.values():
        warnings.append(w if len(merged) == 1 else w.of_ranks("all" if len(rs) == len(merged) else rank_ranges(rs)))
    if len(merged) == 1:
        one, said_now = checked(results[0])
        figures, found = one.figures, []
        warnings += said_now
    else:
        job = replace(results[0], figures=job_figures(results, options.min_points))
        found = stragglers(results, options.straggler_threshold)
        job, said_now = checked(job)
        figures = with_stragglers(job.figures, found)
        warnings += said_now
    meta = analyses[0].trace.metadata
    device = first.device_names[0] if first.device_names else (peak.device if peak else None)
    return JobResult(paths=[str(a.trace.path) for a in analyses], ranks=ranks,
                     steps=sorted({int(i) for r in merged for i in r.table.ids}),
                     torch_version=meta.torch_version, device_name=device, kind=first.kind, dtype=first.dtype,
                     peak=peak, bandwidth=bandwidth, figures=figures, per_rank=results if len(merged) > 1 else [],
                     stragglers=found, config=run_config(meta),
                     world_size=world_size(analyses[0], len(ranks)),
                     recorded=first.recorded.of_all([r.recorded for r in merged[1:]]),
                     warnings=list({w.key(): w for w in warnings}.values()),
                     conventions=conventions(first.kind, first.dtype, device, any(o.bytes for o in figures.top_ops),
                                             figures.memory is not None))


def world_size(first: TraceAnalysis, ranks: int) -> int:
    """The job's processes: as the trace's distributedInfo or our metadata says, else the ranks given."""
    said = first.trace.distributed.get("world_size") or first.trace.metadata.world_size
    return said if isinstance(said, int) and said > 0 else ranks


def rank_ranges(ranks: list[int]) -> str:
    """'0-3, 5, 7-9': sorted ranks as runs, so that a warning from 16,000 ranks stays one short line."""
    runs: list[list[int]] = []
    for r in sorted(ranks):
        if runs and r == runs[-1][1] + 1:
            runs[-1][1] = r
        else:
            runs.append([r, r])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in runs)


def checked(result: Attribution) -> tuple[Attribution, list[Note]]:
    """The result with MFU, ledger and diagnosis left empty if its figures break an invariant (numbers that
    cannot be true together are never printed), and a note that says which."""
    broken = violations(result.figures)
    if not broken:
        return result, []
    f = result.figures
    return replace(result, figures=replace(f, mfu=replace(f.mfu, analytic=None, counted=None), ledger=[],
                                           bottlenecks=[])), [Note("inconsistent_report", {"broken": broken})]


def conventions(kind: str, dtype: str | None, device: str | None, bytes_counted: bool = False,
                memory: bool = False) -> list[str]:
    """The FLOP, byte and peak conventions behind the report's numbers, so that other tools' figures compare."""
    out = ["attention FLOPs count the full T×T score and value products, causal or not, as nanoGPT's 12·L·H·Q·T "
           "does (TraceLens counts half of them for causal SDPA)"]
    if bytes_counted:
        out.append("bytes per op: each input read once and each output written once, from the recorded shapes "
                   "(a reduction's output, a norm's statistics and attention's log-sum-exp left out; an optimizer's "
                   "tensor lists as float32); ops without shapes or a known kind have none")
    if dtype in NARROW_FORMATS:
        out.append(f"MFU is against the device's 16-bit peak (P), as Megatron-LM and PaLM count it; the GEMMs ran in "
                   f"{dtype}, whose rate is P_run, above P: MFU can pass what 16-bit matmuls allow, and precision "
                   "takes no time")
    if dtype in ("float32", "tf32") and "tf32" in (table_peaks(device or "") or {}):
        out.append("float32 matmuls are charged at the float32 peak unless they ran faster than it (then at TF32's)")
    if memory:
        out.append("memory: each figure is the worst analysed step's; the batch headroom assumes that what a step "
                   "starts with stays and its transient grows linearly with the batch, up to "
                   f"{100 * MEMORY_USABLE:.0f}% of the capacity (the CUDA context and the allocator's rounding take "
                   "the rest)")
    return out


def run_signature(a: TraceAnalysis) -> str:
    """What every trace of one run shares: its model and world size (from our metadata), or device and world."""
    meta = a.trace.metadata
    world = a.trace.distributed.get("world_size", 1)
    ours = [meta.model, meta.tokens_per_step, meta.flops_per_step, meta.dtype]
    return json.dumps(msgspec.to_builtins([world, ours if meta.recorded() else a.trace.device_names[:1]]),
                      sort_keys=True)
