"""The communication figures of a rank (what its report shows) and the communication rule: the collectives no
compute hid, the parallelism that ran them, their phases, bus bandwidth and link, each rank's exposure, a pipeline's
bubble, FSDP's all-gathers by module, and the fix in the library's own settings (mfu/parallelism.py)."""

import statistics

from profiler.analysis.records import RankAnalysis, milliseconds
from profiler.facts import Facts
from profiler.mfu.findings import Finding, share
from profiler.mfu.parallelism import collective_rows, display_names, fix_for, named, peer_link, pipeline_bubble
from profiler.mfu.records import Communication, Evidence, LedgerEntry, Share
from profiler.settings import ONE_OFF_COLLECTIVE
from profiler.trace.classify import COMMUNICATION_OP


def communication(entry: LedgerEntry, evidence: Evidence) -> Finding:
    # the collectives by their own names: the copies, views and chunking a library does around them, and ops that
    # merely ran while another thread communicated, are not collectives
    named = [{"name": op.name, "ms": op.ms} for op in evidence.ops
             if op.category == "communication" and COMMUNICATION_OP.search(op.name)]
    facts: Facts = {**share(entry.ms, evidence), "collectives": named}
    comm = evidence.communication
    marks = comm.parallelism if comm else []
    if comm:
        facts.update(communication_facts(comm))
    fix = fix_for(marks)
    kernels = sorted(evidence.signals.collective_kernel_us)
    median = statistics.median(kernels[:-1]) if len(kernels) >= 3 else 0.0
    if median > 0 and kernels[-1] >= ONE_OFF_COLLECTIVE * median:  # the others took time: one stands out
        facts.update(slowest_collective_ms=milliseconds(kernels[-1]), slowest_over_median=kernels[-1] / median,
                     other_collectives=len(kernels) - 1, median_collective_ms=milliseconds(median))
        fix = "profile after a warm-up step to see the steady state, then: " + fix
    return Finding(facts=facts, fix=fix)


def communication_facts(comm: Communication) -> Facts:
    """The parallelism named, the collectives by phase and kind with the most exposed time, and FSDP2's first
    all-gather (the one nothing can prefetch)."""
    facts: Facts = {"parallelism": display_names(comm.parallelism), "group_size": comm.group_size,
                    "backend": comm.backend,
                    "exposed_collectives": [
                        {"name": f"{r.kind} in the {r.phase}", "ms": r.exposed_ms, "calls": r.calls, "mb": r.mb,
                         "bus_gb_per_s": r.bus_gb_per_s} for r in comm.collectives[:3] if r.exposed_ms > 0]}
    best = max((r.bus_gb_per_s for r in comm.collectives if r.bus_gb_per_s), default=None)
    if comm.link_gb_per_s and best:
        facts.update(link=comm.link, best_bus_of_link_pct=100 * best / comm.link_gb_per_s)
    if "pipeline" in comm.parallelism and comm.micro_batches and comm.group_size > 1:
        stages, micro = comm.group_size, comm.micro_batches  # one stage a rank
        facts.update(stages=stages, micro_batches=micro, bubble_pct=100 * pipeline_bubble(stages, round(micro)),
                     bubble_at_twice_pct=100 * pipeline_bubble(stages, 2 * round(micro)))
    if comm.fsdp_all_gather_ms:
        first = next(iter(comm.fsdp_all_gather_ms))
        longest = sorted(comm.fsdp_all_gather_ms.items(), key=lambda kv: -kv[1])[:3]
        facts.update(first_all_gather=first, first_all_gather_ms=comm.fsdp_all_gather_ms[first],
                     all_gathers_by_module=[{"name": name, "ms": ms} for name, ms in longest])
    return facts


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
