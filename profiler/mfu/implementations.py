"""Which implementation ran, as the trace tells it: the optimizer's by the ops inside its own span (ops outside
it, such as clip_grad_norm_'s _foreach_norm, say nothing of it), and torch.compile's regions."""

import re
from collections import Counter

from profiler.analysis.records import Signals
from profiler.facts import Facts
from profiler.settings import LOOP_OPS
from profiler.trace.classify import COMPILED_REGION, DISPATCH_ONLY_OP, METADATA_OP, OPTIMIZER_STEP

# ops inside an optimizer step that say nothing of its implementation: views, allocations, dtype conversions
ALLOCATING_OR_DISPATCH = re.compile(rf"{METADATA_OP.pattern}|{DISPATCH_ONLY_OP.pattern}|^aten::(_to_copy|copy_)$")


def optimizer_implementation(signals: Signals, kind: str, optimizer: str) -> Facts:
    """What the optimizer's own span says of its implementation, where it is not fused: a per-parameter loop
    (more than LOOP_OPS ops, on a GPU kernels, per step and no _foreach_ or _fused_ op inside it: a fused
    optimizer may still run host ops per parameter, such as apex FusedAdam's step counters) or foreach ops.
    Ops outside the span, such as clip_grad_norm_'s _foreach_norm, say nothing of it. {} where fused or unseen."""
    inside = signals.optimizer_op_counts
    foreach = sum(v for k, v in inside.items() if "_foreach_" in k)
    fused = sum(v for k, v in inside.items() if "_fused_" in k)
    work, unit = (signals.optimizer_kernels, "kernels") if kind != "cpu" else (signals.optimizer_ops, "ops")
    if fused or not signals.optimizers:
        return {}
    if foreach:
        return {"optimizer": optimizer, "optimizer_seen": "foreach", "foreach_ops_per_step": signals.per_step(foreach)}
    if signals.per_step(work) > LOOP_OPS:
        working = Counter({k: v for k, v in inside.items()
                           if not (ALLOCATING_OR_DISPATCH.match(k) or OPTIMIZER_STEP.match(k))})
        return {"optimizer": optimizer, "optimizer_seen": "loop", "optimizer_work_per_step": signals.per_step(work),
                "optimizer_work_unit": unit,
                "optimizer_ops": [{"name": k.removeprefix("aten::"), "per_step": signals.per_step(v)}
                                  for k, v in working.most_common(3)]}
    return {}


def compiled_regions(signals: Signals) -> int:
    """Calls of torch.compile'd frames in the analysed steps: more than one per step means graph breaks."""
    return sum(v for k, v in signals.op_counts.items() if COMPILED_REGION.match(k))
