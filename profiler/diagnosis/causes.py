"""The registry of causes: each ledger cause's entry (its rule, evidence sentence, few words and categories, from
its own module), and the diagnosis that runs them.

A cause is a bottleneck when it costs at least MIN_POINTS points; its rule measures (facts), words the fix and
names the change that applies it (`fix_config`, in the recording program's own keys: mfu/vocabulary.py).
"""

from typing import Any

from profiler.diagnosis.communication import COMMUNICATION
from profiler.diagnosis.finding import CauseEntry
from profiler.diagnosis.io import IO
from profiler.diagnosis.matmul_efficiency import MATMUL_EFFICIENCY
from profiler.diagnosis.memory_ops import MEMORY_OPS
from profiler.diagnosis.non_fused import NON_FUSED
from profiler.diagnosis.other import OTHER
from profiler.diagnosis.precision import PRECISION
from profiler.diagnosis.recomputation import RECOMPUTATION
from profiler.diagnosis.small_batch import SMALL_BATCH
from profiler.diagnosis.unrecorded import UNRECORDED
from profiler.diagnosis.warmup import WARMUP
from profiler.facts import Facts
from profiler.mfu.ledger import Cause
from profiler.mfu.records import Bottleneck, Evidence, LedgerEntry
from profiler.mfu.vocabulary import form, in_their_words
from profiler.settings import MIN_POINTS

CAUSES: dict[Cause, CauseEntry[Any]] = {
    Cause.IO: IO, Cause.SMALL_BATCH: SMALL_BATCH, Cause.NON_FUSED: NON_FUSED, Cause.MEMORY_OPS: MEMORY_OPS,
    Cause.COMMUNICATION: COMMUNICATION, Cause.RECOMPUTATION: RECOMPUTATION, Cause.PRECISION: PRECISION,
    Cause.MATMUL_EFFICIENCY: MATMUL_EFFICIENCY, Cause.WARMUP: WARMUP, Cause.UNRECORDED: UNRECORDED,
    Cause.OTHER: OTHER}

# the breakdown categories whose time each cause is charged from (mfu/ledger.py's cause_seconds: a cause's own
# category first, then those it takes overheads from), as each cause registers them; the time ledger's useful work
# is its matmuls
CATEGORIES_OF: dict[str, tuple[str, ...]] = {**{str(c): e.categories for c, e in CAUSES.items()}, "useful": ("matmul",)}


def what(cause: str) -> str:
    """A cause in a few words, as it registers them."""
    return CAUSES[Cause(cause)].what if cause in CAUSES else cause


def diagnose(entries: list[LedgerEntry], evidence: Evidence, min_points: float = MIN_POINTS) -> list[Bottleneck]:
    """Bottlenecks sorted by points: each ledger cause of at least min_points, with its facts and fix."""
    out = []
    for entry in entries:
        if entry.points < min_points:
            continue
        if entry.cause not in CAUSES:  # the time ledger's useful work is no bottleneck
            continue
        found = CAUSES[entry.cause].rule(entry, evidence)
        config = in_their_words(found.config, evidence.meta)
        out.append(Bottleneck(cause=entry.cause, points=entry.points, ms=entry.ms, what_if_mfu=entry.what_if_mfu,
                              facts=dict(found.facts), fix=found.fix, fix_config=config,
                              what_if_step_ms=entry.what_if_step_ms, speedup=entry.speedup,
                              fix_speedup=found.fix_speedup if config else None,
                              fix_form=form(evidence.meta) if config else None))
    return sorted(out, key=lambda b: -b.points)


def evidence_sentence(cause: str, facts: Facts) -> str:
    """The evidence sentence of a bottleneck; a job's names the rank it comes from and, for communication, the
    ranks the others wait for (mfu/job.py adds both to the facts)."""
    text = CAUSES[Cause(cause)].evidence(facts)
    if "rank" in facts:
        text = f"rank {facts['rank']}: {text}"
    if facts.get("waited_for"):
        text += "; the others wait for " + ", ".join(
            f"rank {s['rank']} (+{s['excess_ms']:.2f} ms busy, mostly {s['category']})" for s in facts["waited_for"])
    return text
