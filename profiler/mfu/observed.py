"""What the trace shows per step that the diagnosis quotes: the analysis' totals over the steps (Signals) made per
step once, in the units the report shows, so that a rule reads numbers and never a total. Names ranked by size keep
Counter.most_common's order (ties in the order they were met)."""

import re
import statistics
from collections import Counter
from dataclasses import dataclass

from profiler.analysis.records import Signals, milliseconds, seconds
from profiler.trace.classify import COMPILED_REGION, DISPATCH_ONLY_OP, METADATA_OP, OPTIMIZER_STEP

# ops inside an optimizer step that say nothing of its implementation: views, allocations, dtype conversions
ALLOCATING_OR_DISPATCH = re.compile(rf"{METADATA_OP.pattern}|{DISPATCH_ONLY_OP.pattern}|^aten::(_to_copy|copy_)$")


@dataclass(frozen=True, kw_only=True)
class CopyKind:
    kind: str  # the memcpy kind: "Memcpy HtoD (Pageable -> Device)", ...
    bytes: float  # per step
    bytes_per_s: float | None  # achieved, where its time was recorded


@dataclass(frozen=True, kw_only=True)
class Optimizer:
    """What the optimizer's own span shows of its implementation (ops outside it, such as clip_grad_norm_'s
    _foreach_norm, say nothing of it)."""

    name: str  # the most frequent Optimizer.step
    fused: bool  # _fused_ ops ran inside it
    foreach_ops: float  # _foreach_ ops per step
    work: float  # per step: kernels on a GPU, host ops on a CPU
    work_unit: str  # "kernels" or "ops"
    ops: dict[str, float]  # the ops that do its work (views, allocations, casts aside), per step, largest first


@dataclass(frozen=True, kw_only=True)
class Observed:
    """Per step unless a field says otherwise: ms, counts, bytes; each name → value map largest first."""

    host_ops: float
    kernels: float  # kernel launches with a device event
    median_kernel_us: float | None
    graph_launches: float
    training: bool  # a backward or an optimizer step ran (no inference)
    compiled_regions: float  # calls of torch.compile'd frames: more than one a step means graph breaks
    dataloaders: list[str]  # the DataLoader iterators' span names
    data_preparation_ms: dict[str, float]  # data-preparation Python frames inside the step
    one_off_ms: dict[str, float]  # one-off spans (compilation, lazy loading, library set-up)
    recomputed_ms: dict[str, float]  # the outermost forward ops run again in the backward
    recompute_written_bytes: float  # what they wrote: about what checkpointing kept out of memory
    matmul_s: float  # counted matmuls' time, in seconds
    fp32_matmul_ms: float  # float32 matmul kernels on SIMT cores
    fp32_kernels_ms: dict[str, float]
    small_matmul_ms: float  # 2-D matmuls with a dimension under SMALL_DIM
    small_matmul_flop_per_s: float | None  # their rate
    fused_attention_ops: float
    softmax_ops: float
    bmm_ops: float  # bmm and baddbmm
    optimizer: Optimizer | None
    stall_calls: dict[str, float]  # allocator and synchronizing runtime calls while the device idled, by name
    stall_sites: dict[str, float]  # ... by the op they were made in
    copies: list[CopyKind]  # by bytes
    host_to_device_ms: float  # the host-to-device copies' time
    elementwise_bytes: float  # elementwise / norm / softmax / optimizer traffic where shapes say
    elementwise_bytes_per_s: float  # ... over the time of the ops whose traffic is known
    fusable_pct: float  # of that traffic, what fusion removes
    collective_kernel_us: list[float]  # each collective kernel's duration, shortest first
    lost_kernels: float  # kernel launches whose device work the trace lost
    lost_graphs: float  # graph launches none of whose kernels the trace recorded


def compiled_regions(signals: Signals) -> int:
    """Calls of torch.compile'd frames in the analysed steps."""
    return sum(v for k, v in signals.op_counts.items() if COMPILED_REGION.match(k))


def observed(signals: Signals, kind: str) -> Observed:
    """Signals per step, once: what every rule of the diagnosis reads."""
    s = signals
    per_step_ms = lambda counter: {k: milliseconds(s.per_step(us)) for k, us in counter.most_common()}
    counts = s.op_counts
    return Observed(
        host_ops=s.per_step(s.host_ops), kernels=s.per_step(len(s.kernel_us)),
        median_kernel_us=statistics.median(s.kernel_us) if s.kernel_us else None,
        graph_launches=s.per_step(s.graph_launches), training=bool(s.backward_ops or s.optimizers),
        compiled_regions=s.per_step(compiled_regions(s)), dataloaders=list(s.dataloaders),
        data_preparation_ms=per_step_ms(s.data_prep_us), one_off_ms=per_step_ms(s.warmup_us),
        recomputed_ms=per_step_ms(s.recompute_ops), recompute_written_bytes=s.per_step(s.recompute_written_bytes),
        matmul_s=s.per_step_s(s.matmul_us),
        fp32_matmul_ms=milliseconds(s.per_step(s.fp32_matmul_total_us)), fp32_kernels_ms=per_step_ms(s.fp32_matmul_us),
        small_matmul_ms=milliseconds(s.per_step(s.small_matmul_us)),
        small_matmul_flop_per_s=s.small_matmul_flops / seconds(s.small_matmul_us) if s.small_matmul_us else None,
        fused_attention_ops=s.per_step(sum(v for k, v in counts.items() if "attention" in k)),
        softmax_ops=s.per_step(sum(v for k, v in counts.items() if "softmax" in k)),
        bmm_ops=s.per_step(counts["aten::bmm"] + counts["aten::baddbmm"]), optimizer=optimizer(s, kind),
        stall_calls={k: s.per_step(v) for k, v in s.stall_calls.most_common()},
        stall_sites={k: s.per_step(v) for k, v in s.stall_sites.most_common()},
        copies=[CopyKind(kind=k, bytes=s.per_step(moved),
                         bytes_per_s=moved / seconds(s.memcpy_us[k]) if s.memcpy_us.get(k) else None)
                for k, moved in s.memcpy_bytes.most_common()],
        host_to_device_ms=milliseconds(s.per_step(sum(us for k, us in s.memcpy_us.items() if "HtoD" in k))),
        elementwise_bytes=s.per_step(s.elementwise_bytes),
        elementwise_bytes_per_s=s.elementwise_bytes / seconds(s.elementwise_byte_us) if s.elementwise_byte_us else 0.0,
        fusable_pct=100 * s.fusable_bytes / s.elementwise_bytes if s.elementwise_bytes else 0.0,
        collective_kernel_us=sorted(s.collective_kernel_us), lost_kernels=s.per_step(s.lost_launches["kernel"]),
        lost_graphs=s.per_step(s.lost_launches["graph"]))


def optimizer(signals: Signals, kind: str) -> Optimizer | None:
    """The optimizer's span, where one ran: which ops it ran, and how much work a step."""
    if not signals.optimizers:
        return None
    inside = signals.optimizer_op_counts
    work, unit = (signals.optimizer_kernels, "kernels") if kind != "cpu" else (signals.optimizer_ops, "ops")
    working = Counter({k: v for k, v in inside.items()
                       if not (ALLOCATING_OR_DISPATCH.match(k) or OPTIMIZER_STEP.match(k))})
    return Optimizer(name=signals.optimizers.most_common(1)[0][0],
                     fused=bool(sum(v for k, v in inside.items() if "_fused_" in k)),
                     foreach_ops=signals.per_step(sum(v for k, v in inside.items() if "_foreach_" in k)),
                     work=signals.per_step(work), work_unit=unit,
                     ops={k: signals.per_step(v) for k, v in working.most_common()})
