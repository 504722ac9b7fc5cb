"""The recomputation rule: the forward run again inside the backward (activation checkpointing), what re-ran, and
whether the activations it spared would fit without it."""

from profiler.facts import Facts
from profiler.mfu.findings import Finding, largest_ms, share
from profiler.mfu.records import Evidence, LedgerEntry
from profiler.settings import GIGA, MEMORY_USABLE


def recomputation(entry: LedgerEntry, evidence: Evidence) -> Finding:
    """The forward run again inside the backward: what re-ran, and whether the activations it spared would fit."""
    sig = evidence.signals
    facts: Facts = {**share(entry.ms, evidence), "recomputed_ops": largest_ms(sig.recompute_ops, sig),
                    "recomputed_gflops": evidence.account.recomputed / GIGA if evidence.account else 0.0,
                    "recomputed_of_model_pct": 100 * evidence.account.recomputed / evidence.flops
                    if evidence.account and evidence.flops else 0.0}
    config = evidence.meta.config or {}
    key = "activation_checkpointing" if "activation_checkpointing" in config else "gradient_checkpointing"
    off = f"TrainingArguments({key}=False)" if evidence.meta.vocabulary == "hf" else "no activation checkpointing"
    selective = ("checkpoint selectively: every other layer, or torch.utils.checkpoint with "
                 "create_selective_checkpoint_contexts saving the matmul outputs (torchtitan: "
                 "activation_checkpoint.mode='selective')")
    fit = spared_memory(evidence, sig.per_step(sig.recompute_written_bytes))
    facts.update(fit)
    if fit.get("fits"):
        fix = f"the activations fit without it: {off} (predicted peak {fit['predicted_gb']:.2f} GB of " \
              f"{fit['capacity_gb']:.2f}); or {selective}"
    elif "fits" in fit:
        fix = f"{selective} (all of them would not fit: {fit['predicted_gb']:.2f} GB of {fit['capacity_gb']:.2f})"
    else:
        fix = f"{selective}; or {off} where the memory holds the activations it spares"
    return Finding(facts=facts, fix=fix)


def spared_memory(evidence: Evidence, spared_bytes: float) -> Facts:
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
