"""other: idle stretches the other causes do not explain (longer than the short-gap threshold), and the host's
synchronizations while the device idles."""

from typing import NotRequired

from profiler.analysis.records import milliseconds
from profiler.diagnosis.finding import CauseEntry, Finding, share, stall_calls, step_pct
from profiler.diagnosis.words import ShareFacts, StallFacts, of_step, share_words, stalls
from profiler.mfu.records import Evidence, LedgerEntry
from profiler.settings import HEADLINE_SHARE
from profiler.trace.classify import SYNC_CALL


class OtherFacts(ShareFacts, StallFacts):
    long_gap_ms: float
    sync_ms: NotRequired[float]  # where synchronizations hold much of it
    sync_pct: NotRequired[float]


def rule(entry: LedgerEntry, evidence: Evidence) -> Finding[OtherFacts]:
    facts: OtherFacts = {"long_gap_ms": milliseconds(evidence.short_gap_us), **share(entry.ms, evidence)}
    fix = LOOK_AT_THE_GAPS
    if evidence.sync_ms >= HEADLINE_SHARE * entry.ms:
        facts = {**facts, "sync_ms": evidence.sync_ms, "sync_pct": step_pct(evidence.sync_ms, evidence),
                 **stall_calls(evidence.observed, SYNC_CALL)}
        fix = SYNC_OUT_OF_THE_STEP
    return Finding(facts=facts, fix=fix)


LOOK_AT_THE_GAPS = ("open the trace in TensorBoard (PyTorch profiler → trace view) at the gaps; keep evaluation, "
                    "logging, checkpointing and .item() syncs out of the hot loop")
SYNC_OUT_OF_THE_STEP = ("move synchronizations out of the step: no .item(), .cpu(), .tolist() or print of device "
                        "tensors and no torch.cuda.synchronize() in the loop (log every N steps), non_blocking copies "
                        "from pinned memory")


def evidence_words(f: OtherFacts) -> str:
    if "sync_ms" in f:
        return f"the host synchronizes with the device while it idles {of_step(f['sync_ms'], f['sync_pct'])}: " \
               f"{stalls(f)}"
    return (f"idle stretches of {f['long_gap_ms']:g} ms or more with no op recorded {share_words(f)}"
            ": synchronizations, Python outside ops, work the profiler did not record")


OTHER = CauseEntry(rule=rule, evidence=evidence_words, what="idle the rest does not explain",
                   categories=("idle", "host_overhead"))
