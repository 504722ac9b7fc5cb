"""Whether the inputs of the MFU arithmetic can be true together, and the invariants every report keeps.

MFU and the ledger divide by the peak and by the step time, and credit the model's FLOPs against the matmul
time. A peak measured on another machine, a wrong F_model, or float32 matmuls that really ran in TF32 make
those numbers impossible (MFU over 100%, negative causes). Such inputs are named here, with the factor by
which they miss, and what depends on them is left empty rather than printed wrong.
"""

from dataclasses import replace

from profiler.facts import Note
from profiler.mfu.ledger import LedgerUnit
from profiler.mfu.peak import Peak, table_peaks
from profiler.settings import MATMUL_SLACK, MS_PER_S, RATE_SLACK, TERA


def tf32_peak(peak: Peak, rate: float | None, device: str) -> tuple[Peak, Note | None]:
    """float32 matmuls that ran faster than the float32 peak on a TF32-capable GPU ran in TF32 (a trace does not
    record the setting): P_run becomes the TF32 peak."""
    tf32 = (table_peaks(device) or {}).get("tf32")
    if peak.source != "table" or peak.dtype != "float32" or not tf32:
        return peak, None
    if not rate or rate <= RATE_SLACK * peak.peak_flops_run:
        return peak, Note("tf32_assumed_off")
    note = Note("tf32_on", {"rate_tflops_per_s": rate / TERA, "float32_tflops_per_s": peak.peak_flops_run / TERA,
                            "tf32_tflops_per_s": tf32 / TERA})
    return replace(peak, dtype="tf32", peak_flops_run=tf32), note


def disturbed_measurement(peak: Peak, rate: float | None) -> tuple[Peak, Note | None]:
    """A run's own CPU peak, measured on the machine it ran on, that its matmuls beat was measured while
    something else ran: P_run becomes the rate the run achieved, and P keeps its ratio to it."""
    if peak.source != "measured" or not rate or rate <= peak.peak_flops_run:
        return peak, None
    if peak.ceiling and rate > peak.ceiling:  # past the silicon: the FLOPs it was formed with are wrong
        return peak, Note("raise_refused", {"rate_tflops_per_s": rate / TERA, "dtype": peak.dtype,
                                            "ceiling_tflops_per_s": peak.ceiling / TERA})
    scale = rate / peak.peak_flops_run
    note = Note("measured_peak_raised", {"rate_tflops_per_s": rate / TERA, "dtype": peak.dtype, "scale": scale,
                                         "measured_tflops_per_s": peak.peak_flops_run / TERA})
    return replace(peak, peak_flops=peak.peak_flops * scale, peak_flops_run=rate), note


def implausible_input(peak: Peak, rate: float | None, flops: float, flops_from: str, step_s: float,
                      matmul_s: float, unrecorded_s: float = 0.0) -> Note | None:
    """Why the peak or the FLOPs cannot be right for this trace, or None when they can. The device work the trace
    lost (`unrecorded_s`) may have been matmuls: the FLOPs at P may need it too."""
    if rate and rate > RATE_SLACK * peak.peak_flops_run:
        return Note("implausible_peak", {"rate_tflops_per_s": rate / TERA, "ratio": rate / peak.peak_flops_run,
                                         "peak_run_tflops_per_s": peak.peak_flops_run / TERA, "dtype": peak.dtype,
                                         "peak_source": peak.source})
    ideal = flops / peak.peak_flops
    room = matmul_s + unrecorded_s
    if ideal > step_s or ideal > MATMUL_SLACK * room:
        within = "matmul and unrecorded time of the step" if unrecorded_s > 0 else "matmul time of the step"
        span, what = (step_s, "step") if ideal > step_s else (room, within)
        return Note("implausible_flops", {"flops_from": flops_from, "ideal_ms": MS_PER_S * ideal,
                                          "peak_tflops_per_s": peak.peak_flops / TERA, "peak_source": peak.source,
                                          "ratio": ideal / span if span > 0 else None, "span_ms": MS_PER_S * span,
                                          "span": what})
    return None


def violations(fig) -> list[str]:
    """The invariants of docs/DESIGN.md that a rank's or a job's figures (attribution.Figures) break; empty when all
    hold."""
    out = []
    shares = sum(b.fraction for b in fig.breakdown.values())
    if fig.breakdown and abs(shares - 1) > 1e-6:
        out.append(f"breakdown shares add up to {100 * shares:.4f}%, not 100%")
    mfu = fig.mfu.of_ledger
    if mfu is not None and not 0 <= mfu <= 1:
        out.append(f"MFU {100 * mfu:.2f}% is outside 0-100%")
    if fig.ledger:
        points = sum(e.points for e in fig.ledger)
        if fig.ledger_unit is LedgerUnit.STEP_TIME and abs(points - 100) > 0.01:
            out.append(f"time ledger points add up to {points:.3f}, not 100")
        elif fig.ledger_unit is LedgerUnit.MFU and mfu is not None and abs(points - (100 - 100 * mfu)) > 0.01:
            out.append(f"ledger points add up to {points:.3f}, not 100 - MFU = {100 - 100 * mfu:.3f}")
        out += [f"cause {e.cause} is negative ({e.points:.3f} points)" for e in fig.ledger if e.points < -1e-9]
        out += [f"what-if MFU of {e.cause} is {100 * e.what_if_mfu:.2f}%" for e in fig.ledger
                if e.what_if_mfu is not None and e.what_if_mfu > 1 + 1e-9]
        out += [f"what-if step of {e.cause} is {e.what_if_step_ms:.3f} ms" for e in fig.ledger
                if e.what_if_step_ms is not None and not 0 < e.what_if_step_ms <= fig.step_time_ms.mean + 1e-6]
    return out
