"""The communication figures of a rank (what its report shows): collective time per step, how much of it no compute
hid, the parallelism that ran them, their calls and bytes, and the link (the rule that reads them:
diagnosis/communication.py)."""

from profiler.analysis.records import RankAnalysis, milliseconds
from profiler.mfu.parallelism import collective_rows, named, peer_link
from profiler.mfu.records import Communication, Share


def link_fields(analysis: RankAnalysis) -> dict:
    found = peer_link(analysis.device_names[0] if analysis.device_names else "", analysis.comm_backend)
    return {"link": found[0], "link_gb_per_s": found[1]} if found else {}


def communication_figures(analysis: RankAnalysis, breakdown: dict[str, Share]) -> Communication | None:
    """Collective time per step, how much of it no compute hid, and the calls and bytes where recorded."""
    if not analysis.signals.collectives and not analysis.table.collective_us.any():
        return None
    sig = analysis.signals
    total = milliseconds(float(analysis.table.collective_us.mean()))
    exposed = breakdown["communication"].ms
    return Communication(total_ms=total, exposed_ms=exposed, exposed_fraction=exposed / total if total else None,
                         calls_per_step={k: sig.per_step(v) for k, v in sig.collectives.items()},
                         bytes_per_step=sig.per_step(sig.collective_bytes) if sig.collective_bytes else None,
                         parallelism=named(sig), collectives=collective_rows(sig, analysis.group_size),
                         group_size=analysis.group_size, backend=analysis.comm_backend,
                         micro_batches=sig.per_step(sig.pipeline_forwards),
                         **link_fields(analysis),
                         fsdp_all_gather_ms={k: milliseconds(sig.per_step(v)) for k, v in sig.fsdp_unit_us.items()})
