"""matmul_efficiency: the matmul time beyond what the FLOPs need at P that precision and the other causes do not
take: the counted matmuls' rate, their shapes timed alone, and where each stands on its roofline."""

from typing import NotRequired

from profiler.analysis.records import seconds
from profiler.diagnosis.ceilings import MatmulBounds, matmul_bounds, matmul_bounds_words
from profiler.diagnosis.finding import CauseEntry, Finding, share
from profiler.diagnosis.measured import MeasurementFigures, measurement_words, precision_measurement
from profiler.diagnosis.words import ShareFacts, share_words
from profiler.mfu.records import Evidence, LedgerEntry
from profiler.settings import TERA


class MatmulFacts(ShareFacts, MeasurementFigures, MatmulBounds):
    peak_tflop_per_s: float
    fastest_dtype: str | None
    precision_ms: float
    counted_tflop_per_s: NotRequired[float]  # where matmul time was recorded
    counted_of_peak_run_pct: NotRequired[float]
    peak_run_tflop_per_s: NotRequired[float]
    dtype: NotRequired[str | None]
    precision_takes_none: NotRequired[bool]  # with the measurement that says why
    measured_by: NotRequired[str]
    alone_tflop_per_s: NotRequired[float]  # the trace's shapes timed alone here
    alone_dtype: NotRequired[str]
    alone_of_peak_run_pct: NotRequired[float]
    uncounted_matmul_ms: NotRequired[float]


def rule(entry: LedgerEntry, evidence: Evidence) -> Finding[MatmulFacts]:
    facts: MatmulFacts = {"peak_tflop_per_s": evidence.peak / TERA, "fastest_dtype": evidence.fastest_dtype,
                          "precision_ms": evidence.precision_ms, **share(entry.ms, evidence)}
    matmul_s = evidence.observed.matmul_s
    rate = evidence.counted_flops / matmul_s / TERA if matmul_s else None
    if rate:
        facts = {**facts, "counted_tflop_per_s": rate, "counted_of_peak_run_pct": 100 * rate * TERA / evidence.peak_run,
                 "peak_run_tflop_per_s": evidence.peak_run / TERA, "dtype": evidence.dtype}
    timing = evidence.shape_timing
    measured = precision_measurement(evidence)
    if evidence.precision_ms < 0.005 and measured["measured_by"] != "peaks":  # say why precision holds none
        facts = {**facts, "precision_takes_none": True, **measured}
    if timing and timing.isolated_us.get(timing.run_dtype):
        alone = timing.flops / seconds(timing.isolated_us[timing.run_dtype]) / TERA
        facts = {**facts, "alone_tflop_per_s": alone, "alone_dtype": timing.run_dtype,
                 "alone_of_peak_run_pct": 100 * alone * TERA / evidence.peak_run}
    if evidence.uncounted_matmul_ms:
        facts["uncounted_matmul_ms"] = evidence.uncounted_matmul_ms
    return Finding(facts={**facts, **matmul_bounds(evidence)}, fix=LARGER_ALIGNED_MATMULS)


LARGER_ALIGNED_MATMULS = ("matmul dimensions multiples of 64 (128 on tensor cores), larger matmuls, "
                          "torch.compile(mode='max-autotune')")


def evidence_words(f: MatmulFacts) -> str:
    text = (f"matmul time beyond what the FLOPs need at P ({f['peak_tflop_per_s']:.3g} TFLOP/s, "
            f"{f['fastest_dtype'] or 'the fastest precision'}) that precision ({f['precision_ms']:.2f} ms) and the "
            f"other causes do not take {share_words(f)}")
    if "counted_tflop_per_s" in f:
        text += (f"; counted matmuls run at {f['counted_tflop_per_s']:.3g} TFLOP/s, "
                 f"{f['counted_of_peak_run_pct']:.0f}% of P_run ({f['peak_run_tflop_per_s']:.3g} TFLOP/s in "
                 f"{f['dtype']})")
    if f.get("precision_takes_none"):
        text += "; precision takes none of it: " + measurement_words(f["measured_by"], f)
    if "alone_tflop_per_s" in f:
        text += (f"; timed alone on this machine, their shapes reach {f['alone_tflop_per_s']:.3g} TFLOP/s in "
                 f"{f['alone_dtype']} ({f['alone_of_peak_run_pct']:.0f}% of P_run): the rest of the gap to P_run is "
                 "the shapes themselves")
    if "uncounted_matmul_ms" in f:
        text += (f"; {f['uncounted_matmul_ms']:.2f} ms/step of the matmul time ran in ops whose FLOPs are not "
                 "counted, so part of this is work F_counted leaves out")
    bounds = matmul_bounds_words(f)
    return text + ("; " + "; ".join(bounds) if bounds else "")


MATMUL_EFFICIENCY = CauseEntry(rule=rule, evidence=evidence_words,
                               what="matmuls below the peak", categories=("matmul",))
