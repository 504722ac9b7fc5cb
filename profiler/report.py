"""The `mfu-report/1` JSON object of DESIGN.md, from the per-file analyses of a trace or a folder.

Files are grouped by rank; the profiler cycles of one rank are analysed together, each step once. Fields
that no trace can supply are null, never invented.
"""

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from profiler import classify as C
from profiler.analyze import OpStats, TraceAnalysis, analyze_file
from profiler.consistency import implausible_input, tf32_peak, violations
from profiler.diagnosis import diagnose
from profiler.flops import gpt_params, model_flops_per_token
from profiler.ledger import Overheads, cause_seconds, ledger
from profiler.load import TraceError, trace_files
from profiler.peak import Peak, resolve_peak, table_peaks
from profiler.ranks import job_fields, stragglers
from profiler.signals import Signals

SCHEMA = "mfu-report/1"
TOP_OPS = 15
WARMUP_RATIO = 3.0  # a first step this many times the others' median is warm-up, not the loop's usual step


@dataclass
class Options:
    peak_flops: float = 0.0  # user's peak, FLOP/s
    flops_per_step: float = 0.0  # user's analytic model FLOPs per step (a foreign trace)
    model: dict | None = None  # or a GPT's shape (see analytic_flops), for a foreign trace


@dataclass
class RankData:
    """One rank's analyses merged: per-step arrays concatenated in time order, each step number once."""

    rank: int
    analyses: list[TraceAnalysis]
    step_ids: np.ndarray
    step_us: np.ndarray
    breakdown_us: np.ndarray  # (categories, steps)
    flops: np.ndarray
    copied_bytes: np.ndarray
    short_idle_us: np.ndarray
    optimizer_us: np.ndarray  # (host_overhead, idle) inside optimizer steps, per step
    collective_us: np.ndarray
    host_us: np.ndarray  # (allocator, sync, python) parts of host_overhead, per step
    signals: Signals


def merge_rank(rank: int, analyses: list[TraceAnalysis], warnings: list[str]) -> RankData:
    ids, step_us, bd, flops, copied, short_idle, optimizer, collective, host = [], [], [], [], [], [], [], [], []
    signals = Signals()
    seen = set()
    for a in sorted(analyses, key=lambda a: a.trace.origin_us):
        fresh = np.array([i not in seen for i in a.steps.ids])
        if not fresh.all():
            warnings.append(f"{a.trace.path.name}: steps {a.steps.ids[~fresh].tolist()} appear in an earlier file "
                            "of the same rank and are counted once")
        seen.update(a.steps.ids.tolist())
        ids.append(a.steps.ids[fresh])
        step_us.append(a.steps.duration[fresh])
        bd.append(a.breakdown_us[:, fresh])
        flops.append(a.flops[fresh])
        copied.append(a.copied_bytes[fresh])
        short_idle.append(a.short_idle_us[fresh])
        optimizer.append(a.optimizer_us[:, fresh])
        collective.append(a.collective_us[fresh])
        host.append(a.host_us[:, fresh])
        signals.add(a.signals)
    return RankData(rank, analyses, np.concatenate(ids), np.concatenate(step_us), np.concatenate(bd, axis=1),
                    np.concatenate(flops), np.concatenate(copied), np.concatenate(short_idle),
                    np.concatenate(optimizer, axis=1), np.concatenate(collective), np.concatenate(host, axis=1),
                    signals)


def resolve_trace_peak(a: TraceAnalysis, options: Options, warnings: list[str]) -> Peak | None:
    """The peak from the user, the run's own metadata, the device table, or (CPU) a measurement here."""
    meta = a.trace.metadata or {}
    dtype = meta.get("dtype") or a.dtype
    device = a.trace.device_names[0] if a.trace.device_names else ""
    if options.peak_flops > 0:  # taken as P and P_run: the dtype does not matter
        return resolve_peak(device, a.kind, dtype or "float32", user_peak=options.peak_flops)
    if not dtype:
        dtype = "float32"
        warnings.append("the trace records no matmul input types: P_run assumes float32 matmuls")
    if isinstance(meta.get("peak"), dict):
        try:
            return Peak(**meta["peak"])
        except TypeError:
            warnings.append("the trace's recorded peak is malformed and was ignored")
    if a.kind == "cpu":
        import torch

        warnings.append("CPU trace without a recorded peak: the peak was measured on this machine; pass "
                        "--peak-flops if the trace was recorded elsewhere")
        return resolve_peak("", "cpu", dtype, threads=torch.get_num_threads())
    peak = resolve_peak(device, a.kind, dtype)
    if peak is None and device:
        warnings.append(f"no peak known for device {device}: MFU is null (pass --peak-flops)")
    elif peak is None:
        warnings.append("the trace names no device (no deviceProperties): MFU is null (pass --peak-flops)")
    return peak


def build_report(analyses: list[TraceAnalysis], paths: list[str], options: Options) -> dict:
    warnings = [w for a in analyses for w in a.warnings]
    ranks = sorted({a.trace.rank() for a in analyses})
    per_rank = [merge_rank(r, [a for a in analyses if a.trace.rank() == r], warnings) for r in ranks]
    first = analyses[0]
    peak = resolve_trace_peak(first, options, warnings)
    if peak:
        peak, note = tf32_peak(peak, counted_rate(per_rank[0]), peak.device)
        warnings += [note] if note else []
    meta = first.trace.metadata or {}
    report = {
        "schema": SCHEMA,
        "source": {"paths": paths, "ranks": ranks, "steps": sorted({int(i) for r in per_rank for i in r.step_ids}),
                   "torch_version": meta.get("torch_version")},
        "device": {"name": first.trace.device_names[0] if first.trace.device_names else (peak.device if peak else None),
                   "kind": first.kind, "dtype": meta.get("dtype") or first.dtype,
                   "peak_flops": peak.peak_flops if peak else None,
                   "peak_flops_run": peak.peak_flops_run if peak else None,
                   "peak_source": peak.source if peak else None},
    }
    dtype = report["device"]["dtype"]
    body, said = [], defaultdict(list)  # warning → the ranks that gave it
    for r in per_rank:
        rank_warnings = []
        body.append(rank_fields(r, peak, options, meta, dtype, rank_warnings))
        for w in rank_warnings:
            said[w].append(r.rank)
    for w, rs in said.items():
        who = "all ranks" if len(rs) == len(per_rank) else "rank " + ", ".join(map(str, rs))
        warnings.append(w if len(per_rank) == 1 else f"{who}: {w}")
    report.update(body[0] if len(body) == 1 else job_fields(body, ranks))
    for fields in [report] + (body if len(body) > 1 else []):
        broken = violations(fields)
        if broken:  # never print numbers that cannot be true together
            warnings.append("the report failed its own consistency checks (" + "; ".join(broken) + "): MFU, "
                            "the ledger and the diagnosis are left empty; please report it with the trace")
            fields["mfu"].update(analytic=None, counted=None)
            fields["ledger"], fields["bottlenecks"] = [], []
    report["warnings"] = list(dict.fromkeys(warnings))
    report["conventions"] = conventions(report)
    if len(per_rank) > 1:
        report["per_rank"] = [{"rank": r.rank, **b} for r, b in zip(per_rank, body)]
        report["stragglers"] = stragglers(body, ranks)
        for b in report["bottlenecks"]:
            if b["cause"] == "communication" and report["stragglers"]:
                b["evidence"] += "; the others wait for " + ", ".join(
                    f"rank {s['rank']} (+{s['excess_ms']:.2f} ms busy, mostly {s['category']})"
                    for s in report["stragglers"])
    return report


def rank_fields(r: RankData, peak: Peak | None, options: Options, meta: dict, dtype: str | None,
                warnings: list[str]) -> dict:
    n = len(r.step_ids)
    T = r.step_us.mean() / 1e6  # seconds
    if n >= 3 and r.step_us[0] > WARMUP_RATIO * np.median(r.step_us[1:]):
        warnings.append(f"step {r.step_ids[0]} took {r.step_us[0] / 1000:.2f} ms, "
                        f"{r.step_us[0] / np.median(r.step_us[1:]):.0f}x the median of the others "
                        f"({np.median(r.step_us[1:]) / 1000:.2f} ms): most likely warm-up (first allocations, cuDNN / "
                        "MIOpen algorithm search, compilation); the figures average over all steps, per_step has each")
    f_counted = float(r.flops.mean())
    f_model, f_model_from = analytic_flops(options, meta, r.signals, warnings)
    P = peak.peak_flops if peak else None
    mfu = {
        "analytic": f_model / (T * P) if f_model and P else None,
        "counted": f_counted / (T * P) if P and f_counted else None,
        "flops_per_step": {"analytic": float(f_model) if f_model else None, "counted": f_counted},
        "analytic_from": f_model_from,
    }
    if f_model and f_counted and abs(f_counted / f_model - 1) > 0.10:
        warnings.append(flops_gap_note(f_model, f_counted))
    uncounted = r.signals.uncounted_matmul_us
    if sum(uncounted.values()) > 0.05 * r.breakdown_us[C.MATMUL].sum():
        n_steps = max(r.signals.steps, 1)
        warnings.append(f"{sum(uncounted.values()) / n_steps / 1000:.2f} ms/step of matmul time "
                        f"({100 * sum(uncounted.values()) / r.breakdown_us[C.MATMUL].sum():.0f}% of it) ran in ops "
                        "whose FLOPs the trace does not let us count (no recorded shapes, or custom ops); "
                        "F_counted leaves it out; largest: " + ", ".join(
                            f"{name} {us / n_steps / 1000:.2f} ms" for name, us in uncounted.most_common(3)))
    total = r.breakdown_us.sum(axis=1)
    breakdown = {c: {"ms": float(total[k] / n / 1000), "fraction": float(total[k] / r.step_us.sum())}
                 for k, c in enumerate(C.CATEGORIES)}
    ops = top_ops(r.analyses, n)
    fields = {
        "step_time_ms": {"mean": float(r.step_us.mean() / 1000), "min": float(r.step_us.min() / 1000),
                         "max": float(r.step_us.max() / 1000)},
        "device_utilization": utilization(r.analyses),
        "mfu": mfu,
        "breakdown": breakdown,
        "ledger": [],
        "bottlenecks": [],
        "top_ops": ops[:TOP_OPS],
        "classification_ms": classification(r.analyses, n),
        "copied_bytes_per_step": float(r.copied_bytes.mean()),
        "matmul_without_flops_ms": sum(r.signals.uncounted_matmul_us.values()) / max(r.signals.steps, 1) / 1000,
        "communication": communication(r, breakdown),
        "per_step": [{"step": int(i), "ms": float(t / 1000),
                      **{c: float(r.breakdown_us[k, j] / 1000) for k, c in enumerate(C.CATEGORIES)}}
                     for j, (i, t) in enumerate(zip(r.step_ids, r.step_us))],
    }
    flops = f_model or f_counted
    if not (P and flops):
        warnings.append("no peak or no FLOPs: the MFU ledger and the diagnosis are left empty")
        return fields
    problem = implausible_input(peak, counted_rate(r), flops, f_model_from or "F_counted", T,
                                breakdown["matmul"]["ms"] / 1000)
    if problem:
        warnings.append(problem)
        mfu.update(analytic=None, counted=None)
        return fields
    overheads = rank_overheads(r, peak.peak_flops_run)
    seconds = cause_seconds({c: b["ms"] / 1000 for c, b in breakdown.items()}, flops, P, peak.peak_flops_run, overheads)
    if flops / peak.peak_flops_run > breakdown["matmul"]["ms"] / 1000 + 1e-9:
        warnings.append(f"the matmuls took less time than the FLOPs need at P_run ({peak.dtype}): precision is "
                        "capped at the matmul time beyond the FLOPs at P (the matmuls may have run in a faster "
                        "precision than recorded, or F_model counts more than ran)")
    fields["ledger"] = ledger(T, seconds, flops, P)
    ctx = {"step_ms": T * 1000, "breakdown": breakdown, "signals": r.signals, "meta": meta, "kind": r.analyses[0].kind,
           "dtype": dtype, "peak": P, "peak_run": peak.peak_flops_run, "flops": flops, "counted_flops": f_counted,
           "short_idle_ms": 1000 * overheads.short_idle,
           "optimizer_overhead_ms": 1000 * (overheads.optimizer_host + overheads.optimizer_idle),
           "fixed_ms": {"other_compute": 1000 * overheads.fixed_compute, "memory": 1000 * overheads.fixed_memory},
           "parameter_ms": 1000 * (overheads.parameter_compute + overheads.parameter_memory),
           "copied_bytes": float(r.copied_bytes.mean()),
           "allocator_ms": 1000 * overheads.allocator, "sync_ms": 1000 * overheads.sync,
           "python_ms": float(r.host_us[2].mean()) / 1000,
           "top_ops": ops, "other_ops": sum(op["count"] * n for op in ops if op["category"] == "other_compute")}
    fields["bottlenecks"] = diagnose(fields["ledger"], ctx)
    return fields


def counted_rate(r: RankData) -> float | None:
    """FLOP/s of the counted matmul, attention and convolution ops over the time they ran."""
    return float(r.flops.sum()) / (r.signals.matmul_us / 1e6) if r.signals.matmul_us and r.flops.sum() else None


def rank_overheads(r: RankData, peak_run: float) -> Overheads:
    """The seconds per step that the ledger moves between causes, from the rank's signals."""
    sig = r.signals
    per_step = 1e6 * max(sig.steps, 1)  # µs totals over the steps → seconds per step
    optimizer_host, optimizer_idle = r.optimizer_us.mean(axis=1) / 1e6
    return Overheads(
        small_matmul_excess=(sig.small_matmul_us - 1e6 * sig.small_matmul_flops / peak_run) / per_step,
        short_idle=float(r.short_idle_us.mean()) / 1e6,
        fixed_compute=sig.fixed_us["other_compute"] / per_step, fixed_memory=sig.fixed_us["memory"] / per_step,
        parameter_compute=sig.parameter_us["other_compute"] / per_step,
        parameter_memory=sig.parameter_us["memory"] / per_step,
        optimizer_host=optimizer_host, optimizer_idle=optimizer_idle,
        attention_matmul_excess=(sig.attention_us["matmul"] - 1e6 * sig.attention_flops / peak_run) / per_step,
        attention_memory=sig.attention_us["memory"] / per_step,
        attention_host=sig.attention_us["host_overhead"] / per_step,
        allocator=float(r.host_us[0].mean()) / 1e6, sync=float(r.host_us[1].mean()) / 1e6)


def analytic_flops(options: Options, meta: dict, sig: Signals, warnings: list[str]) -> tuple[float | None, str | None]:
    """F_model and where it came from: --flops-per-step, --model (a nanoGPT GPT's n_layer, n_head, n_embd,
    block_size, vocab_size, bias, and tokens_per_step or else the tokens its token embedding looked up per
    step), or the run's metadata; (None, None) when unknown."""
    if options.flops_per_step:
        return options.flops_per_step, "--flops-per-step"
    m = options.model
    if m:
        tokens, source = m.get("tokens_per_step"), "--model"
        if not tokens:
            tokens = sig.embedding_tokens[(m["vocab_size"], m["n_embd"])] / max(sig.steps, 1)
            source = "--model, tokens per step counted at the token embedding"
        if not tokens:
            warnings.append("--model: no aten::embedding on a [vocab_size, n_embd] table in the steps to count the "
                            "tokens by (pass tokens_per_step): F_counted stands in for F_model")
            return None, None
        n_params = gpt_params(m["n_layer"], m["n_embd"], m["vocab_size"], m.get("bias", True))
        per_token = model_flops_per_token(n_params, m["n_layer"], m["n_head"], m["n_embd"], m["block_size"])
        return float(per_token * tokens), source
    if meta.get("flops_per_step"):
        return float(meta["flops_per_step"]), "run metadata"
    warnings.append("model FLOPs unknown (no run metadata, no --flops-per-step or --model): F_counted stands in "
                    "for F_model")
    return None, None


def communication(r: RankData, breakdown: dict) -> dict | None:
    """Collective time per step, how much of it no compute hid, and the calls and bytes where recorded."""
    if not r.signals.collectives and not r.collective_us.any():
        return None
    n = max(r.signals.steps, 1)
    total = float(r.collective_us.mean() / 1000)
    exposed = breakdown["communication"]["ms"]
    return {"total_ms": total, "exposed_ms": exposed, "exposed_fraction": exposed / total if total else None,
            "calls_per_step": {k: v / n for k, v in r.signals.collectives.items()},
            "bytes_per_step": r.signals.collective_bytes / n if r.signals.collective_bytes else None}


def conventions(report: dict) -> list[str]:
    """The FLOP and peak conventions behind the report's numbers, so that other tools' figures compare."""
    out = ["attention FLOPs count the full T×T score and value products, causal or not, as nanoGPT's 12·L·H·Q·T "
           "does (TraceLens counts half of them for causal SDPA)"]
    device = report["device"]
    if device["dtype"] in ("float32", "tf32") and "tf32" in (table_peaks(device["name"] or "") or {}):
        out.append("float32 matmuls are charged at the float32 peak unless they ran faster than it (then at TF32's)")
    return out


def flops_gap_note(f_model: float, f_counted: float) -> str:
    return (f"counted FLOPs are {f_counted / f_model:.2f}× the analytic model FLOPs: the analytic formula counts "
            "the full T×T attention and all parameters; the counted ones miss ops without recorded shapes and "
            "include recomputation and any matmuls outside the model (a foreign model's formula may differ)")


def utilization(analyses: list[TraceAnalysis]) -> dict | None:
    parts = [a.utilization for a in analyses if a.utilization]
    if not parts:
        return None
    window = sum(p["window_ms"] for p in parts)
    busy = sum(p["window_ms"] * p["busy_fraction"] for p in parts)
    return {"window_ms": window, "busy_fraction": busy / window if window else 0.0}


def classification(analyses: list[TraceAnalysis], n_steps: int) -> dict | None:
    if not any(a.classified_us for a in analyses):
        return None
    keys = ("by_op", "by_name", "unclassified")
    return {k: sum(a.classified_us.get(k, 0.0) for a in analyses) / n_steps / 1000 for k in keys}


def top_ops(analyses: list[TraceAnalysis], n_steps: int) -> list[dict]:
    """All ops of the rank by time per step, largest first."""
    merged: dict[str, OpStats] = defaultdict(OpStats)
    for a in analyses:
        for name, stats in a.ops.items():
            merged[name].absorb(stats)
    rows = sorted(merged.items(), key=lambda kv: -kv[1].us)
    return [{"name": name, "category": s.category, "count": s.count / n_steps, "ms": s.us / n_steps / 1000,
             "flops": s.flops / n_steps, "tflops_per_s": s.flops / s.flop_us / 1e6 if s.flop_us and s.flops else None}
            for name, s in rows]


def analyze_path(path: Path, options: Options) -> dict:
    """The report of a trace file or a folder of traces. Raises TraceError when nothing can be analysed."""
    files = trace_files(path)
    analyses, skipped = [], []
    for f in files:
        try:
            analyses.append(analyze_file(f))
        except TraceError as e:
            if len(files) == 1:
                raise
            skipped.append(str(e))
    if not analyses:
        raise TraceError(f"{path}: none of its {len(files)} files could be analysed (first: {skipped[0]})")
    runs = {run_signature(a) for a in analyses}
    if len(runs) > 1:
        raise TraceError(f"{path}: the folder mixes traces of {len(runs)} different runs (model, world size or "
                         "device differ): analyze them one by one")
    report = build_report(analyses, [str(a.trace.path) for a in analyses], options)
    report["warnings"] = [f"skipped {s}" for s in skipped] + report["warnings"]
    return report


def run_signature(a: TraceAnalysis) -> str:
    """What every trace of one run shares: its model and world size (from our metadata), or device and world."""
    meta = a.trace.metadata or {}
    world = a.trace.distributed.get("world_size", 1)
    keys = ("model", "tokens_per_step", "flops_per_step", "dtype")
    return json.dumps([world, [meta.get(k) for k in keys] if meta else a.trace.device_names[:1]], sort_keys=True)


def load_report(path: Path, options: Options) -> dict:
    """A saved mfu-report/1 JSON as it is, or the report of a trace, a folder of traces or a run folder."""
    if path.is_file() and path.suffix == ".json":
        try:
            report = json.loads(path.read_text())
        except ValueError:
            report = None
        if isinstance(report, dict) and report.get("schema") == SCHEMA:
            return report
    return analyze_path(path, options)
