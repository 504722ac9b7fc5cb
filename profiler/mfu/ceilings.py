"""What the diagnosis says of the roofline: which matmuls are memory-bound and which run below a compute
ceiling, how far the elementwise ops are from the memory ceiling, how fast the copies crossed their link, and what
a larger batch can bring when the per-step costs stay (where it was not measured: measured.py)."""

from profiler.analysis.signals import Signals
from profiler.mfu.records import Evidence, OpRow

HOST_LINK = ("HtoD", "DtoH", "HtoH")  # memcpy kinds that cross the host link; DtoD stays in device memory


def op_name(op: OpRow) -> str:
    return op.name.removeprefix("aten::")


def _of_roofline(op: OpRow) -> str:
    r = op.roofline
    assert r is not None
    return f"{100 * r.of_roofline:.0f}% of its {r.bound} roofline"


def placed_matmuls(ev: Evidence) -> list[OpRow]:
    """The matmul ops with counted FLOPs and a roofline, largest first."""
    return [op for op in ev.ops if op.category == "matmul" and op.roofline and op.flops]


def matmul_bounds(ev: Evidence) -> str:
    """'memory-bound: bmm 0.40 ms (12% of its memory roofline); compute-bound below the ceiling: mm ...'."""
    ops = placed_matmuls(ev)[:6]
    if not ops:
        return ""
    parts = []
    for bound, label in (("memory", "memory-bound (too small for the peak: larger batches or fused shapes)"),
                         ("compute", "compute-bound, below P_run")):
        chosen = [op for op in ops if op.roofline and op.roofline.bound == bound][:3]
        if chosen:
            parts.append(f"{label}: " + ", ".join(f"{op_name(op)} {op.ms:.2f} ms ({_of_roofline(op)})"
                                                  for op in chosen))
    return "; ".join(parts)


def small_matmul_bounds(ev: Evidence) -> str:
    """The memory-bound matmuls, evidence that the batch is small: their share of the matmul time."""
    ops = placed_matmuls(ev)
    memory = [op for op in ops if op.roofline and op.roofline.bound == "memory"]
    if not memory:
        return ""
    ms = sum(op.ms for op in memory)
    return (f"{len(memory)} matmul op(s) memory-bound at these shapes ({ms:.2f} ms/step of "
            f"{sum(op.ms for op in ops):.2f}): " + ", ".join(f"{op_name(op)} {op.roofline.intensity:.0f} FLOP/byte"
                                                          for op in memory[:3] if op.roofline))


def elementwise_traffic(ev: Evidence, removable_ms: float) -> str:
    """The elementwise ops' bandwidth against the ceiling, and what fusion removes of their time."""
    sig: Signals = ev.signals
    n = max(sig.steps, 1)
    if not sig.elementwise_bytes:
        return "their bytes are unknown (no recorded shapes): the what-if is all of their time, an upper bound"
    rate = sig.elementwise_bytes / (sig.elementwise_byte_us / 1e6) if sig.elementwise_byte_us else 0.0
    ceiling = f", {100 * rate / ev.bandwidth.bytes_per_s:.0f}% of the memory ceiling" if ev.bandwidth else ""
    text = (f"they move {sig.elementwise_bytes / n / 1e6:,.1f} MB/step at {rate / 1e9:,.1f} GB/s{ceiling}; "
            f"{100 * sig.fusable_bytes / sig.elementwise_bytes:.0f}% of it is intermediates one op writes and the "
            f"next reads, which fusion removes: the what-if counts {removable_ms:.2f} ms of this cause")
    largest = [op for op in ev.ops if op.category == "other_compute" and op.roofline][:3]
    if largest:
        text += "; largest: " + ", ".join(f"{op_name(op)} {op.ms:.2f} ms ({_of_roofline(op)})" for op in largest)
    return text


def copy_links(ev: Evidence) -> str:
    """Each kind of copy's achieved bandwidth against the link it crosses: PCIe for host copies, memory for
    device-to-device."""
    sig: Signals = ev.signals
    parts = []
    for kind, moved in sig.memcpy_bytes.most_common(3):
        us = sig.memcpy_us.get(kind, 0.0)
        if not us:
            continue
        rate = moved / (us / 1e6)
        host = any(k in kind for k in HOST_LINK)
        link = (ev.bandwidth.link_bytes_per_s if host else ev.bandwidth.bytes_per_s) if ev.bandwidth else None
        against = f", {100 * rate / link:.0f}% of {'PCIe' if host else 'device memory'}" if link else ""
        parts.append(f"{kind} {rate / 1e9:,.1f} GB/s{against}")
    return ("copies crossed at " + "; ".join(parts)) if parts else ""


def batch_speedup(points: float, factor: float) -> float:
    """Tokens/s speed-up from a batch `factor` times larger when small_batch's share of the step (points of it)
    is cost per step that does not grow with the batch and the rest grows in proportion."""
    fixed = min(max(points / 100, 0.0), 1.0)
    return factor / (fixed + factor * (1 - fixed))
