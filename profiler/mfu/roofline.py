"""The roofline per op: how far each op ran from the two ceilings, its matmuls' peak P_run and the memory
bandwidth, and what fusion could remove of the elementwise time.

For an op with F FLOPs and B bytes per step (their calls whose shapes say; nbytes.py), the arithmetic intensity
is F / B, the attainable rate min(P_run, F/B · BW), and the roofline time max(F / P_run, B / BW): no kernel can
do the op faster. The op's share of its roofline is that time over the time its calls took; it is memory-bound
where B / BW is the larger term. Ops without counted FLOPs (elementwise, norms, copies) are memory-bound by
construction: their few FLOPs per byte are not counted.
"""

from dataclasses import dataclass

from profiler.analysis.records import OpStats
from profiler.settings import MS_PER_S, TERA


@dataclass(frozen=True, kw_only=True)
class Roofline:
    intensity: float  # FLOP per byte
    attainable_tflops: float  # min(P_run, intensity × BW), TFLOP/s
    roofline_ms: float  # per step: max(F / P_run, B / BW)
    achieved_tflops: float | None  # F over the time of the calls whose bytes are known
    achieved_tb_s: float  # B over that time
    of_roofline: float  # the roofline time over that time, at most 1
    bound: str  # "memory" or "compute"
    above_ceiling: bool = False  # ran faster than the memory ceiling allows: its data stayed in cache (CPU)


def op_roofline(s: OpStats, n_steps: int, peak_run: float | None, bandwidth: float | None) -> Roofline | None:
    """The op's roofline, or None where its bytes are unknown, no bandwidth is known, or it has FLOPs and no P_run."""
    if not (bandwidth and s.bytes > 0 and s.byte_us > 0) or (s.flops and not peak_run):
        return None
    seconds = s.byte_seconds()
    compute_s = s.flops / peak_run if s.flops and peak_run else 0.0
    memory_s = s.bytes / bandwidth
    roofline_s = max(compute_s, memory_s)
    intensity = s.flops / s.bytes
    attainable = min(peak_run, intensity * bandwidth) if peak_run and s.flops else intensity * bandwidth
    return Roofline(intensity=intensity, attainable_tflops=attainable / TERA,
                    roofline_ms=MS_PER_S * roofline_s / n_steps,
                    achieved_tflops=s.flops / seconds / TERA if s.flops else None,
                    achieved_tb_s=s.bytes / seconds / TERA, of_roofline=min(roofline_s / seconds, 1.0),
                    bound="compute" if compute_s > memory_s else "memory", above_ceiling=roofline_s > seconds)


def fusion_removable(non_fused_s: float, kernel_s: float, intermediate: float, moved: float) -> float:
    """The seconds of non_fused that fusion can remove: all of its dispatch and unfused-attention overhead, and
    of its kernel time (`kernel_s`, elementwise / norm / softmax / optimizer) the share its intermediate reads and
    writes make of the bytes those kernels move. Fused kernels still read their inputs and write their
    outputs once. Where the bytes are unknown (no shapes), the whole time stands, an upper bound."""
    if moved <= 0:
        return non_fused_s
    kernel_s = min(max(kernel_s, 0.0), non_fused_s)
    return non_fused_s - kernel_s * (1 - min(intermediate / moved, 1.0))
