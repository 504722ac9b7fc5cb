"""The diagnosis: the ledger's causes ranked, each with the measurements behind it, a fix, and where the run
states its configuration the change that applies the fix (`fix_config`, in that program's own keys:
vocabulary.py).

Rules and thresholds:
- a cause is a bottleneck when it costs at least MIN_POINTS points of MFU;
- io: device (on CPU: training thread) waiting in DataLoader / data-loading spans;
- small_batch: host dispatch and launch time while the device idles, idle gaps shorter than 1 ms between ops,
  and 2-D matmuls with a dimension under 64 (their time beyond their FLOPs at P_run);
- non_fused: elementwise, norm, softmax and optimizer time; attention is unfused when softmax and bmm ops
  ran and no scaled-dot-product / flash op did; the optimizer is a per-parameter loop when Optimizer.step
  ran over LOOP_OPS ops (on a GPU: kernels) per step with neither _foreach_ nor _fused_ ops; torch.compile is the fix
  unless torch.compile'd regions ran already;
- memory_ops, communication, precision, matmul_efficiency, other: their ledger time, with the evidence below;
  communication's rule is mfu/communication.py, recomputation's mfu/recomputation.py; the helpers they share
  (Finding, share, ...) mfu/findings.py.
"""

import statistics

from profiler.analysis.records import milliseconds, seconds
from profiler.facts import Facts
from profiler.mfu.ceilings import (
    batch_speedup,
    copy_links,
    elementwise_traffic,
    matmul_bounds,
    op_name,
    small_matmul_bounds,
)
from profiler.mfu.communication import communication
from profiler.mfu.findings import Finding, largest_ms, share, stall_calls
from profiler.mfu.implementations import compiled_regions, optimizer_implementation
from profiler.mfu.ledger import Cause, LedgerUnit
from profiler.mfu.measured import faster_dtype, measured_batch_speedup, measured_fix_speedup, precision_measurement
from profiler.mfu.memory import batch_plan
from profiler.mfu.recomputation import recomputation
from profiler.mfu.records import Bottleneck, Evidence, LedgerEntry
from profiler.mfu.vocabulary import form, in_their_words, settings
from profiler.settings import (
    BATCH_FACTOR,
    HEADLINE_SHARE,
    MEGA,
    MIN_POINTS,
    MS_PER_S,
    PYTHON_SHARE,
    SMALL_DIM,
    TERA,
)
from profiler.trace.classify import ALLOCATOR_CALL, SYNC_CALL


def diagnose(entries: list[LedgerEntry], evidence: Evidence, min_points: float = MIN_POINTS) -> list[Bottleneck]:
    """Bottlenecks sorted by points: each ledger cause of at least min_points, with its facts and fix."""
    out = []
    for entry in entries:
        if entry.points < min_points:
            continue
        if entry.cause not in RULES:  # the time ledger's useful work is no bottleneck
            continue
        found = RULES[entry.cause](entry, evidence)
        config = in_their_words(found.config, evidence.meta)
        out.append(Bottleneck(cause=entry.cause, points=entry.points, ms=entry.ms, what_if_mfu=entry.what_if_mfu,
                              facts=found.facts, fix=found.fix, fix_config=config,
                              what_if_step_ms=entry.what_if_step_ms, speedup=entry.speedup,
                              fix_speedup=found.fix_speedup if config else None,
                              fix_form=form(evidence.meta) if config else None))
    return sorted(out, key=lambda b: -b.points)


def io(entry: LedgerEntry, evidence: Evidence) -> Finding:
    sig = evidence.signals
    meta = settings(evidence.meta)
    facts: Facts = {"kind": evidence.kind, **share(entry.ms, evidence), "dataloaders": list(sig.dataloaders)}
    if "num_workers" in meta:
        facts.update(num_workers=meta["num_workers"], pin_memory=meta.get("pin_memory", False))
    fix = ("load in parallel: DataLoader(num_workers=4, pin_memory=True, persistent_workers=True, "
           "prefetch_factor=2); make __getitem__ cheaper or the storage faster")
    if sig.data_prep_us:
        facts["data_preparation"] = largest_ms(sig.data_prep_us, sig)
        fix = ("decode and preprocess ahead of the step, in DataLoader worker processes (num_workers > 0) or on "
               "the device (GPU video / image decoding, batched tensor transforms), so the device never waits")
    return Finding(facts=facts, fix=fix, config={"num_workers": max(4, 2 * meta.get("num_workers", 0))})


def small_batch(entry: LedgerEntry, evidence: Evidence) -> Finding:
    sig = evidence.signals
    ops_per_step = sig.per_step(sig.host_ops)
    facts: Facts = {"host_recorded": evidence.kind == "cpu" or bool(sig.host_ops),
                    "host_overhead_ms": evidence.breakdown["host_overhead"].ms, "short_idle_ms": evidence.short_idle_ms,
                    "fixed_ms": evidence.fixed_ms, "parameter_ms": evidence.parameter_ms, "ops_per_step": ops_per_step}
    if evidence.flops:
        facts["mflop_per_op"] = evidence.flops / max(ops_per_step, 1) / MEGA
    if sig.kernel_us:
        facts.update(kernels_per_step=sig.per_step(len(sig.kernel_us)),
                     median_kernel_us=statistics.median(sig.kernel_us))
    if sig.small_matmul_us:
        rate = sig.small_matmul_flops / seconds(sig.small_matmul_us) / TERA
        facts.update(small_dim=SMALL_DIM, small_matmul_ms=milliseconds(sig.per_step(sig.small_matmul_us)),
                     small_matmul_tflop_per_s=rate)
        if evidence.peak_run:
            facts["small_matmul_of_peak_run_pct"] = 100 * rate * TERA / evidence.peak_run
    if evidence.python_ms >= PYTHON_SHARE * entry.ms:
        facts["python_ms"] = evidence.python_ms
    if evidence.profiler_ms:
        facts["profiler_ms"] = evidence.profiler_ms
    meta = settings(evidence.meta)
    if "batch_size" in meta:  # a run that states its configuration: its keys
        bigger = ("raise the micro-batch (batch_size) or block_size, lowering gradient_accumulation_steps to keep "
                  "the tokens per step")
    elif sig.backward_ops or sig.optimizers:
        bigger = ("raise the per-device batch (more samples, or longer sequences / larger inputs per sample), with "
                  "fewer gradient-accumulation steps to keep the global batch")
    else:  # inference: no backward pass in the steps
        bigger = "batch more requests or samples per forward pass"
    overhead = ("CUDA graphs (torch.compile(mode='reduce-overhead'))" if compiled_regions(sig)
                else "torch.compile or CUDA graphs") + " to cut per-op overhead"
    if sig.graph_launches:  # the run replays graphs already: what remains is launched outside them
        facts["graph_launches_per_step"] = sig.per_step(sig.graph_launches)
        overhead = "capture more of the step in the CUDA graphs it already replays"
    facts.update(small_matmul_bounds(evidence))
    plan = batch_plan(evidence, BATCH_FACTOR)  # the largest batch the memory holds, up to BATCH_FACTOR times
    facts.update(plan)
    factor = plan.get("fit_factor", BATCH_FACTOR)
    if factor < 2:
        return Finding(facts=facts, fix=f"{NO_LARGER_BATCH}; {overhead}", config=None, fix_speedup=None)
    if "fit_batch_size" in plan:
        bigger += (f" (batch {plan['fit_batch_size']}: {plan['fit_peak']:.2f} of {plan['memory_capacity']:.2f} "
                   f"{plan['memory_unit']} predicted)")
    fix = f"{bigger}; {overhead}"
    measured = measured_batch_speedup(evidence, BATCH_FACTOR, factor)
    if measured:
        facts.update(measured[1])
    config = {"batch_size": factor * meta["batch_size"]} if "batch_size" in meta else None
    return Finding(facts=facts, fix=fix, config=config,
                   fix_speedup=measured[0] if measured else batch_speedup(entry.points, factor))


NO_LARGER_BATCH = "free memory first (the evidence gives what each way frees and costs), then raise the batch"


def non_fused(entry: LedgerEntry, evidence: Evidence) -> Finding:
    sig = evidence.signals
    counts = sig.op_counts
    fused_attention = sum(v for k, v in counts.items() if "attention" in k)
    softmax = sum(v for k, v in counts.items() if "softmax" in k)
    bmm = counts["aten::bmm"] + counts["aten::baddbmm"]
    facts: Facts = {**share(entry.ms, evidence), "optimizer_dispatch_ms": evidence.optimizer_overhead_ms}
    layers = evidence.meta.model.n_layer if evidence.meta.model else None
    if layers:
        facts["ops_per_layer"] = evidence.other_ops_per_step / layers
    facts.update(elementwise_traffic(evidence, entry.removable_ms or 0.0))
    config: dict[str, object] = {}
    fixes: list[str] = []
    if softmax and bmm and not fused_attention:
        facts.update(unfused_attention=True, softmax_per_step=sig.per_step(softmax), bmm_per_step=sig.per_step(bmm))
        fixes.append("F.scaled_dot_product_attention instead of matmul + mask + softmax + matmul")
        config["attention"] = "sdpa"
    optimizer = sig.optimizers.most_common(1)[0][0] if sig.optimizers else "the optimizer"
    seen = optimizer_implementation(sig, evidence.kind, optimizer)
    if seen:
        facts.update(seen)
        fixes.append(f"torch.optim.{optimizer}(..., fused=True), or foreach=True where it has no fused "
                     "implementation")
        config["optimizer_impl"] = "fused"
    regions = compiled_regions(sig)
    if regions:
        facts["compiled_regions_per_step"] = sig.per_step(regions)
    if not fixes and regions:
        fixes.append("already compiled: fewer graph breaks (torch._dynamo.explain lists them), "
                     "torch.compile(mode='max-autotune')")
    elif not fixes:
        fixes.append("torch.compile(model) to fuse elementwise and normalization kernels")
        config["compile"] = True
    measured = measured_fix_speedup(evidence, config)
    if measured:
        facts.update(measured[1])
    return Finding(facts=facts, fix="; ".join(fixes), config=config,
                   fix_speedup=measured[0] if measured else None)


def memory_ops(entry: LedgerEntry, evidence: Evidence) -> Finding:
    sig = evidence.signals
    facts: Facts = {"kind": evidence.kind, **share(entry.ms, evidence), "copied_mb": evidence.copied_bytes / MEGA}
    if evidence.kind == "cpu":  # nothing crosses a link: in-memory copies, casts and fills, named by their ops
        facts["memory_ops"] = [{"name": op_name(op), "per_step": op.count, "ms": op.ms}
                               for op in evidence.ops if op.category == "memory"][:3]
        fix = ("fewer copies in the step: no .to(dtype) / .contiguous() / .clone() that the next op does not need, "
               "tensors made in the dtype and layout they are used in; on a CPU nothing crosses a link, so "
               "pinned memory does not apply")
    else:
        facts["memcpy_kinds"] = [{"kind": k, "mb": sig.per_step(v) / MEGA} for k, v in sig.memcpy_bytes.most_common(3)]
        fix = ("pinned host memory with .to(device, non_blocking=True); fewer .to() / .contiguous() / .clone() in "
               "the step")
    if evidence.allocator_ms >= HEADLINE_SHARE * entry.ms:
        facts.update(share(evidence.allocator_ms, evidence, "allocator"), **stall_calls(sig, ALLOCATOR_CALL))
        fix = ("keep device allocations out of the step: leave PyTorch's caching allocator on (no "
               "PYTORCH_NO_CUDA_MEMORY_CACHING / PYTORCH_NO_HIP_MEMORY_CACHING), tune it with "
               "PYTORCH_CUDA_ALLOC_CONF / PYTORCH_HIP_ALLOC_CONF=expandable_segments:True, and set "
               "torch.backends.cudnn.benchmark = True so cuDNN / MIOpen choose algorithms and workspaces once")
    facts.update(copy_links(evidence))
    pageable = any("Pageable" in k for k in sig.memcpy_bytes)
    pinned = settings(evidence.meta).get("pin_memory")
    return Finding(facts=facts, fix=fix,
                   config={"pin_memory": True} if pageable and not pinned else None)


def precision(entry: LedgerEntry, evidence: Evidence) -> Finding:
    if evidence.unit is LedgerUnit.STEP_TIME:
        return precision_from_kernels(entry, evidence)
    target = faster_dtype(evidence)
    facts: Facts = {"dtype": evidence.dtype or "unknown", "peak_run_tflop_per_s": evidence.peak_run / TERA,
                    "peak_tflop_per_s": evidence.peak / TERA, "fastest_dtype": evidence.fastest_dtype,
                    "ms_at_peak_run": MS_PER_S * evidence.flops / evidence.peak_run,
                    "ms_at_peak": MS_PER_S * evidence.flops / evidence.peak,
                    **precision_measurement(evidence)}
    if target == "float32":  # a CPU that emulates bfloat16 (no AVX-512-BF16 or AMX): float32 is the fast one
        fix = "train in float32 (no bfloat16 autocast): this CPU has no native bfloat16 matmuls"
    else:
        fix = f"{target} autocast (torch.autocast(device_type, dtype=torch.{target}))"
        if evidence.kind != "cpu":
            fix += ", or TF32 for float32 matmuls (torch.backends.cuda.matmul.allow_tf32 = True)"
    return Finding(facts=facts, fix=fix,
                   config={"dtype": target} if target in ("float32", "bfloat16") else None)


def precision_from_kernels(entry: LedgerEntry, evidence: Evidence) -> Finding:
    """Precision in a time ledger: the kernels' names say float32 on SIMT cores, the device table what that
    costs against the device's fastest precision."""
    sig = evidence.signals
    speed = evidence.fp32_speed or 0
    facts: Facts = {"fp32_matmul_ms": milliseconds(sig.per_step(sig.fp32_matmul_total_us)),
                    "fp32_kernels": largest_ms(sig.fp32_matmul_us, sig), "fp32_speed_pct": 100 * speed,
                    "fp32_lost_pct": 100 * (1 - speed)}
    half = "bfloat16" if evidence.fastest_dtype == "bfloat16" else "float16"
    fix = (f"mixed precision: torch.autocast(device_type, dtype=torch.{half})"
           + (" with torch.amp.GradScaler" if half == "float16" else "")
           + ", or TF32 for float32 matmuls where the device has it (torch.backends.cuda.matmul.allow_tf32 = True, "
             "torch.backends.cudnn.allow_tf32 = True)")
    return Finding(facts=facts, fix=fix,
                   config={"dtype": "bfloat16"} if half == "bfloat16" else None)


def warmup(entry: LedgerEntry, evidence: Evidence) -> Finding:
    facts: Facts = {**share(entry.ms, evidence), "one_offs": largest_ms(evidence.signals.warmup_us, evidence.signals)}
    fix = ("profile after warm-up: torch.profiler.profile(schedule=torch.profiler.schedule(wait=1, warmup=1, "
           "active=3)) or a warm-up step before the profiler starts; in a long run these cost nothing, and the "
           "other causes' what-ifs already leave them out")
    return Finding(facts=facts, fix=fix)


def matmul_efficiency(entry: LedgerEntry, evidence: Evidence) -> Finding:
    sig = evidence.signals
    facts: Facts = {"peak_tflop_per_s": evidence.peak / TERA, "fastest_dtype": evidence.fastest_dtype,
                    "precision_ms": evidence.precision_ms, **share(entry.ms, evidence)}
    rate = evidence.counted_flops / sig.per_step_s(sig.matmul_us) / TERA if sig.matmul_us else None
    if rate:
        facts.update(counted_tflop_per_s=rate, counted_of_peak_run_pct=100 * rate * TERA / evidence.peak_run,
                     peak_run_tflop_per_s=evidence.peak_run / TERA, dtype=evidence.dtype)
    timing = evidence.shape_timing
    measured = precision_measurement(evidence)
    if evidence.precision_ms < 0.005 and measured["measured_by"] != "peaks":  # say why precision holds none
        facts.update(precision_takes_none=True, **measured)
    if timing and timing.isolated_us.get(timing.run_dtype):
        alone = timing.flops / seconds(timing.isolated_us[timing.run_dtype]) / TERA
        facts.update(alone_tflop_per_s=alone, alone_dtype=timing.run_dtype,
                     alone_of_peak_run_pct=100 * alone * TERA / evidence.peak_run)
    uncounted = milliseconds(sig.per_step(sig.uncounted_matmul_total_us))
    if uncounted:
        facts["uncounted_matmul_ms"] = uncounted
    facts.update(matmul_bounds(evidence))
    fix = "matmul dimensions multiples of 64 (128 on tensor cores), larger matmuls, torch.compile(mode='max-autotune')"
    return Finding(facts=facts, fix=fix)


def other(entry: LedgerEntry, evidence: Evidence) -> Finding:
    facts: Facts = {"long_gap_ms": milliseconds(evidence.short_gap_us), **share(entry.ms, evidence)}
    fix = ("open the trace in TensorBoard (PyTorch profiler → trace view) at the gaps; keep evaluation, logging, "
           "checkpointing and .item() syncs out of the hot loop")
    if evidence.sync_ms >= HEADLINE_SHARE * entry.ms:
        facts.update(share(evidence.sync_ms, evidence, "sync"), **stall_calls(evidence.signals, SYNC_CALL))
        fix = ("move synchronizations out of the step: no .item(), .cpu(), .tolist() or print of device tensors and "
               "no torch.cuda.synchronize() in the loop (log every N steps), non_blocking copies from pinned memory")
    return Finding(facts=facts, fix=fix)


def unrecorded(entry: LedgerEntry, evidence: Evidence) -> Finding:
    lost = evidence.signals.lost_launches
    facts: Facts = {**share(entry.ms, evidence), "lost_kernels_per_step": evidence.signals.per_step(lost["kernel"]),
                    "lost_graphs_per_step": evidence.signals.per_step(lost["graph"])}
    fix = ("profile a shorter window (torch.profiler.schedule(wait=1, warmup=1, active=2)) so that the profiler's "
           "device buffers keep every record")
    if lost["graph"]:
        fix = ("record the kernels the CUDA graphs replay (CUDA 12 or newer with a recent torch: they carry the "
               "graph's id), or profile once with the graphs off (torch.compile(mode='max-autotune-no-cudagraphs')) "
               "to see what this time is")
    return Finding(facts=facts, fix=fix)


RULES = {Cause.IO: io, Cause.SMALL_BATCH: small_batch, Cause.NON_FUSED: non_fused, Cause.MEMORY_OPS: memory_ops,
         Cause.COMMUNICATION: communication, Cause.RECOMPUTATION: recomputation, Cause.PRECISION: precision,
         Cause.MATMUL_EFFICIENCY: matmul_efficiency, Cause.WARMUP: warmup, Cause.UNRECORDED: unrecorded,
         Cause.OTHER: other}
