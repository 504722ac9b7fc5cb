"""small_batch: the costs a larger batch spreads over more tokens. Host dispatch and launch time while the device
idles, idle gaps shorter than the short-gap threshold between ops, the fixed per-op cost of compute and copy ops,
the work done once per step on parameters, and 2-D matmuls with a dimension under SMALL_DIM (their time beyond
their FLOPs at P_run). The fix is the largest batch the memory holds, up to BATCH_FACTOR times."""

from typing import NotRequired

from profiler.diagnosis.ceilings import SmallMatmulBounds, batch_speedup, small_matmul_bounds, small_matmul_words
from profiler.diagnosis.finding import CauseEntry, Finding
from profiler.diagnosis.measured import BatchMeasurement, batch_measurement_words, measured_batch_speedup
from profiler.diagnosis.memory_plan import BatchPlan, batch_plan, memory_plan_words
from profiler.mfu.records import Evidence, LedgerEntry
from profiler.mfu.vocabulary import settings
from profiler.settings import BATCH_FACTOR, MEGA, PYTHON_SHARE, SMALL_DIM, TERA


class SmallBatchFacts(SmallMatmulBounds, BatchPlan, BatchMeasurement):
    host_recorded: bool  # False in a device-only trace
    host_overhead_ms: float
    short_idle_ms: float
    fixed_ms: float
    parameter_ms: float
    ops_per_step: float
    mflop_per_op: NotRequired[float]
    kernels_per_step: NotRequired[float]
    median_kernel_us: NotRequired[float]
    small_dim: NotRequired[int]
    small_matmul_ms: NotRequired[float]
    small_matmul_tflop_per_s: NotRequired[float]
    small_matmul_of_peak_run_pct: NotRequired[float]
    python_ms: NotRequired[float]
    profiler_ms: NotRequired[float]
    graph_launches_per_step: NotRequired[float]


def rule(entry: LedgerEntry, evidence: Evidence) -> Finding[SmallBatchFacts]:
    seen = evidence.observed
    facts = overhead_facts(entry, evidence)
    meta = settings(evidence.meta)
    if "batch_size" in meta:  # a run that states its configuration: its keys
        bigger = ("raise the micro-batch (batch_size) or block_size, lowering gradient_accumulation_steps to keep "
                  "the tokens per step")
    elif seen.training:
        bigger = ("raise the per-device batch (more samples, or longer sequences / larger inputs per sample), with "
                  "fewer gradient-accumulation steps to keep the global batch")
    else:  # inference: no backward pass in the steps
        bigger = "batch more requests or samples per forward pass"
    overhead = ("CUDA graphs (torch.compile(mode='reduce-overhead'))" if seen.compiled_regions
                else "torch.compile or CUDA graphs") + " to cut per-op overhead"
    if seen.graph_launches:  # the run replays graphs already: what remains is launched outside them
        facts["graph_launches_per_step"] = seen.graph_launches
        overhead = "capture more of the step in the CUDA graphs it already replays"
    plan = batch_plan(evidence, BATCH_FACTOR)  # the largest batch the memory holds, up to BATCH_FACTOR times
    facts = {**facts, **small_matmul_bounds(evidence), **plan}
    factor = plan.get("fit_factor", BATCH_FACTOR)
    if factor < 2:
        return Finding(facts=facts, fix=f"{NO_LARGER_BATCH}; {overhead}", config=None, fix_speedup=None)
    if "fit_batch_size" in plan:
        bigger += (f" (batch {plan['fit_batch_size']}: {plan['fit_peak']:.2f} of {plan['memory_capacity']:.2f} "
                   f"{plan['memory_unit']} predicted)")
    measured = measured_batch_speedup(evidence, BATCH_FACTOR, factor)
    if measured:
        facts = {**facts, **measured[1]}
    config = {"batch_size": factor * meta["batch_size"]} if "batch_size" in meta else None
    return Finding(facts=facts, fix=f"{bigger}; {overhead}", config=config,
                   fix_speedup=measured[0] if measured else batch_speedup(entry.points, factor))


NO_LARGER_BATCH = "free memory first (the evidence gives what each way frees and costs), then raise the batch"


def overhead_facts(entry: LedgerEntry, evidence: Evidence) -> SmallBatchFacts:
    """The per-op and per-step costs the trace shows: dispatch, short gaps, fixed costs, small matmuls."""
    seen = evidence.observed
    ops_per_step = seen.host_ops
    facts: SmallBatchFacts = {
        "host_recorded": evidence.kind == "cpu" or bool(seen.host_ops),
        "host_overhead_ms": evidence.breakdown["host_overhead"].ms, "short_idle_ms": evidence.short_idle_ms,
        "fixed_ms": evidence.fixed_ms, "parameter_ms": evidence.parameter_ms, "ops_per_step": ops_per_step}
    if evidence.flops:
        facts["mflop_per_op"] = evidence.flops / max(ops_per_step, 1) / MEGA
    if seen.median_kernel_us is not None:
        facts["kernels_per_step"] = seen.kernels
        facts["median_kernel_us"] = seen.median_kernel_us
    if seen.small_matmul_flop_per_s is not None:
        rate = seen.small_matmul_flop_per_s / TERA
        facts = {**facts, "small_dim": SMALL_DIM, "small_matmul_ms": seen.small_matmul_ms,
                 "small_matmul_tflop_per_s": rate}
        if evidence.peak_run:
            facts["small_matmul_of_peak_run_pct"] = 100 * rate * TERA / evidence.peak_run
    if evidence.python_ms >= PYTHON_SHARE * entry.ms:
        facts["python_ms"] = evidence.python_ms
    if evidence.profiler_ms:
        facts["profiler_ms"] = evidence.profiler_ms
    return facts


def evidence_words(f: SmallBatchFacts) -> str:
    parts = [f"host dispatch/launch overhead {f['host_overhead_ms']:.2f} ms/step",
             f"short idle gaps between ops {f['short_idle_ms']:.2f} ms/step",
             f"fixed per-op cost of compute and copy ops {f['fixed_ms']:.2f} ms/step (each op charged a near-empty "
             "op's duration)",
             f"work done once per step on parameters (optimizer, gradient clipping, weight casts) "
             f"{f['parameter_ms']:.2f} ms/step",
             f"{f['ops_per_step']:,.0f} ops per step"
             + (f", {f['mflop_per_op']:.2f} MFLOP per op" if "mflop_per_op" in f else "")]
    if not f["host_recorded"]:
        parts.insert(0, "the host was not recorded (a device-only trace): the device's short gaps between kernels "
                        "are most likely launch overhead, though a trace of the host would have to show it")
    if "kernels_per_step" in f:
        parts.append(f"{f['kernels_per_step']:,.0f} kernels per step, median {f['median_kernel_us']:.1f} µs")
    if "graph_launches_per_step" in f:
        parts.append(f"{f['graph_launches_per_step']:,.1f} CUDA graph launches per step: the rest is launched op by op")
    if "small_matmul_ms" in f:
        of_peak = (f" ({f['small_matmul_of_peak_run_pct']:.0f}% of P_run)"
                   if "small_matmul_of_peak_run_pct" in f else "")
        parts.append(f"matmuls with a dimension < {f['small_dim']}: {f['small_matmul_ms']:.2f} ms/step at "
                     f"{f['small_matmul_tflop_per_s']:.3f} TFLOP/s{of_peak}")
    if "python_ms" in f:
        parts.append(f"Python frames between ops {f['python_ms']:.2f} ms/step with the device idle")
    if "profiler_ms" in f:
        parts.append(f"less the profiler's own recording cost, {f['profiler_ms']:.2f} ms/step, taken out")
    if "memory_bound_matmul_count" in f:
        parts.append(small_matmul_words(f))
    if "measured_batch_speedup" in f:
        parts.append(batch_measurement_words(f))
    if "fit_factor" in f:
        parts.append(memory_plan_words(f))
    return "; ".join(parts)


SMALL_BATCH = CauseEntry(rule=rule, evidence=evidence_words, what="per-op overhead, short kernels, small matmuls",
                         categories=("host_overhead", "idle", "matmul", "memory", "other_compute"))
