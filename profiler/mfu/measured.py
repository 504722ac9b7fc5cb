"""What the diagnosis quotes from measurements made on the machine that recorded the run: our runs' timings of
a micro-step before training (per precision, at 4x the batch, with non_fused's fix) and the trace's shapes
timed here (shapetime.py). Each gives a cause's points or a fix's predicted speed-up in place of a model."""

from profiler.mfu.records import Evidence
from profiler.mfu.vocabulary import settings


def faster_dtype(ev: Evidence) -> str:
    """The precision to switch to: the fastest at the trace's own shapes where they were timed here, else the
    device's fastest (the dtype of P; float32 on a CPU that emulates bfloat16), bfloat16 where neither is known."""
    if ev.shape_timing and not ev.step_ms_by_dtype:
        return ev.shape_timing.fastest
    return ev.fastest_dtype or "bfloat16"


def precision_measurement(ev: Evidence) -> str:
    """What set precision's points: our run's micro-steps, the trace's shapes timed here, or (neither) the
    peaks' ceiling."""
    measured, timing, target = ev.step_ms_by_dtype, ev.shape_timing, faster_dtype(ev)
    if ev.dtype in measured and target in measured and target != ev.dtype:
        return (f"measured before the run at its shapes, a micro-step's forward and backward took "
                f"{measured[ev.dtype]:.2f} ms in {ev.dtype} and {measured[target]:.2f} ms in {target}, "
                "which sets this cause's points")
    if timing:
        times = " and ".join(f"{us / 1000:.2f} ms/step in {d}" for d, us in timing.us_by_dtype.items())
        verdict = (f"{timing.fastest} saves {100 * timing.saving_share:.0f}% of it, which sets this cause's points"
                   if timing.fastest != timing.run_dtype else
                   f"no precision is faster than {timing.run_dtype} at these shapes, so precision costs nothing here")
        return (f"timed on this machine at the trace's own {timing.shapes} matmul and attention shapes (with "
                f"autocast's casts of their inputs), the counted matmul time comes to {times}: {verdict}")
    return ("not measured at the run's shapes (the trace was recorded on another machine, or --no-measure): "
            "the points are the ceiling the two peaks give")


def measured_fix_speedup(ev: Evidence, config: dict) -> tuple[float, str] | None:
    """The speed-up of non_fused's fix from what our run timed before training at its shapes (step_ms_by_fix: a
    micro-step's forward and backward with its attention and with SDPA, an optimizer step in its implementation
    and fused), and the evidence that says so; None where not measured. It can be below 1: on a CPU, bfloat16
    SDPA's backward can be slower than the matmuls it replaces."""
    timed = ev.meta.get("step_ms_by_fix") or {}
    meta = settings(ev.meta)
    saved, said = 0.0, []
    attention, optimizer = timed.get("attention") or {}, timed.get("optimizer") or {}
    kind = meta.get("attention") or (meta.get("model") or {}).get("attention")  # ours: in the model's config
    if "attention" in config and kind in attention and "sdpa" in attention:
        before, after = attention[kind], attention["sdpa"]
        saved += (before - after) * meta.get("gradient_accumulation_steps", 1)
        said.append(f"a micro-step's forward and backward {before:.2f} ms with {kind} attention, "
                    f"{after:.2f} ms with SDPA")
    if "optimizer_impl" in config and meta.get("optimizer_impl") in optimizer and "fused" in optimizer:
        before, after = optimizer[meta["optimizer_impl"]], optimizer["fused"]
        saved += before - after
        said.append(f"an optimizer step {before:.2f} ms {meta['optimizer_impl']}, {after:.2f} ms fused")
    if not said:
        return None
    speedup = ev.step_ms / max(ev.step_ms - saved, 1e-6)
    return speedup, (f"measured before the run at its shapes, {'; '.join(said)}: the fix takes {saved:.2f} ms "
                     f"from the {ev.step_ms:.2f} ms step, x{speedup:.2f}")


def measured_batch_speedup(ev: Evidence, factor: int) -> tuple[float, str] | None:
    """The speed-up of a batch `factor` times larger from what our run measured before training (a micro-step's
    forward and backward at its batch and at `factor` times it): the step grows by that difference per
    micro-step, the tokens by `factor`; and the evidence that says so. None where not measured."""
    meta = settings(ev.meta)
    batch = meta.get("batch_size")
    if not batch:
        return None
    small, large = ev.step_ms_by_batch.get(str(batch)), ev.step_ms_by_batch.get(str(factor * batch))
    if small is None or large is None:
        return None
    added = (large - small) * meta.get("gradient_accumulation_steps", 1)
    speedup = factor * ev.step_ms / (ev.step_ms + max(added, 0.0))
    return speedup, (f"measured before the run, a micro-step's forward and backward took {small:.2f} ms at batch "
                     f"{batch} and {large:.2f} ms at {factor * batch}: {factor}x the tokens add {added:.2f} ms to the "
                     f"{ev.step_ms:.2f} ms step, x{speedup:.2f} tokens/s")
