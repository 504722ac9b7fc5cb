"""Which batch the device's memory holds, up to the factor our runs measured, or what else frees memory where
not even twice the batch fits: small_batch's memory plan, as facts and their words."""

from typing import NotRequired, TypedDict

from profiler.mfu.records import Evidence
from profiler.mfu.vocabulary import settings
from profiler.settings import GIGA, MEGA, MEMORY_USABLE


class Alternative(TypedDict):
    name: str
    frees: float  # in the plan's memory_unit
    costs: str
    costs_ms: NotRequired[float]


class BatchPlan(TypedDict, total=False):
    memory_unit: str  # "GB" or "MB", the capacity's
    memory_capacity: float
    memory_capacity_source: str | None
    memory_usable_pct: float
    fit_factor: int  # the largest multiple of the batch that fits
    fit_by: str  # "micro_steps" or "linear"
    fit_peak: float
    fit_batch_size: int
    double_peak: float
    alternatives: list[Alternative]


def batch_plan(evidence: Evidence, factor: int) -> BatchPlan:
    """The largest batch, up to `factor` times the run's (beyond it nothing was measured), whose predicted peak
    stays within MEMORY_USABLE of the capacity: from our run's micro-steps, else from the trace's level and
    transient, linear in the batch. Where even twice the batch does not fit, what else frees memory and what it
    costs. {} where the memory, its level or the capacity is unknown."""
    m = evidence.memory
    if m is None or not m.capacity_bytes:
        return {}
    batch = settings(evidence.meta).get("batch_size")
    if m.parts and batch:
        peaks = {int(b) // batch: p for b, p in m.parts["predicted_peak_bytes_by_batch"].items()}
        activations, by = m.parts["activations_per_sample"] * batch, "micro_steps"
    elif m.at_step_start_bytes is not None and m.transient_peak_bytes:
        peaks = {k: m.at_step_start_bytes + k * m.transient_peak_bytes for k in range(1, factor + 1)}
        activations, by = m.transient_peak_bytes, "linear"
    else:
        return {}
    usable = m.capacity_bytes * MEMORY_USABLE
    fits = max((k for k, peak in peaks.items() if peak <= usable), default=1)
    unit, scale = ("GB", GIGA) if m.capacity_bytes >= GIGA else ("MB", MEGA)  # the sizes in the capacity's unit
    facts: BatchPlan = {"memory_unit": unit, "memory_capacity": m.capacity_bytes / scale,
                        "memory_capacity_source": m.capacity_source, "memory_usable_pct": 100 * MEMORY_USABLE,
                        "fit_factor": fits, "fit_by": by, "fit_peak": peaks.get(fits, peaks[min(peaks)]) / scale}
    if batch:
        facts["fit_batch_size"] = fits * batch
    if fits < 2 and 2 in peaks:
        facts["double_peak"] = peaks[2] / scale
        facts["alternatives"] = alternatives(evidence, activations, scale)
    return facts


def alternatives(evidence: Evidence, activations: float, scale: float) -> list[Alternative]:
    """What frees memory when a larger batch does not fit, and its price."""
    m, meta = evidence.memory, settings(evidence.meta)
    optimizer = (m.parts or {}).get("optimizer_state") if m else None
    world = meta.get("world_size") or 1
    ranks = world if world > 1 else 8  # one device: sharding takes more of them
    out: list[Alternative] = [{"name": "activation checkpointing", "frees": activations / scale,
                               "costs": "about one more forward pass of matmul time",
                               "costs_ms": evidence.breakdown["matmul"].ms / 3}]
    if optimizer:
        out.append({"name": f"optimizer-state sharding over {ranks} ranks (ZeRO-1, FSDP)"
                    + ("" if world > 1 else " on more devices"),
                    "frees": optimizer * (ranks - 1) / ranks / scale, "costs": "a gather of the parameters a step"})
    if evidence.dtype == "float32":
        out.append({"name": "bfloat16 activations under autocast", "frees": activations / 2 / scale,
                    "costs": "precision (the precision cause says whether it is faster here)"})
    out.append({"name": "gradient accumulation", "frees": 0.0,
                "costs": "no MFU gain: the same micro-batch, more of them per step"})
    return out


def memory_plan_words(f: BatchPlan) -> str:
    """Which batch the device's memory holds, or what frees memory where not even twice the batch fits."""
    unit = f["memory_unit"]
    of = (f"of {f['memory_capacity']:.2f} {unit} ({f['memory_capacity_source']}, {f['memory_usable_pct']:.0f}% of it "
          "planned)")
    how = ("from the micro-steps measured before the run" if f["fit_by"] == "micro_steps"
           else "the trace's transient taken as linear in the batch")
    if f["fit_factor"] >= 2:
        batch = f"batch {f['fit_batch_size']}" if "fit_batch_size" in f else f"{f['fit_factor']}x the batch"
        return f"the memory holds {batch}: {f['fit_peak']:.2f} {unit} predicted {of}, {how}"
    ways = "; ".join(f"{a['name']} frees {a['frees']:.2f} {unit} and costs {a['costs']}"
                     + (f" ({a['costs_ms']:.2f} ms/step)" if "costs_ms" in a else "") for a in f["alternatives"])
    return f"twice the batch does not fit: {f['double_peak']:.2f} {unit} predicted {of}, {how}; {ways}"
