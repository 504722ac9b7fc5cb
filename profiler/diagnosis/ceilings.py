"""What the diagnosis says of the roofline, as facts and their words: which matmuls are memory-bound and which run
below a compute ceiling, how far the elementwise ops are from the memory ceiling, how fast the copies crossed their
link, and what a larger batch can bring when the per-step costs stay (where it was not measured: measured.py)."""

from typing import NotRequired, Required, TypedDict

from profiler.mfu.records import Evidence, OpRow
from profiler.settings import GIGA, MEGA

HOST_LINK = ("HtoD", "DtoH", "HtoH")  # memcpy kinds that cross the host link; DtoD stays in device memory


class OnRoofline(TypedDict):
    name: str
    ms: float
    of_roofline_pct: float
    bound: str  # "memory" or "compute"


class MatmulBounds(TypedDict, total=False):
    memory_bound_matmuls: list[OnRoofline]
    compute_bound_matmuls: list[OnRoofline]


class Intensity(TypedDict):
    name: str
    flop_per_byte: float


class SmallMatmulBounds(TypedDict, total=False):
    memory_bound_matmul_count: int
    memory_bound_matmul_ms: float
    placed_matmul_ms: float
    memory_bound_intensity: list[Intensity]


class ElementwiseTraffic(TypedDict, total=False):
    elementwise_bytes_known: Required[bool]  # the rest where it is True
    elementwise_mb_per_step: float
    elementwise_gb_per_s: float
    elementwise_of_bandwidth_pct: float
    fusable_pct: float
    removable_ms: float
    largest_elementwise: list[OnRoofline]


class CopyLink(TypedDict):
    kind: str
    gb_per_s: float
    of_link_pct: NotRequired[float]
    link: NotRequired[str]


class CopyLinks(TypedDict, total=False):
    copy_links: list[CopyLink]


def op_name(op: OpRow) -> str:
    return op.name.removeprefix("aten::")


def on_roofline(op: OpRow) -> OnRoofline:
    """An op's time and where it stands against its roofline."""
    r = op.roofline
    assert r is not None
    return {"name": op_name(op), "ms": op.ms, "of_roofline_pct": 100 * r.of_roofline, "bound": r.bound}


def placed_matmuls(evidence: Evidence) -> list[OpRow]:
    """The matmul ops with counted FLOPs and a roofline, largest first."""
    return [op for op in evidence.ops if op.category == "matmul" and op.roofline and op.flops]


def matmul_bounds(evidence: Evidence) -> MatmulBounds:
    """The largest matmuls that are memory-bound, and those compute-bound below P_run (three of each at most)."""
    ops = placed_matmuls(evidence)[:6]
    memory, compute = ([on_roofline(op) for op in ops if op.roofline and op.roofline.bound == bound][:3]
                       for bound in ("memory", "compute"))
    out: MatmulBounds = {}
    if memory:
        out["memory_bound_matmuls"] = memory
    if compute:
        out["compute_bound_matmuls"] = compute
    return out


def small_matmul_bounds(evidence: Evidence) -> SmallMatmulBounds:
    """The memory-bound matmuls, evidence that the batch is small: their share of the matmul time."""
    ops = placed_matmuls(evidence)
    memory = [op for op in ops if op.roofline and op.roofline.bound == "memory"]
    if not memory:
        return {}
    return {"memory_bound_matmul_count": len(memory), "memory_bound_matmul_ms": sum(op.ms for op in memory),
            "placed_matmul_ms": sum(op.ms for op in ops),
            "memory_bound_intensity": [{"name": op_name(op), "flop_per_byte": op.roofline.intensity}
                                       for op in memory[:3] if op.roofline]}


def elementwise_traffic(evidence: Evidence, removable_ms: float) -> ElementwiseTraffic:
    """The elementwise ops' bandwidth against the ceiling, and what fusion removes of their time."""
    seen = evidence.observed
    if not seen.elementwise_bytes:
        return {"elementwise_bytes_known": False}
    rate = seen.elementwise_bytes_per_s
    out: ElementwiseTraffic = {"elementwise_bytes_known": True,
                               "elementwise_mb_per_step": seen.elementwise_bytes / MEGA,
                               "elementwise_gb_per_s": rate / GIGA}
    if evidence.bandwidth:
        out["elementwise_of_bandwidth_pct"] = 100 * rate / evidence.bandwidth.bytes_per_s
    out["fusable_pct"] = seen.fusable_pct
    out["removable_ms"] = removable_ms
    largest = [on_roofline(op) for op in evidence.ops if op.category == "other_compute" and op.roofline][:3]
    if largest:
        out["largest_elementwise"] = largest
    return out


def copy_links(evidence: Evidence) -> CopyLinks:
    """Each kind of copy's achieved bandwidth against the link it crosses: PCIe for host copies, memory for
    device-to-device."""
    links = []
    for copy in evidence.observed.copies[:3]:
        rate = copy.bytes_per_s
        if rate is None:  # its time was not recorded
            continue
        host = any(k in copy.kind for k in HOST_LINK)
        ceiling = evidence.bandwidth
        link = (ceiling.link_bytes_per_s if host else ceiling.bytes_per_s) if ceiling else None
        item: CopyLink = {"kind": copy.kind, "gb_per_s": rate / GIGA}
        if link:
            item["of_link_pct"] = 100 * rate / link
            item["link"] = "PCIe" if host else "device memory"
        links.append(item)
    return {"copy_links": links} if links else {}


def batch_speedup(points: float, factor: float) -> float:
    """Tokens/s speed-up from a batch `factor` times larger when small_batch's share of the step (points of it)
    is cost per step that does not grow with the batch and the rest grows in proportion."""
    fixed = min(max(points / 100, 0.0), 1.0)
    return factor / (fixed + factor * (1 - fixed))


def on_roofline_words(items: list[OnRoofline]) -> str:
    return ", ".join(f"{i['name']} {i['ms']:.2f} ms ({i['of_roofline_pct']:.0f}% of its {i['bound']} roofline)"
                     for i in items)


def matmul_bounds_words(f: MatmulBounds) -> list[str]:
    out = []
    if "memory_bound_matmuls" in f:
        out.append("memory-bound (too small for the peak: larger batches or fused shapes): "
                   + on_roofline_words(f["memory_bound_matmuls"]))
    if "compute_bound_matmuls" in f:
        out.append("compute-bound, below P_run: " + on_roofline_words(f["compute_bound_matmuls"]))
    return out


def small_matmul_words(f: SmallMatmulBounds) -> str:
    return (f"{f['memory_bound_matmul_count']} matmul op(s) memory-bound at these shapes "
            f"({f['memory_bound_matmul_ms']:.2f} ms/step of {f['placed_matmul_ms']:.2f}): "
            + ", ".join(f"{m['name']} {m['flop_per_byte']:.0f} FLOP/byte" for m in f["memory_bound_intensity"]))


def elementwise_words(f: ElementwiseTraffic) -> str:
    if not f["elementwise_bytes_known"]:
        return "their bytes are unknown (no recorded shapes): the what-if is all of their time, an upper bound"
    ceiling = (f", {f['elementwise_of_bandwidth_pct']:.0f}% of the memory ceiling"
               if "elementwise_of_bandwidth_pct" in f else "")
    text = (f"they move {f['elementwise_mb_per_step']:,.1f} MB/step at {f['elementwise_gb_per_s']:,.1f} GB/s{ceiling}; "
            f"{f['fusable_pct']:.0f}% of it is intermediates one op writes and the next reads, which fusion removes: "
            f"the what-if counts {f['removable_ms']:.2f} ms of this cause")
    if f.get("largest_elementwise"):
        text += "; largest: " + on_roofline_words(f["largest_elementwise"])
    return text


def copy_links_words(f: CopyLinks) -> str:
    parts = [f"{c['kind']} {c['gb_per_s']:,.1f} GB/s" + (f", {c['of_link_pct']:.0f}% of {c['link']}"
                                                        if "link" in c else "") for c in f.get("copy_links", [])]
    return ("copies crossed at " + "; ".join(parts)) if parts else ""
