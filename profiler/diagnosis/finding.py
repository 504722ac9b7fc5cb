"""What a rule hands back (Finding), what a cause registers (CauseEntry), and the facts every rule shares.

A cause's facts are a TypedDict of its own, shared by its rule, which fills it, and its evidence sentence, which
reads it: mypy checks every key's name and type (not that an optional one is there: the sentences test for
those). A fact is named with its unit (`_ms` per step, `_pct`, `_gb_per_s`, `_tflop_per_s`) and is a number, a
short string, a flag, or a list of small records for the largest items. A TypedDict declared total=False and
mixed into a cause's facts is a group its rule adds together or not at all (the copies' links, the memory plan).
"""

from collections.abc import Callable
from dataclasses import dataclass
from re import Pattern
from typing import Generic, TypeVar

from profiler.diagnosis.words import Largest, ShareFacts, StallFacts
from profiler.mfu.observed import Observed
from profiler.mfu.records import Evidence, LedgerEntry

F = TypeVar("F")


@dataclass(frozen=True, kw_only=True)
class Finding(Generic[F]):
    """What a rule says of its cause: the measurements (its facts), the fix, and the change that applies it, in
    our run's keys (the diagnosis puts it in the recording program's own words, where it has them)."""

    facts: F
    fix: str
    config: dict | None = None
    fix_speedup: float | None = None  # what the change in `config` should bring, where it differs from the what-if


@dataclass(frozen=True, kw_only=True)
class CauseEntry(Generic[F]):
    """A cause's entry in the registry (causes.py): its rule, its evidence sentence over the rule's facts, the few
    words the one-screen report gives it, and the breakdown categories whose ops `--explain` lists."""

    rule: Callable[[LedgerEntry, Evidence], Finding[F]]
    evidence: Callable[[F], str]
    what: str
    categories: tuple[str, ...]


def step_pct(ms: float, evidence: Evidence) -> float:
    return 100 * ms / evidence.step_ms


def share(ms: float, evidence: Evidence) -> ShareFacts:
    """A time per step and its share of the step."""
    return {"ms": ms, "share_pct": step_pct(ms, evidence)}


def largest_ms(ms_by_name: dict[str, float]) -> list[Largest]:
    """The three largest of ms per step by name (Observed's maps are largest first)."""
    return [{"name": name, "ms": ms} for name, ms in list(ms_by_name.items())[:3]]


def stall_calls(seen: Observed, pattern: Pattern) -> StallFacts:
    """The runtime calls matching `pattern` while the device idled, per step, and the ops that made them."""
    return {"stall_calls": [{"name": k, "per_step": v} for k, v in seen.stall_calls.items() if pattern.match(k)],
            "stall_sites": [{"name": k, "per_step": v} for k, v in list(seen.stall_sites.items())[:3]]}
