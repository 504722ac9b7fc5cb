"""recomputation: the forward run again inside the backward (activation checkpointing): what re-ran, and whether
the activations it spared would fit without it."""

from typing import TypedDict

from profiler.diagnosis.finding import CauseEntry, Finding, largest_ms, share
from profiler.diagnosis.words import Largest, ShareFacts, share_words
from profiler.mfu.records import Evidence, LedgerEntry
from profiler.settings import GIGA, MEMORY_USABLE


class SparedMemory(TypedDict, total=False):
    spared_gb: float  # what the re-run ops wrote: the activations checkpointing did not keep
    predicted_gb: float  # the peak without checkpointing, where the trace gives the peak and the capacity
    capacity_gb: float
    fits: bool  # within MEMORY_USABLE of the capacity


class RecomputationFacts(ShareFacts, SparedMemory):
    recomputed_ops: list[Largest]
    recomputed_gflops: float
    recomputed_of_model_pct: float


def rule(entry: LedgerEntry, evidence: Evidence) -> Finding[RecomputationFacts]:
    seen = evidence.observed
    account = evidence.account
    facts: RecomputationFacts = {
        **share(entry.ms, evidence), "recomputed_ops": largest_ms(seen.recomputed_ms),
        "recomputed_gflops": account.recomputed / GIGA if account else 0.0,
        "recomputed_of_model_pct": 100 * account.recomputed / evidence.flops if account and evidence.flops else 0.0}
    config = evidence.meta.config or {}
    key = "activation_checkpointing" if "activation_checkpointing" in config else "gradient_checkpointing"
    off = f"TrainingArguments({key}=False)" if evidence.meta.vocabulary == "hf" else "no activation checkpointing"
    fit = spared_memory(evidence, seen.recompute_written_bytes)
    return Finding(facts={**facts, **fit}, fix=checkpointing_fix(fit, off))


SELECTIVE = ("checkpoint selectively: every other layer, or torch.utils.checkpoint with "
             "create_selective_checkpoint_contexts saving the matmul outputs (torchtitan: "
             "activation_checkpoint.mode='selective')")


def checkpointing_fix(fit: SparedMemory, off: str) -> str:
    """Checkpointing off where the spared activations fit (`off`: the program's own setting), else selectively."""
    if fit.get("fits"):
        return (f"the activations fit without it: {off} (predicted peak {fit['predicted_gb']:.2f} GB of "
                f"{fit['capacity_gb']:.2f}); or {SELECTIVE}")
    if "fits" in fit:
        return f"{SELECTIVE} (all of them would not fit: {fit['predicted_gb']:.2f} GB of {fit['capacity_gb']:.2f})"
    return f"{SELECTIVE}; or {off} where the memory holds the activations it spares"


def spared_memory(evidence: Evidence, spared_bytes: float) -> SparedMemory:
    """The peak without checkpointing: today's, plus what the re-run ops wrote (the activations checkpointing did
    not keep), against MEMORY_USABLE of the capacity; {} where the trace does not give the peak and capacity."""
    memory = evidence.memory
    if not (memory and memory.capacity_bytes and spared_bytes):
        return {}
    peak = memory.peak_allocated_bytes if memory.peak_allocated_bytes is not None else None
    if peak is None or memory.source != "totals":
        return {"spared_gb": spared_bytes / GIGA}
    predicted = peak + spared_bytes
    return {"spared_gb": spared_bytes / GIGA, "predicted_gb": predicted / GIGA,
            "capacity_gb": memory.capacity_bytes / GIGA,
            "fits": predicted <= MEMORY_USABLE * memory.capacity_bytes}


def evidence_words(f: RecomputationFacts) -> str:
    ops = ", ".join(f"{o['name']} {o['ms']:.2f} ms" for o in f["recomputed_ops"])
    text = (f"forward ops run again inside the backward (activation checkpointing) {share_words(f)}"
            f": {f['recomputed_gflops']:.3g} GFLOP/step recomputed, {f['recomputed_of_model_pct']:.0f}% of the "
            f"model's FLOPs, in {ops}")
    if "predicted_gb" in f:
        verdict = "fits" if f["fits"] else "does not fit"
        text += (f"; without it the peak would hold {f['spared_gb']:.3g} GB more, {f['predicted_gb']:.2f} GB of "
                 f"{f['capacity_gb']:.2f}: it {verdict}")
    elif "spared_gb" in f:
        text += f"; without it about {f['spared_gb']:.3g} GB more activations would be kept"
    return text


RECOMPUTATION = CauseEntry(rule=rule, evidence=evidence_words, what="the forward re-run in the backward",
                           categories=("matmul", "other_compute", "memory", "host_overhead"))
