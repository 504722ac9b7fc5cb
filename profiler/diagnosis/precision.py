"""precision: matmuls in a slower precision than the device's fastest. In an MFU ledger from the two peaks (or
from what the faster precision measured at the run's shapes); in a time ledger from the kernels' names."""

from typing import TypedDict, final

from profiler.diagnosis.finding import CauseEntry, Finding, largest_ms
from profiler.diagnosis.measured import Measurement, faster_dtype, measurement_words, precision_measurement
from profiler.diagnosis.words import Largest, largest
from profiler.mfu.ledger import LedgerUnit
from profiler.mfu.records import Evidence, LedgerEntry
from profiler.settings import MS_PER_S, TERA


@final
class PeakPrecisionFacts(Measurement):
    dtype: str
    peak_run_tflop_per_s: float
    peak_tflop_per_s: float
    fastest_dtype: str | None
    ms_at_peak_run: float
    ms_at_peak: float


@final
class KernelPrecisionFacts(TypedDict):
    fp32_matmul_ms: float
    fp32_kernels: list[Largest]
    fp32_speed_pct: float  # float32's rate of the device's fastest
    fp32_lost_pct: float


PrecisionFacts = PeakPrecisionFacts | KernelPrecisionFacts


def rule(entry: LedgerEntry, evidence: Evidence) -> Finding[PrecisionFacts]:
    if evidence.unit is LedgerUnit.STEP_TIME:
        return from_kernels(evidence)
    target = faster_dtype(evidence)
    facts: PeakPrecisionFacts = {
        "dtype": evidence.dtype or "unknown", "peak_run_tflop_per_s": evidence.peak_run / TERA,
        "peak_tflop_per_s": evidence.peak / TERA, "fastest_dtype": evidence.fastest_dtype,
        "ms_at_peak_run": MS_PER_S * evidence.flops / evidence.peak_run,
        "ms_at_peak": MS_PER_S * evidence.flops / evidence.peak, **precision_measurement(evidence)}
    return Finding(facts=facts, fix=autocast_fix(target, evidence.kind),
                   config={"dtype": target} if target in ("float32", "bfloat16") else None)


def from_kernels(evidence: Evidence) -> Finding[PrecisionFacts]:
    """Precision in a time ledger: the kernels' names say float32 on SIMT cores, the device table what that
    costs against the device's fastest precision."""
    seen = evidence.observed
    speed = evidence.fp32_speed or 0
    facts: KernelPrecisionFacts = {"fp32_matmul_ms": seen.fp32_matmul_ms,
                                   "fp32_kernels": largest_ms(seen.fp32_kernels_ms), "fp32_speed_pct": 100 * speed,
                                   "fp32_lost_pct": 100 * (1 - speed)}
    half = "bfloat16" if evidence.fastest_dtype == "bfloat16" else "float16"
    return Finding(facts=facts, fix=mixed_precision_fix(half),
                   config={"dtype": "bfloat16"} if half == "bfloat16" else None)


def autocast_fix(target: str, kind: str) -> str:
    if target == "float32":  # a CPU that emulates bfloat16 (no AVX-512-BF16 or AMX): float32 is the fast one
        return "train in float32 (no bfloat16 autocast): this CPU has no native bfloat16 matmuls"
    fix = f"{target} autocast (torch.autocast(device_type, dtype=torch.{target}))"
    if kind != "cpu":
        fix += ", or TF32 for float32 matmuls (torch.backends.cuda.matmul.allow_tf32 = True)"
    return fix


def mixed_precision_fix(half: str) -> str:
    return (f"mixed precision: torch.autocast(device_type, dtype=torch.{half})"
            + (" with torch.amp.GradScaler" if half == "float16" else "")
            + ", or TF32 for float32 matmuls where the device has it (torch.backends.cuda.matmul.allow_tf32 = True, "
              "torch.backends.cudnn.allow_tf32 = True)")


def evidence_words(f: PrecisionFacts) -> str:
    if "fp32_matmul_ms" in f:  # a time ledger: from the kernels' names
        return (f"float32 matmul and convolution kernels on the SIMT cores {f['fp32_matmul_ms']:.2f} ms/step "
                f"(largest: {largest(f['fp32_kernels'])}); the device does {f['fp32_speed_pct']:.0f}% of its "
                f"fastest rate in float32, so they lose {f['fp32_lost_pct']:.0f}% of their time")
    return (f"matmuls ran in {f['dtype']}: the device's large GEMMs do {f['peak_run_tflop_per_s']:.3g} TFLOP/s in it "
            f"against {f['peak_tflop_per_s']:.3g} in {f['fastest_dtype'] or 'its fastest precision'}; the model's "
            f"FLOPs need {f['ms_at_peak_run']:.2f} ms/step at the first, {f['ms_at_peak']:.2f} at the second; "
            + measurement_words(f["measured_by"], f))


PRECISION = CauseEntry(rule=rule, evidence=evidence_words, what="matmuls in a slower precision", categories=("matmul",))
