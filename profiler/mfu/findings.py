"""What a diagnosis rule hands back (Finding), and the helpers every rule words its facts with."""

from dataclasses import dataclass

from profiler.analysis.records import Signals, milliseconds
from profiler.facts import Facts
from profiler.mfu.records import Evidence


@dataclass(frozen=True, kw_only=True)
class Finding:
    """What a rule says of its cause: the measurements (facts, which report/phrases.py words), the fix, and the
    change that applies it, in our run's keys (the diagnosis puts it in the recording program's own words,
    where it has them)."""

    facts: Facts
    fix: str
    config: dict | None = None
    fix_speedup: float | None = None  # what the change in `config` should bring, where it differs from the what-if


def share(ms: float, evidence: Evidence, name: str = "") -> Facts:
    """A time per step and its share of the step: {ms, share_pct}, or {NAME_ms, NAME_pct}."""
    return {f"{name}_ms" if name else "ms": ms, f"{name}_pct" if name else "share_pct": 100 * ms / evidence.step_ms}


def largest_ms(counter, signals: Signals) -> list[dict]:
    """The three largest of µs totals over the steps, each as ms per step."""
    return [{"name": name, "ms": milliseconds(signals.per_step(us))} for name, us in counter.most_common(3)]


def stall_calls(signals: Signals, pattern) -> Facts:
    """The runtime calls matching `pattern` while the device idled, per step, and the ops that made them."""
    return {"stall_calls": [{"name": k, "per_step": signals.per_step(v)} for k, v in signals.stall_calls.most_common()
                            if pattern.match(k)],
            "stall_sites": [{"name": k, "per_step": signals.per_step(v)}
                            for k, v in signals.stall_sites.most_common(3)]}
