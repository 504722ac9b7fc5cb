"""What the diagnosis says of the roofline, as facts: which matmuls are memory-bound and which run below a compute
ceiling, how far the elementwise ops are from the memory ceiling, how fast the copies crossed their link, and what
a larger batch can bring when the per-step costs stay (where it was not measured: measured.py)."""

from profiler.analysis.records import seconds
from profiler.facts import Facts
from profiler.mfu.records import Evidence, OpRow
from profiler.settings import GIGA, MEGA

HOST_LINK = ("HtoD", "DtoH", "HtoH")  # memcpy kinds that cross the host link; DtoD stays in device memory


def op_name(op: OpRow) -> str:
    return op.name.removeprefix("aten::")


def on_roofline(op: OpRow) -> dict:
    """An op's time and where it stands against its roofline."""
    r = op.roofline
    assert r is not None
    return {"name": op_name(op), "ms": op.ms, "of_roofline_pct": 100 * r.of_roofline, "bound": r.bound}


def placed_matmuls(evidence: Evidence) -> list[OpRow]:
    """The matmul ops with counted FLOPs and a roofline, largest first."""
    return [op for op in evidence.ops if op.category == "matmul" and op.roofline and op.flops]


def matmul_bounds(evidence: Evidence) -> Facts:
    """The largest matmuls that are memory-bound, and those compute-bound below P_run (three of each at most)."""
    ops = placed_matmuls(evidence)[:6]
    out: Facts = {}
    for bound in ("memory", "compute"):
        chosen = [on_roofline(op) for op in ops if op.roofline and op.roofline.bound == bound][:3]
        if chosen:
            out[f"{bound}_bound_matmuls"] = chosen
    return out


def small_matmul_bounds(evidence: Evidence) -> Facts:
    """The memory-bound matmuls, evidence that the batch is small: their share of the matmul time."""
    ops = placed_matmuls(evidence)
    memory = [op for op in ops if op.roofline and op.roofline.bound == "memory"]
    if not memory:
        return {}
    return {"memory_bound_matmul_count": len(memory), "memory_bound_matmul_ms": sum(op.ms for op in memory),
            "placed_matmul_ms": sum(op.ms for op in ops),
            "memory_bound_intensity": [{"name": op_name(op), "flop_per_byte": op.roofline.intensity}
                                       for op in memory[:3] if op.roofline]}


def elementwise_traffic(evidence: Evidence, removable_ms: float) -> Facts:
    """The elementwise ops' bandwidth against the ceiling, and what fusion removes of their time."""
    sig = evidence.signals
    if not sig.elementwise_bytes:
        return {"elementwise_bytes_known": False}
    rate = sig.elementwise_bytes / seconds(sig.elementwise_byte_us) if sig.elementwise_byte_us else 0.0
    out: Facts = {"elementwise_bytes_known": True,
                  "elementwise_mb_per_step": sig.per_step(sig.elementwise_bytes) / MEGA,
                  "elementwise_gb_per_s": rate / GIGA}
    if evidence.bandwidth:
        out["elementwise_of_bandwidth_pct"] = 100 * rate / evidence.bandwidth.bytes_per_s
    out.update(fusable_pct=100 * sig.fusable_bytes / sig.elementwise_bytes, removable_ms=removable_ms)
    largest = [on_roofline(op) for op in evidence.ops if op.category == "other_compute" and op.roofline][:3]
    if largest:
        out["largest_elementwise"] = largest
    return out


def copy_links(evidence: Evidence) -> Facts:
    """Each kind of copy's achieved bandwidth against the link it crosses: PCIe for host copies, memory for
    device-to-device."""
    sig = evidence.signals
    links = []
    for kind, moved in sig.memcpy_bytes.most_common(3):
        us = sig.memcpy_us.get(kind, 0.0)
        if not us:
            continue
        rate = moved / seconds(us)
        host = any(k in kind for k in HOST_LINK)
        ceiling = evidence.bandwidth
        link = (ceiling.link_bytes_per_s if host else ceiling.bytes_per_s) if ceiling else None
        item = {"kind": kind, "gb_per_s": rate / GIGA}
        if link:
            item.update(of_link_pct=100 * rate / link, link="PCIe" if host else "device memory")
        links.append(item)
    return {"copy_links": links} if links else {}


def batch_speedup(points: float, factor: float) -> float:
    """Tokens/s speed-up from a batch `factor` times larger when small_batch's share of the step (points of it)
    is cost per step that does not grow with the batch and the rest grows in proportion."""
    fixed = min(max(points / 100, 0.0), 1.0)
    return factor / (fixed + factor * (1 - fixed))
