"""The run metadata: what our runs (scripts/profile_run.py, `profiler.profile`) write into every trace under
`mfu_analyzer`, and the analyzer reads back. One typed record for both sides; a foreign trace has none, and its
record is empty (every field at its default).

Our runs write their configuration keys at the top level (batch_size, num_workers, ...); a user's loop hands its
own settings over as `config`, in its own keys, and `vocabulary` says whose they are (mfu/vocabulary.py).
"""

from typing import Any

import msgspec

from profiler.facts import Note


class ModelShape(msgspec.Struct, frozen=True, kw_only=True):
    """A nanoGPT GPT's configuration, enough for 6N + 12LHQT and for a fix in its terms; written whole."""

    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    vocab_size: int
    bias: bool = True
    attention: str | None = None  # "manual" or "sdpa" (model/gpt.py)


class RunMetadata(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Fields at their default are left out of the trace, and read back as the default."""

    model: ModelShape | None = None
    n_params: int | None = None
    tokens_per_step: int | None = None
    flops_per_step: float | None = None  # F_model
    flops_from: str | None = None  # how F_model was found, where not given
    dtype: str | None = None
    device: str | None = None
    peak: dict[str, Any] | None = None  # mfu/peak.Peak.as_dict(), measured or looked up before the run
    bandwidth: dict[str, Any] | None = None  # mfu/bandwidth.Bandwidth.as_dict()
    torch_version: str | None = None
    machine: str | None = None  # mfu/cpupeak.this_machine(): where the run was recorded
    threads: int | None = None
    rank: int | None = None
    world_size: int | None = None
    recording_cost_us_per_op: float | None = None  # the profiler's own cost, measured before the run
    # our runs' configuration, in profile_run's keys
    batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    compile: bool | None = None
    optimizer_impl: str | None = None
    num_workers: int | None = None
    pin_memory: bool | None = None
    data_delay: float | None = None  # seconds of sleep per sample (an injected data-loading bottleneck)
    # a user's loop: its settings in its own keys, and whose keys they are
    config: dict[str, Any] | None = None
    vocabulary: str | None = None  # "profile_run", "config", "hf", "lightning"
    # our runs' micro-steps timed before training (ms): per dtype, per batch, with and without non_fused's fix
    step_ms_by_dtype: dict[str, float] | None = None
    step_ms_by_batch: dict[str, float] | None = None
    step_ms_by_fix: dict[str, dict[str, float]] | None = None
    # our runs' model states (bytes: parameters, gradients, optimizer_state) and a micro-step's transient
    # measured before training (transient_bytes_by_batch, by batch size): model/measure.py
    memory_parts: dict[str, Any] | None = None
    # the device's memory where the trace cannot say it (a CPU's machine or cgroup limit), or the user's word
    memory_capacity: float | None = None  # bytes
    memory_capacity_from: str | None = None  # "profile(memory_capacity=)", "cgroup limit", "machine memory"

    def recorded(self) -> bool:
        """Whether a run of ours wrote it (a foreign trace's is empty)."""
        return self != NO_METADATA

    def micro_steps(self) -> int:
        return self.gradient_accumulation_steps or 1

    def as_json(self) -> dict:
        """The fields that are set, as the trace holds them."""
        return msgspec.to_builtins(self)


NO_METADATA = RunMetadata()


def read_metadata(raw: msgspec.Raw) -> tuple[RunMetadata, list[Note]]:
    """The trace's run metadata (empty where the trace has none), or none with a warning where it is not what
    our runs write."""
    if bytes(raw).strip() in (b"", b"null"):
        return NO_METADATA, []
    try:
        return msgspec.json.decode(raw, type=RunMetadata), []
    except msgspec.DecodeError as e:
        return NO_METADATA, [Note("run_metadata_malformed", {"error": str(e)})]
