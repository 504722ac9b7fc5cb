"""What the diagnosis quotes from measurements made on the machine that recorded the run: our runs' timings of
a micro-step before training (per precision, at 4x the batch, with non_fused's fix) and the trace's shapes
timed here (shapetime.py). Each gives a cause's points or a fix's predicted speed-up in place of a model, with the
facts that the evidence quotes and their words."""

from typing import TypedDict

from profiler.analysis.records import milliseconds
from profiler.mfu.records import Evidence
from profiler.mfu.vocabulary import settings


class DtypeMs(TypedDict):
    dtype: str
    ms: float


class MeasurementFigures(TypedDict, total=False):
    """The figures of what set precision's points, by how it was measured (Measurement.measured_by)."""

    run_dtype: str | None
    micro_step_ms: float
    target_dtype: str
    target_micro_step_ms: float
    timed_shapes: int
    timed_ms_by_dtype: list[DtypeMs]
    timed_fastest: str
    timed_run_dtype: str
    timed_saving_pct: float


class Measurement(MeasurementFigures):
    measured_by: str  # "micro_step", "shape_timing" or "peaks"


class FixMeasurement(TypedDict, total=False):
    """non_fused's fix timed before the run: attention against SDPA, the optimizer step against a fused one."""

    attention: str
    attention_micro_step_ms: float
    sdpa_micro_step_ms: float
    optimizer_impl: str
    optimizer_step_ms: float
    fused_optimizer_step_ms: float
    fix_saved_ms: float
    step_ms: float
    measured_fix_speedup: float


class BatchMeasurement(TypedDict, total=False):
    """A larger batch's micro-step timed before the run, and what it adds to the step."""

    measured_batch_size: int
    measured_micro_step_ms: float
    batch_size: int
    batch_micro_step_ms: float
    batch_factor: int
    larger_batch_size: int
    larger_batch_micro_step_ms: float
    batch_added_ms: float
    batch_loading_added_ms: float
    batch_copies_added_ms: float
    step_ms: float
    measured_batch_speedup: float


def faster_dtype(evidence: Evidence) -> str:
    """The precision to switch to: the fastest at the trace's own shapes where they were timed here, else the
    device's fastest (the dtype of P; float32 on a CPU that emulates bfloat16), bfloat16 where neither is known."""
    if evidence.shape_timing and not evidence.step_ms_by_dtype:
        return evidence.shape_timing.fastest
    return evidence.fastest_dtype or "bfloat16"


def precision_measurement(evidence: Evidence) -> Measurement:
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


def measured_fix_speedup(evidence: Evidence, config: dict) -> tuple[float, FixMeasurement] | None:
    """The speed-up of non_fused's fix from what our run timed before training at its shapes (step_ms_by_fix: a
    micro-step's forward and backward with its attention and with SDPA, an optimizer step in its implementation
    and fused), and the facts that say so; None where not measured. It can be below 1: on a CPU, bfloat16
    SDPA's backward can be slower than the matmuls it replaces."""
    timed = evidence.meta.step_ms_by_fix or {}
    meta = settings(evidence.meta)
    saved = 0.0
    facts: FixMeasurement = {}
    attention, optimizer = timed.get("attention") or {}, timed.get("optimizer") or {}
    kind = meta.get("attention") or (meta.get("model") or {}).get("attention")  # ours: in the model's config
    if "attention" in config and kind in attention and "sdpa" in attention:
        before, after = attention[kind], attention["sdpa"]
        saved += (before - after) * meta.get("gradient_accumulation_steps", 1)
        facts = {"attention": kind, "attention_micro_step_ms": before, "sdpa_micro_step_ms": after}
    if "optimizer_impl" in config and meta.get("optimizer_impl") in optimizer and "fused" in optimizer:
        before, after = optimizer[meta["optimizer_impl"]], optimizer["fused"]
        saved += before - after
        facts = {**facts, "optimizer_impl": meta["optimizer_impl"], "optimizer_step_ms": before,
                 "fused_optimizer_step_ms": after}
    if not facts:
        return None
    speedup = evidence.step_ms / max(evidence.step_ms - saved, 1e-6)
    return speedup, {**facts, "fix_saved_ms": saved, "step_ms": evidence.step_ms, "measured_fix_speedup": speedup}


def measured_batch_speedup(evidence: Evidence, factor: int, proposed: int | None = None
                           ) -> tuple[float, BatchMeasurement] | None:
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
    facts: BatchMeasurement = ({} if k == factor else
                               {"measured_batch_size": factor * batch, "measured_micro_step_ms": measured})
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
    return min(evidence.observed.host_to_device_ms, evidence.breakdown["memory"].ms)


def measurement_words(measured_by: str, f: MeasurementFigures) -> str:
    if measured_by == "micro_step":
        return (f"measured before the run at its shapes, a micro-step's forward and backward took "
                f"{f['micro_step_ms']:.2f} ms in {f['run_dtype']} and {f['target_micro_step_ms']:.2f} ms in "
                f"{f['target_dtype']}, which sets this cause's points")
    if measured_by == "shape_timing":
        times = " and ".join(f"{t['ms']:.2f} ms/step in {t['dtype']}" for t in f["timed_ms_by_dtype"])
        verdict = (f"{f['timed_fastest']} saves {f['timed_saving_pct']:.0f}% of it, which sets this cause's points"
                   if f["timed_fastest"] != f["timed_run_dtype"] else
                   f"no precision is faster than {f['timed_run_dtype']} at these shapes, so precision costs nothing "
                   "here")
        return (f"timed on this machine at the trace's own {f['timed_shapes']} matmul and attention shapes (with "
                f"autocast's casts of their inputs), the counted matmul time comes to {times}: {verdict}")
    return ("not measured at the run's shapes (the trace was recorded on another machine, or --no-measure): "
            "the points are the ceiling the two peaks give")


def fix_measurement_words(f: FixMeasurement) -> str:
    said = []
    if "attention_micro_step_ms" in f:
        said.append(f"a micro-step's forward and backward {f['attention_micro_step_ms']:.2f} ms with "
                    f"{f['attention']} attention, {f['sdpa_micro_step_ms']:.2f} ms with SDPA")
    if "optimizer_step_ms" in f:
        said.append(f"an optimizer step {f['optimizer_step_ms']:.2f} ms {f['optimizer_impl']}, "
                    f"{f['fused_optimizer_step_ms']:.2f} ms fused")
    return (f"measured before the run at its shapes, {'; '.join(said)}: the fix takes {f['fix_saved_ms']:.2f} ms "
            f"from the {f['step_ms']:.2f} ms step, x{f['measured_fix_speedup']:.2f}")


def batch_measurement_words(f: BatchMeasurement) -> str:
    at = (f"{f['measured_micro_step_ms']:.2f} ms at {f['measured_batch_size']}, so about "
          f"{f['larger_batch_micro_step_ms']:.2f} ms at {f['larger_batch_size']}" if "measured_batch_size" in f
          else f"{f['larger_batch_micro_step_ms']:.2f} ms at {f['larger_batch_size']}")
    return (f"measured before the run, a micro-step's forward and backward took {f['batch_micro_step_ms']:.2f} ms at "
            f"batch {f['batch_size']} and {at}: {f['batch_factor']}x the tokens add {f['batch_added_ms']:.2f} ms to "
            f"the {f['step_ms']:.2f} ms step" + grows_with_samples(f)
            + f", x{f['measured_batch_speedup']:.2f} tokens/s")


def grows_with_samples(f: BatchMeasurement) -> str:
    """The part of a larger batch's added time that the micro-steps leave out: loading and copying the batch."""
    grown = ((f.get("batch_loading_added_ms"), "data loading"),
             (f.get("batch_copies_added_ms"), "copying the batch to the device"))
    parts = [f"{ms:.2f} ms of it {what}" for ms, what in grown if ms]
    return f" ({' and '.join(parts)}, which grow{'s' if len(parts) == 1 else ''} with the samples)" if parts else ""
