"""non_fused: elementwise, norm, softmax and optimizer time, and what fusion removes of it. Attention is unfused
when softmax and bmm ops ran and no scaled-dot-product / flash op did; the optimizer is a per-parameter loop when
Optimizer.step ran over LOOP_OPS ops (on a GPU: kernels) per step with neither _foreach_ nor _fused_ ops;
torch.compile is the fix unless torch.compile'd regions ran already."""

from typing import NotRequired, TypedDict

from profiler.diagnosis.ceilings import ElementwiseTraffic, elementwise_traffic, elementwise_words
from profiler.diagnosis.finding import CauseEntry, Finding, share
from profiler.diagnosis.measured import FixMeasurement, fix_measurement_words, measured_fix_speedup
from profiler.diagnosis.optimizer import OptimizerSeen, optimizer_implementation, optimizer_words
from profiler.diagnosis.words import ShareFacts, share_words
from profiler.mfu.records import Evidence, LedgerEntry


class PerLayer(TypedDict, total=False):
    ops_per_layer: float  # where the model's layers are known


class NonFusedFacts(ShareFacts, PerLayer, ElementwiseTraffic, OptimizerSeen, FixMeasurement):
    optimizer_dispatch_ms: float
    unfused_attention: NotRequired[bool]
    softmax_per_step: NotRequired[float]
    bmm_per_step: NotRequired[float]
    compiled_regions_per_step: NotRequired[float]


def rule(entry: LedgerEntry, evidence: Evidence) -> Finding[NonFusedFacts]:
    seen = evidence.observed
    layers = evidence.meta.model.n_layer if evidence.meta.model else None
    per_layer: PerLayer = {"ops_per_layer": evidence.other_ops_per_step / layers} if layers else {}
    facts: NonFusedFacts = {**share(entry.ms, evidence), "optimizer_dispatch_ms": evidence.optimizer_overhead_ms,
                            **per_layer, **elementwise_traffic(evidence, entry.removable_ms or 0.0)}
    config: dict[str, object] = {}
    fixes: list[str] = []
    if seen.softmax_ops and seen.bmm_ops and not seen.fused_attention_ops:
        facts = {**facts, "unfused_attention": True, "softmax_per_step": seen.softmax_ops,
                 "bmm_per_step": seen.bmm_ops}
        fixes.append("F.scaled_dot_product_attention instead of matmul + mask + softmax + matmul")
        config["attention"] = "sdpa"
    implementation = optimizer_implementation(seen.optimizer)
    if seen.optimizer and implementation:
        facts = {**facts, **implementation}
        fixes.append(f"torch.optim.{seen.optimizer.name}(..., fused=True), or foreach=True where it has no fused "
                     "implementation")
        config["optimizer_impl"] = "fused"
    if seen.compiled_regions:
        facts["compiled_regions_per_step"] = seen.compiled_regions
    if not fixes and seen.compiled_regions:
        fixes.append("already compiled: fewer graph breaks (torch._dynamo.explain lists them), "
                     "torch.compile(mode='max-autotune')")
    elif not fixes:
        fixes.append("torch.compile(model) to fuse elementwise and normalization kernels")
        config["compile"] = True
    measured = measured_fix_speedup(evidence, config)
    if measured:
        facts = {**facts, **measured[1]}
    return Finding(facts=facts, fix="; ".join(fixes), config=config, fix_speedup=measured[0] if measured else None)


def evidence_words(f: NonFusedFacts) -> str:
    parts = [f"elementwise / norm / softmax / optimizer time {share_words(f)}, of which "
             f"{f['optimizer_dispatch_ms']:.2f} ms dispatching the optimizer's ops"]
    if "ops_per_layer" in f:
        parts.append(f"{f['ops_per_layer']:.0f} such ops per layer per step")
    parts.append(elementwise_words(f))
    if f.get("unfused_attention"):
        parts.append(f"unfused attention: {f['softmax_per_step']:.0f} softmax and {f['bmm_per_step']:.0f} bmm ops "
                     "per step, no scaled_dot_product_attention")
    if "optimizer_seen" in f:
        parts.append(optimizer_words(f))
    if "compiled_regions_per_step" in f:
        parts.append(f"already compiled: {f['compiled_regions_per_step']:.0f} torch.compile region(s) per step, whose "
                     "generated kernels are part of this time")
    if "measured_fix_speedup" in f:
        parts.append(fix_measurement_words(f))
    return "; ".join(parts)


NON_FUSED = CauseEntry(rule=rule, evidence=evidence_words, what="unfused elementwise, norm, optimizer work",
                       categories=("other_compute", "matmul", "host_overhead", "idle", "memory"))
