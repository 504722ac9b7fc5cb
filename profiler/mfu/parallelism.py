"""Which parallelism a rank ran, from the marks its libraries leave in the trace, its communication by phase and
kind with the bus bandwidth it reached, and the fix for exposed communication in that library's own words.

Bus bandwidth as nccl-tests defines it, from the collective's size S (an all-gather's output, the others' input)
over its time: all-reduce 2(n−1)/n · S/t, all-gather, reduce-scatter and all-to-all (n−1)/n · S/t, send / recv and
broadcast S/t, for a group of n ranks.
"""

import re
from dataclasses import dataclass

from profiler.analysis.records import Signals, milliseconds
from profiler.mfu.bandwidth import BANDWIDTH_TABLE, PCIE
from profiler.settings import GIGA, MEGA, US_PER_S

# (mark in analysis/collectives.MARKS, the name a report gives it), in the order a report lists them
NAMES = (("fsdp2", "FSDP2 (fully_shard)"), ("fsdp1", "FSDP (FullyShardedDataParallel)"),
         ("ddp", "DDP (DistributedDataParallel)"), ("tensor_parallel", "tensor parallel (DTensor)"),
         ("expert_parallel", "expert parallel (all-to-all dispatch / combine)"),
         ("all_to_all", "all-to-all (expert or embedding parallel)"), ("pipeline", "pipeline parallel"),
         ("context_parallel", "context parallel"))

# what hides or removes exposed communication, per parallelism, in the library's own settings
FIXES = {
    "fsdp2": "FSDP2: prefetch the next layers' all-gathers (module.set_modules_to_forward_prefetch([...]) and "
             "set_modules_to_backward_prefetch([...])), fully_shard(..., reshard_after_forward=False) for the last "
             "layers, an HSDP mesh (shard within a node, replicate across) or a smaller shard group, and a larger "
             "batch per rank; the first layer's all-gather has nothing before it to hide behind",
    "fsdp1": "FSDP: FullyShardedDataParallel(..., forward_prefetch=True, backward_prefetch=BackwardPrefetch."
             "BACKWARD_PRE, limit_all_gathers=True), and a larger batch per rank",
    "ddp": "DDP: DistributedDataParallel(..., bucket_cap_mb=..., gradient_as_bucket_view=True, static_graph=True) "
           "to overlap the all-reduce with the backward, model.no_sync() on all but the last micro-batch under "
           "gradient accumulation, or a larger batch per rank",
    "tensor_parallel": "tensor parallel: sequence parallel (SequenceParallel on the norms, use_local_output=False) "
                       "so all-reduces become reduce-scatter + all-gather, async TP "
                       "(torch._inductor.config._micro_pipeline_tp = True with torch.compile), or a smaller TP "
                       "degree (TP within a node only)",
    "expert_parallel": "expert parallel: overlap dispatch and combine with the other micro-batch's compute (two "
                       "micro-batches in flight, DeepEP's hook-based overlap), fewer experts per all-to-all group, "
                       "or capacity limits that even out the tokens per expert",
    "all_to_all": "all-to-all: overlap it with the other micro-batch's compute, or shrink the group",
    "pipeline": "pipeline: more micro-batches per step (n_microbatches) or an interleaved schedule "
                "(ScheduleInterleaved1F1B, ScheduleInterleavedZeroBubble) to shrink the bubble",
    "context_parallel": "context parallel: overlap the ring's send / recv with attention, or a smaller CP degree",
}
DATA_PARALLEL_DEFAULT = ("overlap communication with the backward pass (DDP bucket_cap_mb), accumulate gradients "
                         "locally (no_sync) and all-reduce less often, or raise the batch per rank")
# the link between a node's devices, one direction (the figure nccl-tests' bus bandwidth approaches within a node), from
# the vendors' data sheets: NVLink's total over 2; parts sold on PCIe cards use the host link's generation below
PEER_LINKS = ((r"GB200|B200|B100", 900.0, "NVLink 5"), (r"H800|A800", 200.0, "NVLink (export part)"),
              (r"(H100|A100|V100).*(PCIe|PCI)", None, None), (r"GH200|H200|H100|H20\b", 450.0, "NVLink 4"),
              (r"A100", 300.0, "NVLink 3"), (r"V100", 150.0, "NVLink 2"), (r"MI300X|MI325", 448.0, "Infinity Fabric"))
BUS_FACTOR = {"all_reduce": lambda n: 2 * (n - 1) / n, "all_gather": lambda n: (n - 1) / n,
              "reduce_scatter": lambda n: (n - 1) / n, "all_to_all": lambda n: (n - 1) / n}


@dataclass(frozen=True, kw_only=True)
class CollectiveRow:
    """One phase and kind of collective, per step."""

    phase: str  # forward, backward, optimizer
    kind: str  # all_reduce, all_gather, reduce_scatter, all_to_all, send_recv, broadcast, other
    calls: float
    mb: float  # the collectives' size S, as nccl-tests counts it
    ms: float
    exposed_ms: float
    bus_gb_per_s: float | None  # where the bytes and the time are known


def named(signals: Signals) -> list[str]:
    """The parallelism the marks say ran (an all-to-all is expert parallel only where no other mark claims it)."""
    marks = signals.parallel_marks
    found = [mark for mark, _ in NAMES if marks.get(mark)]
    if "expert_parallel" in found and "all_to_all" in found:
        found.remove("all_to_all")
    return found


def display_names(marks: list[str]) -> list[str]:
    words = dict(NAMES)
    return [words[m] for m in marks]


def fix_for(marks: list[str]) -> str:
    """The fix in the words of each library that ran, DDP's where none is named."""
    fixes = [FIXES[m] for m in marks if m in FIXES]
    return "; ".join(fixes) if fixes else DATA_PARALLEL_DEFAULT


def collective_rows(signals: Signals, group: int) -> list["CollectiveRow"]:
    """The communication account per step, largest exposed time first."""
    rows = []
    for key in sorted(set(signals.collective_calls) | set(signals.collective_us)):
        phase, kind = key.split("/", 1)
        us, size = signals.collective_us.get(key, 0.0), signals.collective_in_bytes.get(key, 0.0)
        size *= group if kind == "all_gather" else 1  # an all-gather's input is one rank's shard
        factor = BUS_FACTOR.get(kind, lambda n: 1.0)(max(group, 1))
        bus = size / (us / US_PER_S) * factor / GIGA if us and size and group > 1 else None
        rows.append(CollectiveRow(phase=phase, kind=kind, calls=signals.per_step(signals.collective_calls.get(key, 0)),
                                  mb=signals.per_step(size) / MEGA, ms=milliseconds(signals.per_step(us)),
                                  exposed_ms=milliseconds(signals.per_step(signals.collective_exposed_us.get(key, 0))),
                                  bus_gb_per_s=bus))
    return sorted(rows, key=lambda r: -r.exposed_ms)


def peer_link(device: str, backend: str) -> tuple[str, float] | None:
    """The link the bus bandwidth compares with: the device's NVLink (or Infinity Fabric), else its PCIe host link;
    none for gloo (the ranks exchange through host memory) or a device no table has."""
    if backend == "gloo" or not device:
        return None
    for pattern, gb_per_s, name in PEER_LINKS:
        if re.search(pattern, device, re.IGNORECASE):
            if gb_per_s:
                return f"{name}, {gb_per_s:g} GB/s a direction", gb_per_s
            break
    for pattern, _, generation in BANDWIDTH_TABLE:
        if re.search(pattern, device, re.IGNORECASE):
            return f"PCIe {generation}.0 x16, {PCIE[generation] / GIGA:g} GB/s a direction", PCIE[generation] / GIGA
    return None


def pipeline_bubble(stages: int, micro_batches: int) -> float:
    """GPipe's and 1F1B's bubble: the share of the step a stage idles, (p − 1) / (m + p − 1)."""
    return (stages - 1) / (micro_batches + stages - 1)
