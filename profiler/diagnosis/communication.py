"""communication: the collectives no compute hid, the parallelism that ran them, their phases, bus bandwidth and
link, each rank's exposure, a pipeline's bubble, FSDP's all-gathers by module, and the fix in the library's own
settings (mfu/parallelism.py)."""

import statistics
from typing import NotRequired, TypedDict

from profiler.analysis.records import milliseconds
from profiler.diagnosis.finding import CauseEntry, Finding, share
from profiler.diagnosis.words import Largest, ShareFacts, share_words, short_name
from profiler.mfu.parallelism import display_names, fix_for, pipeline_bubble
from profiler.mfu.records import Communication, Evidence, LedgerEntry
from profiler.settings import ONE_OFF_COLLECTIVE
from profiler.trace.classify import COMMUNICATION_OP


class ExposedCollective(TypedDict):
    name: str  # its kind and phase: "all_reduce in the backward"
    ms: float
    calls: float
    mb: float
    bus_gb_per_s: float | None


class RankExposure(TypedDict):
    rank: int
    ms: float
    pct: float


class CollectiveFacts(TypedDict, total=False):
    """What the rank's communication figures say: the parallelism, the most exposed collectives, the link, a
    pipeline's bubble, FSDP's all-gathers."""

    parallelism: list[str]
    group_size: int
    backend: str  # nccl, gloo, ...
    exposed_collectives: list[ExposedCollective]
    link: str
    best_bus_of_link_pct: float
    stages: int
    micro_batches: float
    bubble_pct: float
    bubble_at_twice_pct: float
    first_all_gather: str
    first_all_gather_ms: float
    all_gathers_by_module: list[Largest]


class CommunicationFacts(ShareFacts, CollectiveFacts):
    collectives: list[Largest]  # the collective ops by their own names
    slowest_collective_ms: NotRequired[float]  # one collective kernel that stands out: a one-off
    slowest_over_median: NotRequired[float]
    other_collectives: NotRequired[int]
    median_collective_ms: NotRequired[float]
    exposed_by_rank: NotRequired[list[RankExposure]]  # a job's (mfu/job.py)


def rule(entry: LedgerEntry, evidence: Evidence) -> Finding[CommunicationFacts]:
    # the collectives by their own names: the copies, views and chunking a library does around them, and ops that
    # merely ran while another thread communicated, are not collectives
    named: list[Largest] = [{"name": op.name, "ms": op.ms} for op in evidence.ops
                            if op.category == "communication" and COMMUNICATION_OP.search(op.name)]
    facts: CommunicationFacts = {**share(entry.ms, evidence), "collectives": named}
    comm = evidence.communication
    marks = comm.parallelism if comm else []
    if comm:
        facts = {**facts, **collective_facts(comm)}
    fix = fix_for(marks)
    kernels = evidence.observed.collective_kernel_us  # shortest first
    median = statistics.median(kernels[:-1]) if len(kernels) >= 3 else 0.0
    if median > 0 and kernels[-1] >= ONE_OFF_COLLECTIVE * median:  # the others took time: one stands out
        facts = {**facts, "slowest_collective_ms": milliseconds(kernels[-1]),
                 "slowest_over_median": kernels[-1] / median, "other_collectives": len(kernels) - 1,
                 "median_collective_ms": milliseconds(median)}
        fix = "profile after a warm-up step to see the steady state, then: " + fix
    return Finding(facts=facts, fix=fix)


def collective_facts(comm: Communication) -> CollectiveFacts:
    """The parallelism named, the collectives by phase and kind with the most exposed time, and FSDP2's first
    all-gather (the one nothing can prefetch)."""
    facts: CollectiveFacts = {
        "parallelism": display_names(comm.parallelism), "group_size": comm.group_size, "backend": comm.backend,
        "exposed_collectives": [{"name": f"{r.kind} in the {r.phase}", "ms": r.exposed_ms, "calls": r.calls,
                                 "mb": r.mb, "bus_gb_per_s": r.bus_gb_per_s}
                                for r in comm.collectives[:3] if r.exposed_ms > 0]}
    best = max((r.bus_gb_per_s for r in comm.collectives if r.bus_gb_per_s), default=None)
    if comm.link_gb_per_s and best:
        facts = {**facts, "link": comm.link, "best_bus_of_link_pct": 100 * best / comm.link_gb_per_s}
    if "pipeline" in comm.parallelism and comm.micro_batches and comm.group_size > 1:
        stages, micro = comm.group_size, comm.micro_batches  # one stage a rank
        facts = {**facts, "stages": stages, "micro_batches": micro,
                 "bubble_pct": 100 * pipeline_bubble(stages, round(micro)),
                 "bubble_at_twice_pct": 100 * pipeline_bubble(stages, 2 * round(micro))}
    if comm.fsdp_all_gather_ms:
        first = next(iter(comm.fsdp_all_gather_ms))
        longest = sorted(comm.fsdp_all_gather_ms.items(), key=lambda kv: -kv[1])[:3]
        facts = {**facts, "first_all_gather": first, "first_all_gather_ms": comm.fsdp_all_gather_ms[first],
                 "all_gathers_by_module": [{"name": name, "ms": ms} for name, ms in longest]}
    return facts


def evidence_words(f: CommunicationFacts) -> str:
    comm = ", ".join(f"{short_name(c['name'])} {c['ms']:.2f} ms" for c in f["collectives"])
    text = f"collectives not overlapped by compute {share_words(f)}" + (f"; {comm}" if comm else "")
    if f.get("parallelism"):
        text += "; parallelism: " + ", ".join(f["parallelism"])
    if f.get("exposed_collectives"):
        text += f"; most exposed, in a group of {f['group_size']} ranks: " + ", ".join(
            f"{c['name']} {c['ms']:.2f} ms ({c['calls']:.0f} calls, {c['mb']:.2f} MB"
            + (f", bus {c['bus_gb_per_s']:.2f} GB/s" if c["bus_gb_per_s"] else "") + ")"
            for c in f["exposed_collectives"])
        if "link" in f:
            text += f"; the best reaches {f['best_bus_of_link_pct']:.0f}% of the link ({f['link']})"
        if f.get("backend") == "gloo":
            text += " (gloo: the ranks exchange through host memory, no link to compare with)"
    if f.get("exposed_by_rank"):
        text += "; exposed per rank: " + ", ".join(f"rank {r['rank']} {r['ms']:.2f} ms ({r['pct']:.0f}%)"
                                                   for r in f["exposed_by_rank"])
    return text + pipeline_words(f) + fsdp_words(f) + one_off_words(f)


def pipeline_words(f: CommunicationFacts) -> str:
    if "bubble_pct" not in f:
        return ""
    return (f"; pipeline of {f['stages']} stages over {f['micro_batches']:.0f} micro-batches a step: the schedule's "
            f"bubble, (p − 1) / (m + p − 1), is {f['bubble_pct']:.0f}% of the step, {f['bubble_at_twice_pct']:.0f}% "
            "at twice the micro-batches"
            + ("; each stage's exposed send / recv above is its measured bubble and transfers"
               if f.get("exposed_by_rank") else ""))


def fsdp_words(f: CommunicationFacts) -> str:
    text = ""
    if f.get("all_gathers_by_module"):
        text += "; FSDP's longest all-gathers, by module: " + ", ".join(
            f"{m['name']} {m['ms']:.2f} ms" for m in f["all_gathers_by_module"])
    if "first_all_gather" in f:
        text += (f"; FSDP's first all-gather ({f['first_all_gather']}, {f['first_all_gather_ms']:.2f} ms) has nothing "
                 "before it to hide behind")
    return text


def one_off_words(f: CommunicationFacts) -> str:
    if "slowest_collective_ms" not in f:
        return ""
    return (f"; one collective kernel took {f['slowest_collective_ms']:.2f} ms, {f['slowest_over_median']:.0f}x the "
            f"median of the other {f['other_collectives']} ({f['median_collective_ms']:.2f} ms): most likely a "
            "one-off (communicator or connection set-up on first use), or a rank that arrived late")


COMMUNICATION = CauseEntry(rule=rule, evidence=evidence_words, what="collectives no compute hides",
                           categories=("communication",))
