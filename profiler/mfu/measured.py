"""What the diagnosis quotes from measurements made on the machine that recorded the run: our runs' timings of
a micro-step before training (per precision, at 4x the batch, with non_fused's fix) and the trace's shapes
timed here (shapetime.py). Each gives a cause's points or a fix's predicted speed-up in place of a model, with the
facts that the evidence quotes."""

from profiler.analysis.records import milliseconds
from profiler.facts import Facts
from profiler.mfu.records import Evidence
from profiler.mfu.vocabulary import settings


def faster_dtype(evidence: Evidence) -> str:
    """The precision to switch to: the fastest at the trace's own shapes where they were timed here, else the
    device's fastest (the dtype of P; float32 on a CPU that emulates bfloat16), bfloat16 where neither is known."""
    if evidence.shape_timing and not evidence.step_ms_by_dtype:
        return evidence.shape_timing.fastest
    return evidence.fastest_dtype or "bfloat16"


def precision_measurement(evidence: Evidence) -> Facts:
    """What set precision's points: our run's micro-steps, the trace's shapes timed here, or (neither) the
    peaks' ceiling."""
    measured, timing, target = evidence.step_ms_by_dtype, evidence.shape_timing, faster_dtype(evidence)
    if evidence.dtype in measured and target in measured and target != evidence.dtype:
        return {"measured_by": "micro_step", "run_dtype": evidence.dtype, "micro_step_ms": measured[evidence.dtype],
                "target_dtype": target, "target_micro_step_ms": measured[target]}
    if timing:
        return {"measured_by": "shape_timing", "timed_shapes": timing.shapes,
                "timed_ms_by_dtype": [{"dtype": d, "ms": milliseconds(us)}
                                      for d, us in timing.us_by_dtype.items()],
                "timed_fastest": timing.fastest, "timed_run_dtype": timing.run_dtype,
                "timed_saving_pct": 100 * timing.saving_share}
    return {"measured_by": "peaks"}


def measured_fix_speedup(evidence: Evidence, config: dict) -> tuple[float, Facts] | None:
    """The speed-up of non_fused's fix from what our run timed before training at its shapes (step_ms_by_fix: a
    micro-step's forward and backward with its attention and with SDPA, an optimizer step in its implementation
    and fused), and the facts that say so; None where not measured. It can be below 1: on a CPU, bfloat16
    SDPA's backward can be slower than the matmuls it replaces."""
    timed = evidence.meta.step_ms_by_fix or {}
    meta = settings(evidence.meta)
    saved = 0.0
    facts: Facts = {}
    attention, optimizer = timed.get("attention") or {}, timed.get("optimizer") or {}
    kind = meta.get("attention") or (meta.get("model") or {}).get("attention")  # ours: in the model's config
    if "attention" in config and kind in attention and "sdpa" in attention:
        before, after = attention[kind], attention["sdpa"]
        saved += (before - after) * meta.get("gradient_accumulation_steps", 1)
        facts.update(attention=kind, attention_micro_step_ms=before, sdpa_micro_step_ms=after)
    if "optimizer_impl" in config and meta.get("optimizer_impl") in optimizer and "fused" in optimizer:
        before, after = optimizer[meta["optimizer_impl"]], optimizer["fused"]
        saved += before - after
        facts.update(optimizer_impl=meta["optimizer_impl"], optimizer_step_ms=before, fused_optimizer_step_ms=after)
    if not facts:
        return None
    speedup = evidence.step_ms / max(evidence.step_ms - saved, 1e-6)
    return speedup, {**facts, "fix_saved_ms": saved, "step_ms": evidence.step_ms, "measured_fix_speedup": speedup}


def measured_batch_speedup(evidence: Evidence, factor: int, proposed: int | None = None
                           ) -> tuple[float, Facts] | None:
    """The speed-up of a batch `proposed` (default `factor`) times larger from what our run measured before
    training (a micro-step's forward and backward at its batch and at `factor` times it, linear between them):
    the step grows by that difference per micro-step and by the data loading and the copies the trace shows,
    `proposed` times larger, the tokens by `proposed`; and the facts that say so. None where not measured."""
    meta = settings(evidence.meta)
    batch = meta.get("batch_size")
    if not batch:
        return None
    small, measured = evidence.step_ms_by_batch.get(str(batch)), evidence.step_ms_by_batch.get(str(factor * batch))
    if small is None or measured is None:
        return None
    k = proposed or factor
    large = small + (measured - small) * (k - 1) / (factor - 1)  # the micro-step at k times the batch
    facts: Facts = {} if k == factor else {"measured_batch_size": factor * batch, "measured_micro_step_ms": measured}
    # the micro-steps time forward and backward alone, on a batch already on the device: the data loading the step
    # waits for and the batch's copy to the device grow with the samples too (factor times the samples take
    # factor times as long to load and to copy)
    loading = (k - 1) * evidence.breakdown["data_loading"].ms
    copies = (k - 1) * input_copy_ms(evidence)
    added = (large - small) * meta.get("gradient_accumulation_steps", 1) + loading + copies
    speedup = k * evidence.step_ms / (evidence.step_ms + max(added, 0.0))
    return speedup, {**facts, "batch_size": batch, "batch_micro_step_ms": small, "batch_factor": k,
                     "larger_batch_size": k * batch, "larger_batch_micro_step_ms": large,
                     "batch_added_ms": added, "batch_loading_added_ms": loading, "batch_copies_added_ms": copies,
                     "step_ms": evidence.step_ms, "measured_batch_speedup": speedup}


def input_copy_ms(evidence: Evidence) -> float:
    """The host-to-device copies' time per step that the step waits for: the batch's inputs, whose bytes grow
    with the samples (a copy the other way is a loss or a metric, whatever the batch). Bounded by the memory
    category, the copy time that no compute hides."""
    sig = evidence.signals
    host_to_device = sum(us for kind, us in sig.memcpy_us.items() if "HtoD" in kind)
    return min(milliseconds(sig.per_step(host_to_device)), evidence.breakdown["memory"].ms)
