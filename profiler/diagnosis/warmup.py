"""warmup: one-off costs inside the recorded window (compilation, lazy loading, library set-up) while the device
idled."""

from profiler.diagnosis.finding import CauseEntry, Finding, largest_ms, share
from profiler.diagnosis.words import Largest, ShareFacts, largest, share_words
from profiler.mfu.records import Evidence, LedgerEntry


class WarmupFacts(ShareFacts):
    one_offs: list[Largest]


def rule(entry: LedgerEntry, evidence: Evidence) -> Finding[WarmupFacts]:
    facts: WarmupFacts = {**share(entry.ms, evidence),
                          "one_offs": largest_ms(evidence.observed.one_off_ms)}
    return Finding(facts=facts, fix=PROFILE_AFTER_WARMUP)


PROFILE_AFTER_WARMUP = ("profile after warm-up: torch.profiler.profile(schedule=torch.profiler.schedule(wait=1, "
                        "warmup=1, active=3)) or a warm-up step before the profiler starts; in a long run these cost "
                        "nothing, and the other causes' what-ifs already leave them out")


def evidence_words(f: WarmupFacts) -> str:
    return (f"one-off costs inside the recorded window while the device idled {share_words(f)}: "
            f"{largest(f['one_offs'])} (their own host time: compilation, lazy loading of kernels on their first "
            "launch, library set-up on a first call)")


WARMUP = CauseEntry(rule=rule, evidence=evidence_words,
                    what="one-off costs in the window", categories=("host_overhead",))
