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
- memory_ops, communication, precision, matmul_efficiency, other: their ledger time, with the evidence below.
"""

import re
import statistics
from dataclasses import dataclass

from profiler.analysis.signals import Signals
from profiler.mfu.ceilings import (
    batch_speedup,
    copy_links,
    elementwise_traffic,
    matmul_bounds,
    op_name,
    small_matmul_bounds,
)
from profiler.mfu.implementations import compiled_regions, optimizer_implementation
from profiler.mfu.measured import faster_dtype, measured_batch_speedup, measured_fix_speedup, precision_measurement
from profiler.mfu.records import Bottleneck, Evidence, LedgerEntry
from profiler.mfu.vocabulary import form, in_their_words, settings
from profiler.settings import HEADLINE_SHARE, MIN_POINTS, ONE_OFF_COLLECTIVE, PYTHON_SHARE, SMALL_DIM
from profiler.trace.classify import ALLOCATOR_CALL, SYNC_CALL


@dataclass(frozen=True)
class Finding:
    """What a rule says of its cause: the measurements, the fix, and the change that applies it, in our run's
    keys (the diagnosis puts it in the recording program's own words, where it has them)."""

    evidence: str
    fix: str
    config: dict | None = None
    fix_speedup: float | None = None  # what the change in `config` should bring, where it differs from the what-if


def diagnose(entries: list[LedgerEntry], ev: Evidence, min_points: float = MIN_POINTS) -> list[Bottleneck]:
    """Bottlenecks sorted by points: each ledger cause of at least min_points, with its evidence and fix."""
    out = []
    for entry in entries:
        if entry.points < min_points:
            continue
        if entry.cause not in RULES:  # the time ledger's useful work is no bottleneck
            continue
        found = RULES[entry.cause](entry, ev)
        config = in_their_words(found.config, ev.meta)
        out.append(Bottleneck(cause=entry.cause, points=entry.points, ms=entry.ms, what_if_mfu=entry.what_if_mfu,
                              evidence=found.evidence, fix=found.fix, fix_config=config,
                              what_if_step_ms=entry.what_if_step_ms, speedup=entry.speedup,
                              fix_speedup=found.fix_speedup if config else None,
                              fix_form=form(ev.meta) if config else None))
    return sorted(out, key=lambda b: -b.points)


def _share(ms: float, ev: Evidence) -> str:
    return f"{ms:.2f} ms/step ({100 * ms / ev.step_ms:.1f}% of the step)"


def _largest_ms(counter, steps: int) -> str:
    """'a 1.20 ms, b 0.40 ms, c 0.10 ms': the three largest of µs totals, per step."""
    return ", ".join(f"{short_name(name)} {us / 1000 / steps:.2f} ms" for name, us in counter.most_common(3))


PYTHON_FRAME = re.compile(r"\.py\(\d+\)")


def short_name(name: str, width: int = 70) -> str:
    """A kernel's name without 'void ' and its parameter list, its template arguments cut to fit `width`; a
    plain name (an op, a triton kernel) as it is."""
    if PYTHON_FRAME.search(name):  # 'file.py(129): preprocess' is a name, not a parameter list
        return name
    name = name.removeprefix("void ")
    depth, cut = 0, len(name)
    for i, ch in enumerate(name):  # the parameter list starts at the first '(' outside template brackets
        depth += (ch == "<") - (ch == ">")
        if ch == "(" and depth == 0 and i and name[i - 1] != " ":  # 'f (dynamo_timed)' keeps its note
            cut = i
            break
    name = name[:cut]
    return name if len(name) <= width or "<" not in name else name[:width - 3] + "..."


def io(entry: LedgerEntry, ev: Evidence):
    sig: Signals = ev.signals
    n = max(sig.steps, 1)
    kinds = ", ".join(
        "single-process (num_workers=0)" if "SingleProcess" in k else "worker processes" if "MultiProcessing" in k
        else k for k in sig.dataloaders) or "no DataLoader spans (data-loading annotations)"
    meta = settings(ev.meta)
    setting = (f"; the run used num_workers={meta['num_workers']}, pin_memory={meta.get('pin_memory', False)}"
               if "num_workers" in meta else "")
    waiting = "the device idles" if ev.kind != "cpu" else "the training thread waits"
    evidence = f"{waiting} in data loading {_share(entry.ms, ev)}; DataLoader: {kinds}{setting}"
    fix = ("load in parallel: DataLoader(num_workers=4, pin_memory=True, persistent_workers=True, "
           "prefetch_factor=2); make __getitem__ cheaper or the storage faster")
    if sig.data_prep_us:
        evidence += f"; data preparation in Python inside the step (largest frames, per step): " \
                    f"{_largest_ms(sig.data_prep_us, n)}"
        fix = ("decode and preprocess ahead of the step, in DataLoader worker processes (num_workers > 0) or on "
               "the device (GPU video / image decoding, batched tensor transforms), so the device never waits")
    return Finding(evidence, fix, {"num_workers": max(4, 2 * meta.get("num_workers", 0))})


def small_batch(entry: LedgerEntry, ev: Evidence):
    sig: Signals = ev.signals
    n = max(sig.steps, 1)
    parts = [f"host dispatch/launch overhead {ev.breakdown['host_overhead'].ms:.2f} ms/step",
             f"short idle gaps between ops {ev.short_idle_ms:.2f} ms/step",
             "fixed per-op cost of compute and copy ops "
             f"{ev.fixed_ms:.2f} ms/step (each op charged a near-empty op's duration)",
             f"work done once per step on parameters (optimizer, gradient clipping, weight casts) "
             f"{ev.parameter_ms:.2f} ms/step",
             f"{sig.host_ops / n:,.0f} ops per step"
             + (f", {ev.flops / max(sig.host_ops / n, 1) / 1e6:.2f} MFLOP per op" if ev.flops else "")]
    if ev.kind != "cpu" and not sig.host_ops:
        parts.insert(0, "the host was not recorded (a device-only trace): the device's short gaps between kernels "
                        "are most likely launch overhead, though a trace of the host would have to show it")
    if sig.kernel_us:
        median = statistics.median(sig.kernel_us)
        parts.append(f"{len(sig.kernel_us) / n:,.0f} kernels per step, median {median:.1f} µs")
    if sig.small_matmul_us:
        rate = sig.small_matmul_flops / sig.small_matmul_us / 1e6
        of_peak = f" ({100 * rate * 1e12 / ev.peak_run:.0f}% of P_run)" if ev.peak_run else ""
        parts.append(f"matmuls with a dimension < {SMALL_DIM}: {sig.small_matmul_us / n / 1000:.2f} ms/step at "
                     f"{rate:.3f} TFLOP/s{of_peak}")
    if ev.python_ms >= PYTHON_SHARE * entry.ms:
        parts.append(f"Python frames between ops {ev.python_ms:.2f} ms/step with the device idle")
    if ev.profiler_ms:
        parts.append(f"less the profiler's own recording cost, {ev.profiler_ms:.2f} ms/step, taken out")
    meta = settings(ev.meta)
    if "batch_size" in meta:  # a run that states its configuration: its keys
        bigger = ("raise the micro-batch (batch_size) or block_size, lowering gradient_accumulation_steps to keep "
                  "the tokens per step")
    elif sig.backward_ops or sig.optimizers:
        bigger = ("raise the per-device batch (more samples, or longer sequences / larger inputs per sample), with "
                  "fewer gradient-accumulation steps to keep the global batch")
    else:  # inference: no backward pass in the steps
        bigger = "batch more requests or samples per forward pass"
    fix = bigger + "; " + ("CUDA graphs (torch.compile(mode='reduce-overhead'))" if compiled_regions(sig)
                            else "torch.compile or CUDA graphs") + " to cut per-op overhead"
    matmuls = small_matmul_bounds(ev)
    if matmuls:
        parts.append(matmuls)
    measured = measured_batch_speedup(ev, 4)
    if measured:
        parts.append(measured[1])
    return Finding("; ".join(parts), fix, {"batch_size": 4 * meta["batch_size"]} if "batch_size" in meta else None,
                   measured[0] if measured else batch_speedup(entry.points, 4))


def non_fused(entry: LedgerEntry, ev: Evidence):
    sig: Signals = ev.signals
    n = max(sig.steps, 1)
    counts = sig.op_counts
    fused_attention = sum(v for k, v in counts.items() if "attention" in k)
    softmax = sum(v for k, v in counts.items() if "softmax" in k)
    bmm = counts["aten::bmm"] + counts["aten::baddbmm"]
    parts = [f"elementwise / norm / softmax / optimizer time {_share(entry.ms, ev)}, of which "
             f"{ev.optimizer_overhead_ms:.2f} ms dispatching the optimizer's ops"]
    layers = ev.meta.get("model", {}).get("n_layer")
    if layers:
        parts.append(f"{ev.other_ops_per_step / layers:.0f} such ops per layer per step")
    parts.append(elementwise_traffic(ev, entry.removable_ms or 0.0))
    config: dict[str, object] = {}
    fixes: list[str] = []
    if softmax and bmm and not fused_attention:
        parts.append(f"unfused attention: {softmax / n:.0f} softmax and {bmm / n:.0f} bmm ops per step, "
                     "no scaled_dot_product_attention")
        fixes.append("F.scaled_dot_product_attention instead of matmul + mask + softmax + matmul")
        config["attention"] = "sdpa"
    optimizer = sig.optimizers.most_common(1)[0][0] if sig.optimizers else "the optimizer"
    fix = optimizer_implementation(sig, ev.kind, optimizer)
    if fix:
        parts.append(fix)
        fixes.append(f"torch.optim.{optimizer}(..., fused=True), or foreach=True where it has no fused "
                     "implementation")
        config["optimizer_impl"] = "fused"
    regions = compiled_regions(sig)
    if regions:
        parts.append(f"already compiled: {regions / n:.0f} torch.compile region(s) per step, whose generated "
                     "kernels are part of this time")
    if not fixes and regions:
        fixes.append("already compiled: fewer graph breaks (torch._dynamo.explain lists them), "
                     "torch.compile(mode='max-autotune')")
    elif not fixes:
        fixes.append("torch.compile(model) to fuse elementwise and normalization kernels")
        config["compile"] = True
    measured = measured_fix_speedup(ev, config)
    if measured:
        parts.append(measured[1])
    return Finding("; ".join(parts), "; ".join(fixes), config, measured[0] if measured else None)


def memory_ops(entry: LedgerEntry, ev: Evidence):
    sig: Signals = ev.signals
    n = max(sig.steps, 1)
    kinds = ", ".join(f"{k} {v / n / 1e6:.1f} MB" for k, v in sig.memcpy_bytes.most_common(3))
    evidence = f"copies and memsets {_share(entry.ms, ev)}"
    if ev.kind == "cpu":  # nothing crosses a link: in-memory copies, casts and fills, named by their ops
        ops = [op for op in ev.ops if op.category == "memory"][:3]
        evidence += (f"; {ev.copied_bytes / 1e6:.1f} MB per step copied" + (
            ", largest: " + ", ".join(f"{op.count:,.0f} {op_name(op)} per step ({op.ms:.2f} ms)" for op in ops)
            if ops else ""))
        fix = ("fewer copies in the step: no .to(dtype) / .contiguous() / .clone() that the next op does not need, "
               "tensors made in the dtype and layout they are used in; on a CPU nothing crosses a link, so "
               "pinned memory does not apply")
    else:
        evidence += f"; {ev.copied_bytes / 1e6:.1f} MB per step" + (f" ({kinds})" if kinds else "")
        fix = ("pinned host memory with .to(device, non_blocking=True); fewer .to() / .contiguous() / .clone() in "
               "the step")
    if ev.allocator_ms >= HEADLINE_SHARE * entry.ms:
        evidence = (f"allocator calls with the device idle {_share(ev.allocator_ms, ev)}: "
                    f"{_calls(sig, ALLOCATOR_CALL)}; " + evidence)
        fix = ("keep device allocations out of the step: leave PyTorch's caching allocator on (no "
               "PYTORCH_NO_CUDA_MEMORY_CACHING / PYTORCH_NO_HIP_MEMORY_CACHING), tune it with "
               "PYTORCH_CUDA_ALLOC_CONF / PYTORCH_HIP_ALLOC_CONF=expandable_segments:True, and set "
               "torch.backends.cudnn.benchmark = True so cuDNN / MIOpen choose algorithms and workspaces once")
    links = copy_links(ev)
    evidence += f"; {links}" if links else ""
    pageable = any("Pageable" in k for k in sig.memcpy_bytes)
    pinned = settings(ev.meta).get("pin_memory")
    return Finding(evidence, fix, {"pin_memory": True} if pageable and not pinned else None)


def _calls(sig: Signals, pattern) -> str:
    """'1,360 hipFree per step, in aten::miopen_convolution (1,360)': the calls and the ops that made them."""
    n = max(sig.steps, 1)
    calls = ", ".join(f"{v / n:,.0f} {k}" for k, v in sig.stall_calls.most_common() if pattern.match(k))
    sites = ", ".join(f"{k} ({v / n:,.0f})" for k, v in sig.stall_sites.most_common(3))
    return f"{calls or 'none recorded'} per step" + (f", made in {sites}" if sites else "")


def communication(entry: LedgerEntry, ev: Evidence):
    comm = ", ".join(f"{short_name(op.name)} {op.ms:.2f} ms" for op in ev.ops if op.category == "communication")
    evidence = f"collectives not overlapped by compute {_share(entry.ms, ev)}" + (f"; {comm}" if comm else "")
    fix = ("overlap communication with the backward pass (DDP bucket_cap_mb), accumulate gradients locally "
           "(no_sync) and all-reduce less often, or raise the batch per rank")
    kernels = sorted(ev.signals.collective_kernel_us)
    if len(kernels) >= 3 and kernels[-1] >= ONE_OFF_COLLECTIVE * statistics.median(kernels[:-1]):
        median = statistics.median(kernels[:-1])
        evidence += (f"; one collective kernel took {kernels[-1] / 1000:.2f} ms, {kernels[-1] / median:.0f}x the "
                     f"median of the other {len(kernels) - 1} ({median / 1000:.2f} ms): most likely a one-off "
                     "(communicator or connection set-up on first use), or a rank that arrived late")
        fix = "profile after a warm-up step to see the steady state, then: " + fix
    return Finding(evidence, fix, None)


def precision(entry: LedgerEntry, ev: Evidence):
    if ev.unit == "step_time":
        return precision_from_kernels(entry, ev)
    dtype, target = ev.dtype or "unknown", faster_dtype(ev)
    evidence = (f"matmuls ran in {dtype}: the device's large GEMMs do {ev.peak_run / 1e12:.3g} TFLOP/s in it "
                f"against {ev.peak / 1e12:.3g} in {ev.fastest_dtype or 'its fastest precision'}; the model's FLOPs "
                f"need {1000 * ev.flops / ev.peak_run:.2f} ms/step at the first, {1000 * ev.flops / ev.peak:.2f} at "
                "the second; " + precision_measurement(ev))
    if target == "float32":  # a CPU that emulates bfloat16 (no AVX-512-BF16 or AMX): float32 is the fast one
        fix = "train in float32 (no bfloat16 autocast): this CPU has no native bfloat16 matmuls"
    else:
        fix = f"{target} autocast (torch.autocast(device_type, dtype=torch.{target}))"
        if ev.kind != "cpu":
            fix += ", or TF32 for float32 matmuls (torch.backends.cuda.matmul.allow_tf32 = True)"
    return Finding(evidence, fix, {"dtype": target} if target in ("float32", "bfloat16") else None)


def precision_from_kernels(entry: LedgerEntry, ev: Evidence):
    """Precision in a time ledger: the kernels' names say float32 on SIMT cores, the device table what that
    costs against the device's fastest precision."""
    sig: Signals = ev.signals
    n = max(sig.steps, 1)
    fp32_ms = sum(sig.fp32_matmul_us.values()) / n / 1000
    evidence = (f"float32 matmul and convolution kernels on the SIMT cores {fp32_ms:.2f} ms/step (largest: "
                f"{_largest_ms(sig.fp32_matmul_us, n)}); the device does {100 * (ev.fp32_speed or 0):.0f}% of its "
                f"fastest rate in float32, so they lose {100 * (1 - (ev.fp32_speed or 0)):.0f}% of their time")
    half = "bfloat16" if ev.fastest_dtype == "bfloat16" else "float16"
    fix = (f"mixed precision: torch.autocast(device_type, dtype=torch.{half})"
           + (" with torch.amp.GradScaler" if half == "float16" else "")
           + ", or TF32 for float32 matmuls where the device has it (torch.backends.cuda.matmul.allow_tf32 = True, "
             "torch.backends.cudnn.allow_tf32 = True)")
    return Finding(evidence, fix, {"dtype": "bfloat16"} if half == "bfloat16" else None)


def warmup(entry: LedgerEntry, ev: Evidence):
    sig: Signals = ev.signals
    n = max(sig.steps, 1)
    evidence = (f"one-off costs inside the recorded window while the device idled {_share(entry.ms, ev)}: "
                f"{_largest_ms(sig.warmup_us, n)} (their own host time: compilation, lazy loading of kernels on their "
                "first launch, library set-up on a first call)")
    fix = ("profile after warm-up: torch.profiler.profile(schedule=torch.profiler.schedule(wait=1, warmup=1, "
           "active=3)) or a warm-up step before the profiler starts; in a long run these cost nothing, and the "
           "other causes' what-ifs already leave them out")
    return Finding(evidence, fix, None)


def matmul_efficiency(entry: LedgerEntry, ev: Evidence):
    sig: Signals = ev.signals
    rate = ev.counted_flops * max(sig.steps, 1) / sig.matmul_us / 1e6 if sig.matmul_us else None
    evidence = (f"matmul time beyond what the FLOPs need at P ({ev.peak / 1e12:.3g} TFLOP/s, "
                f"{ev.fastest_dtype or 'the fastest precision'}) that precision ({ev.precision_ms:.2f} ms) and the "
                f"other causes do not take {_share(entry.ms, ev)}"
                + (f"; counted matmuls run at {rate:.3g} TFLOP/s, {100 * rate * 1e12 / ev.peak_run:.0f}% of "
                   f"P_run ({ev.peak_run / 1e12:.3g} TFLOP/s in {ev.dtype})" if rate else ""))
    timing = ev.shape_timing
    if timing and ev.precision_ms < 0.005:
        evidence += "; precision takes none of it: " + precision_measurement(ev)
    if timing and timing.isolated_us.get(timing.run_dtype):
        alone = timing.flops / timing.isolated_us[timing.run_dtype] / 1e6
        evidence += (f"; timed alone on this machine, their shapes reach {alone:.3g} TFLOP/s in {timing.run_dtype} "
                     f"({100 * alone * 1e12 / ev.peak_run:.0f}% of P_run): the rest of the gap to P_run is the "
                     "shapes themselves")
    uncounted = sum(sig.uncounted_matmul_us.values()) / max(sig.steps, 1) / 1000
    if uncounted:
        evidence += (f"; {uncounted:.2f} ms/step of the matmul time ran in ops whose FLOPs are not counted, so part "
                     "of this is work F_counted leaves out")
    bounds = matmul_bounds(ev)
    evidence += f"; {bounds}" if bounds else ""
    fix = "matmul dimensions multiples of 64 (128 on tensor cores), larger matmuls, torch.compile(mode='max-autotune')"
    return Finding(evidence, fix, None)


def other(entry: LedgerEntry, ev: Evidence):
    sig: Signals = ev.signals
    evidence = (f"idle stretches of {ev.short_gap_us / 1000:g} ms or more with no op recorded {_share(entry.ms, ev)}: "
                "synchronizations, Python outside ops, work the profiler did not record")
    fix = ("open the trace in TensorBoard (PyTorch profiler → trace view) at the gaps; keep evaluation, logging, "
           "checkpointing and .item() syncs out of the hot loop")
    if ev.sync_ms >= HEADLINE_SHARE * entry.ms:
        evidence = (f"the host synchronizes with the device while it idles {_share(ev.sync_ms, ev)}: "
                    f"{_calls(sig, SYNC_CALL)}")
        fix = ("move synchronizations out of the step: no .item(), .cpu(), .tolist() or print of device tensors and "
               "no torch.cuda.synchronize() in the loop (log every N steps), non_blocking copies from pinned memory")
    return Finding(evidence, fix, None)


RULES = {"io": io, "small_batch": small_batch, "non_fused": non_fused, "memory_ops": memory_ops,
         "communication": communication, "precision": precision, "matmul_efficiency": matmul_efficiency,
         "warmup": warmup, "other": other}
