"""Which optimizer implementation ran, as its own span tells it (ops outside it, such as clip_grad_norm_'s
_foreach_norm, say nothing of it): facts for non_fused, and their words."""

from typing import TypedDict

from profiler.diagnosis.words import PerStep
from profiler.mfu.observed import Optimizer
from profiler.settings import LOOP_OPS


class OptimizerSeen(TypedDict, total=False):
    optimizer: str
    optimizer_seen: str  # "foreach" or "loop"
    foreach_ops_per_step: float
    optimizer_work_per_step: float
    optimizer_work_unit: str  # "kernels" or "ops"
    optimizer_ops: list[PerStep]


def optimizer_implementation(optimizer: Optimizer | None) -> OptimizerSeen:
    """What the optimizer's own span says of its implementation, where it is not fused: a per-parameter loop
    (more than LOOP_OPS ops, on a GPU kernels, per step and no _foreach_ or _fused_ op inside it: a fused
    optimizer may still run host ops per parameter, such as apex FusedAdam's step counters) or foreach ops.
    {} where fused or unseen."""
    if optimizer is None or optimizer.fused:
        return {}
    if optimizer.foreach_ops:
        return {"optimizer": optimizer.name, "optimizer_seen": "foreach", "foreach_ops_per_step": optimizer.foreach_ops}
    if optimizer.work > LOOP_OPS:
        return {"optimizer": optimizer.name, "optimizer_seen": "loop", "optimizer_work_per_step": optimizer.work,
                "optimizer_work_unit": optimizer.work_unit,
                "optimizer_ops": [{"name": k.removeprefix("aten::"), "per_step": v}
                                  for k, v in list(optimizer.ops.items())[:3]]}
    return {}


def optimizer_words(f: OptimizerSeen) -> str:
    o = f["optimizer"]
    if f["optimizer_seen"] == "foreach":
        return f"foreach {o}: {f['foreach_ops_per_step']:.0f} _foreach_ ops per {o}.step"
    largest = ", ".join(f"{i['per_step']:.0f} {i['name']}" for i in f["optimizer_ops"])
    return (f"per-parameter {o} loop: {f['optimizer_work_per_step']:.0f} {f['optimizer_work_unit']} per {o}.step "
            f"(ops: {largest}), no _foreach_ or _fused_ ops inside it")
