"""The MFU ledger: 100 − MFU% split into points lost per cause, adding up exactly (docs/DESIGN.md).

Each category of the breakdown is lost time, charged to one cause; the matmul category is charged only for
the time beyond what the model's FLOPs need at peak, split into precision (running slower than the device's
fastest precision), small matmuls (small_batch) and the rest (matmul_efficiency).
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from profiler.settings import MS_PER_S


class Cause(StrEnum):
    """docs/DESIGN.md's fixed vocabulary of causes, in the ledger's order; the JSON uses these strings."""

    IO = "io"
    SMALL_BATCH = "small_batch"
    NON_FUSED = "non_fused"
    MEMORY_OPS = "memory_ops"
    COMMUNICATION = "communication"
    RECOMPUTATION = "recomputation"  # the forward run again in the backward (activation checkpointing)
    PRECISION = "precision"
    MATMUL_EFFICIENCY = "matmul_efficiency"
    WARMUP = "warmup"
    UNRECORDED = "unrecorded"  # device work the trace lost: time no cause can be given
    OTHER = "other"
    USEFUL = "useful"  # the time ledger's entry for the work itself: no loss, and no bottleneck


class LedgerUnit(StrEnum):
    """What a ledger's points are points of."""

    MFU = "mfu"  # of MFU: they add up to 100 − MFU
    STEP_TIME = "step_time"  # of the step time, where F or P cannot be formed: 100 in all, with the useful work


CAUSES: tuple[Cause, ...] = tuple(c for c in Cause if c is not Cause.USEFUL)
OCCASIONAL = (Cause.RECOMPUTATION, Cause.WARMUP, Cause.UNRECORDED)  # a ledger row only where the trace holds any
# the time ledger (no F or no P): matmul_efficiency needs both, and what no cause claims is the work itself
TIME_CAUSES: tuple[Cause, ...] = tuple(c for c in CAUSES if c is not Cause.MATMUL_EFFICIENCY) + (Cause.USEFUL,)


@dataclass(kw_only=True)
class Overheads:
    """Seconds per step, inside breakdown categories, that belong to another cause than their category's."""

    small_matmul_excess: float = 0.0  # small matmuls' time beyond their FLOPs at P_run
    short_idle: float = 0.0  # idle gaps between ops shorter than Options.short_gap_us
    fixed_compute: float = 0.0  # fixed per-op cost inside other_compute
    fixed_memory: float = 0.0  # ... inside memory
    parameter_compute: float = 0.0  # per-step work on parameter-shaped tensors inside other_compute
    parameter_memory: float = 0.0  # ... inside memory (weight casts, gradient copies)
    optimizer_host: float = 0.0  # host overhead inside Optimizer.step
    optimizer_idle: float = 0.0  # idle inside Optimizer.step
    attention_matmul_excess: float = 0.0  # unfused attention's bmm time beyond its FLOPs at P_run
    attention_memory: float = 0.0  # copies inside unfused attention
    attention_host: float = 0.0  # dispatch inside unfused attention
    recompute_matmul: float = 0.0  # forward matmuls run again in the backward (activation checkpointing)
    recompute_compute: float = 0.0  # ... its other compute (norms, activations)
    recompute_memory: float = 0.0  # ... its copies
    recompute_host: float = 0.0  # ... its dispatch
    precision: float | None = None  # what the fastest precision saves, measured at the run's shapes (our runs)
    allocator: float = 0.0  # allocator calls (cudaFree, hipMalloc, ...) while the device idles
    sync: float = 0.0  # synchronizing calls (stream / device syncs, blocking copies) while the device idles
    profiler: float = 0.0  # the profiler's own cost of recording the step's ops (our runs measure it per op)
    warmup: float = 0.0  # one-off costs (compilation, lazy loading, library set-up) while the device idles


# the moves between causes after the matmul split, in order (each capped by what its category still holds): the
# forward re-run in the backward first, then unfused attention's and the optimizer's costs, the stalls, the per-op
# and per-step costs a larger batch spreads
MOVES: tuple[tuple[str, Callable[[Overheads], float], Cause], ...] = (
    ("other_compute", lambda o: o.recompute_compute, Cause.RECOMPUTATION),
    ("memory", lambda o: o.recompute_memory, Cause.RECOMPUTATION),
    ("host_overhead", lambda o: o.recompute_host, Cause.RECOMPUTATION),
    ("matmul", lambda o: o.attention_matmul_excess, Cause.NON_FUSED),
    ("matmul", lambda o: o.small_matmul_excess, Cause.SMALL_BATCH),
    ("host_overhead", lambda o: o.optimizer_host, Cause.NON_FUSED),
    ("host_overhead", lambda o: o.attention_host, Cause.NON_FUSED),
    ("host_overhead", lambda o: o.allocator, Cause.MEMORY_OPS),
    ("host_overhead", lambda o: o.sync, Cause.OTHER),
    ("host_overhead", lambda o: o.warmup, Cause.WARMUP),
    ("idle", lambda o: o.optimizer_idle, Cause.NON_FUSED),
    ("idle", lambda o: o.short_idle - o.optimizer_idle, Cause.SMALL_BATCH),
    ("memory", lambda o: o.attention_memory, Cause.NON_FUSED),
    ("memory", lambda o: o.parameter_memory, Cause.SMALL_BATCH),
    ("memory", lambda o: o.fixed_memory, Cause.SMALL_BATCH),
    ("other_compute", lambda o: o.parameter_compute, Cause.SMALL_BATCH),
    ("other_compute", lambda o: o.fixed_compute, Cause.SMALL_BATCH),
)


def at_peaks(flops: float, peak: float, peak_run: float) -> dict[str, float]:
    """What the FLOPs need at P (the ideal step), and what running them at P_run adds (precision's ceiling)."""
    return {"ideal_s": flops / peak, "precision_ceiling_s": flops / peak_run - flops / peak}


def cause_seconds(category_s: dict, overheads: Overheads, ideal_s: float = 0.0,
                  precision_ceiling_s: float = 0.0) -> dict[Cause, float]:
    """Seconds per step lost to each cause; they sum to the step time minus the ideal (F/P: `at_peaks`). Without
    F or P (a time ledger) there is no ideal: the matmul time is all work, precision only what was measured.

    - data_loading → io; communication → communication; other_compute → non_fused; memory → memory_ops.
    - the forward run again inside the backward (activation checkpointing) → recomputation, from each category
      it ran in: its matmuls first, as they are no model FLOPs.
    - matmul beyond F/P: precision up to F/P_run (or up to the saving the faster precision
      showed at the run's own shapes, where measured), the rest matmul_efficiency.
    - host_overhead → small_batch, and so are short idle gaps between ops, small matmuls' excess, the fixed
      per-op cost of compute and copy ops, and the work done once per step on parameters (optimizer update,
      gradient clipping, weight casts): the costs that a larger batch would spread over more tokens.
    - one-off costs inside the window (compilation, lazy loading, library set-up) → warmup.
    - device work the trace lost → unrecorded, less what the FLOPs at P need beyond the matmul time it shows
      (the lost kernels of a graph replay are the model's matmuls as much as anything).
    - longer idle stretches → other, and so are the host's synchronizations while the device idles (the fix
      moves them out of the step); allocator calls while the device idles → memory_ops (the caching
      allocator's settings, cudnn / miopen benchmark mode remove them).
    - the cost of an unfused optimizer (dispatch and idle inside Optimizer.step) and of unfused attention
      (its matmul excess, copies and dispatch) → non_fused, whatever category it fell in.
    Each move is capped by what its source holds, so every cause stays within the time measured. Where the
    FLOPs at P need more than the matmul time, no cause is negative: the others give up the difference in
    proportion to their size.
    """
    c = {"unrecorded": 0.0, **category_s}  # a trace that lost nothing may leave it out
    moved = dict.fromkeys(CAUSES, 0.0)

    def move(category: str, seconds: float, cause: Cause):
        seconds = min(max(seconds, 0.0), max(c[category], 0.0))
        c[category] -= seconds
        moved[cause] += seconds

    # the matmul time beyond the FLOPs at P: precision takes what the fastest precision would save (the FLOPs
    # at P_run against P, or the saving measured at the run's shapes), never more than the excess holds
    excess = c["matmul"] - ideal_s
    if excess < 0:  # the FLOPs at P need more matmul time than the trace shows: the work it lost holds it first
        found = min(-excess, max(c["unrecorded"], 0.0))
        c["unrecorded"] = c["unrecorded"] - found
        excess += found
    rerun = min(max(overheads.recompute_matmul, 0.0), max(excess, 0.0))
    excess -= rerun
    moved[Cause.RECOMPUTATION] += rerun
    precision = precision_ceiling_s if overheads.precision is None else overheads.precision
    precision = min(max(precision, 0.0), max(excess, 0.0))
    c["matmul"] = excess - precision
    for category, amount, cause in MOVES:
        move(category, amount(overheads), cause)
    own = {Cause.IO: c["data_loading"], Cause.SMALL_BATCH: c["host_overhead"], Cause.NON_FUSED: c["other_compute"],
           Cause.MEMORY_OPS: c["memory"], Cause.COMMUNICATION: c["communication"], Cause.PRECISION: precision,
           Cause.MATMUL_EFFICIENCY: max(c["matmul"], 0.0), Cause.WARMUP: 0.0, Cause.OTHER: c["idle"],
           Cause.RECOMPUTATION: 0.0, Cause.UNRECORDED: c["unrecorded"]}  # 0.0: only MOVES feed it
    out = {cause: own[cause] + moved[cause] for cause in CAUSES}
    if excess < 0:  # the FLOPs at P need more than the matmul time (within MATMUL_SLACK): the other causes
        rest = sum(out.values())  # give up the difference in proportion, so that none goes below 0
        scale = max(rest + excess, 0.0) / rest if rest > 0 else 0.0
        out = {cause: seconds * scale for cause, seconds in out.items()}
    return out


def without_profiler(seconds: dict[Cause, float], cost: float) -> tuple[dict[Cause, float], float]:
    """The causes with the profiler's own recording cost taken out, and the seconds taken. Recording is a
    per-op host cost, so it lies in what the ledger calls small_batch (per-op overhead, the device's short
    gaps), or in other's longer gaps when small_batch holds less; never more than those two hold."""
    out = dict(seconds)
    left = max(cost, 0.0)
    for cause in (Cause.SMALL_BATCH, Cause.OTHER):
        taken = min(left, max(out[cause], 0.0))
        out[cause] -= taken
        left -= taken
    return out, max(cost, 0.0) - left


def ledger(step_s: float, seconds: dict[Cause, float], flops: float, peak: float,
           removable: dict[Cause, float] | None = None) -> list[dict]:
    """Points, ms per step and what-if MFU for each cause; warmup only where the window holds one-off costs.

    The what-if is the MFU with the cause's removable seconds gone (`removable`, by default all of them: an
    upper bound; non_fused's is bounded by what fusion removes, roofline.fusion_removable)."""
    ideal = flops / peak
    seconds = {**dict.fromkeys(CAUSES, 0.0), **seconds}  # an occasional cause may be absent
    gone = {**seconds, **(removable or {})}
    cut = {c: max(min(gone[c], seconds[c]), 0.0) for c in CAUSES}
    return [{"cause": c, "points": 100 * seconds[c] / step_s, "ms": MS_PER_S * seconds[c],
             "what_if_mfu": ideal / (step_s - cut[c]), "removable_ms": MS_PER_S * cut[c]} for c in CAUSES
            if c not in OCCASIONAL or seconds[c] > 0]


def time_ledger(step_s: float, seconds: dict[Cause, float], removable: dict[Cause, float] | None = None) -> list[dict]:
    """The ledger in points of step time (docs/DESIGN.md, "When MFU cannot be formed"): the seconds of a ledger
    formed with no FLOPs, where matmul_efficiency's share is the work itself (useful). Each what-if is the
    steady-state step without the cause's removable seconds, and its speed-up: warmup is left out of every step
    but its own."""
    if step_s <= 1e-9:  # the profiler's own cost was the whole step: nothing left to divide
        return []
    seconds = {**dict.fromkeys(CAUSES, 0.0), **seconds}  # an occasional cause may be absent
    share: dict[Cause, float] = {**{c: seconds[c] for c in CAUSES if c is not Cause.MATMUL_EFFICIENCY},
                                 Cause.USEFUL: seconds[Cause.MATMUL_EFFICIENCY]}
    gone = {**share, **(removable or {})}
    steady = step_s - max(share[Cause.WARMUP], 0.0)
    out = []
    for c in TIME_CAUSES:
        if c in OCCASIONAL and share[c] <= 0:
            continue
        cut = max(min(gone[c], share[c]), 0.0)
        base, without = (step_s, steady) if c is Cause.WARMUP else (steady, steady - cut)
        known = c is not Cause.USEFUL and without > 0
        out.append({"cause": c, "points": 100 * share[c] / step_s, "ms": MS_PER_S * share[c], "what_if_mfu": None,
                    "what_if_step_ms": MS_PER_S * without if known else None,
                    "speedup": base / without if known else None, "removable_ms": MS_PER_S * cut})
    return out
