"""unrecorded: device work the trace lost (launches with no device event, graph replays without their kernels):
the stretches it ran, counted here and never as idle."""

from profiler.diagnosis.finding import CauseEntry, Finding, share
from profiler.diagnosis.words import ShareFacts, share_words
from profiler.mfu.records import Evidence, LedgerEntry


class UnrecordedFacts(ShareFacts):
    lost_kernels_per_step: float
    lost_graphs_per_step: float


def rule(entry: LedgerEntry, evidence: Evidence) -> Finding[UnrecordedFacts]:
    seen = evidence.observed
    facts: UnrecordedFacts = {**share(entry.ms, evidence), "lost_kernels_per_step": seen.lost_kernels,
                              "lost_graphs_per_step": seen.lost_graphs}
    return Finding(facts=facts, fix=RECORD_THE_GRAPHS if seen.lost_graphs else SHORTER_WINDOW)


SHORTER_WINDOW = ("profile a shorter window (torch.profiler.schedule(wait=1, warmup=1, active=2)) so that the "
                  "profiler's device buffers keep every record")
RECORD_THE_GRAPHS = ("record the kernels the CUDA graphs replay (CUDA 12 or newer with a recent torch: they carry the "
                     "graph's id), or profile once with the graphs off (torch.compile(mode='max-autotune-no-cudagraphs'"
                     ")) to see what this time is")


def evidence_words(f: UnrecordedFacts) -> str:
    lost = [f"{n:.1f} {what}" for n, what in ((f["lost_kernels_per_step"], "kernel launches"),
                                              (f["lost_graphs_per_step"], "CUDA graph launches")) if n]
    return (f"device work the trace did not record {share_words(f)}: "
            f"{' and '.join(lost) or 'launches'} per step have no device event; the stretches where that work ran "
            "are counted here, not as idle")


UNRECORDED = CauseEntry(rule=rule, evidence=evidence_words,
                        what="device work the trace lost", categories=("unrecorded",))
