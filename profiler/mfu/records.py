"""The typed records the MFU stage hands on: what a report shows of a rank or a job (Figures), what the
diagnosis cites (Evidence), and a rank's whole attribution. Frozen: nothing downstream changes a number."""

from dataclasses import dataclass, field, replace

from profiler.analysis.records import KernelClassification, MemoryCurve, StepTable, Utilization
from profiler.facts import Facts, Note
from profiler.mfu.bandwidth import Bandwidth
from profiler.mfu.ledger import Cause, LedgerUnit, Overheads
from profiler.mfu.observed import Observed
from profiler.mfu.parallelism import CollectiveRow
from profiler.mfu.peak import Peak
from profiler.mfu.roofline import Roofline
from profiler.mfu.shapetime import ShapeTiming
from profiler.settings import FLOPS_GAP, SHORT_GAP_US, TOP_OPS
from profiler.trace.metadata import RunMetadata


@dataclass(frozen=True, kw_only=True)
class FlopAccount:
    """The counted FLOPs per step by where they ran: what tells model FLOPs from the rest."""

    executed: float  # every counted FLOP (HFU's numerator)
    forward: float
    backward: float
    recomputed: float  # forward ops run again in the backward
    outside: float  # the optimizer step

    @staticmethod
    def of(table: StepTable, compiled: bool = False) -> "FlopAccount":
        """The mean step's account. A compiled backward hides what it re-ran: there the backward's FLOPs beyond
        twice the forward's (by more than FLOPS_GAP) are taken as recomputed."""
        mean = lambda a: float(a.mean()) if len(a) else 0.0
        executed, backward = mean(table.flops), mean(table.backward_flops)
        recomputed, outside = mean(table.recomputed_flops), mean(table.outside_flops)
        forward = executed - backward - recomputed - outside
        if compiled and not recomputed and backward > 2 * forward * (1 + FLOPS_GAP):
            backward, recomputed = 2 * forward, backward - 2 * forward
        return FlopAccount(executed=executed, forward=forward, backward=backward, recomputed=recomputed,
                           outside=outside)

    @property
    def model(self) -> float:
        """The model's forward and backward as they ran once: no recomputation, nothing outside the model."""
        return self.forward + self.backward

    def stand_in(self) -> "ModelFlops":
        """F_model from the counts: three times the forward (its backward does twice its work), or the forward
        where no backward ran."""
        if self.backward > 0:
            return ModelFlops(3 * self.forward, "3 × the forward's counted FLOPs", from_counts=True)
        return ModelFlops(self.forward or None, "the forward's counted FLOPs (no backward ran)", from_counts=True)


@dataclass(frozen=True)
class ModelFlops:
    per_step: float | None  # F_model; None when unknown (F_counted stands in)
    source: str | None  # --flops-per-step, --model, ..., run metadata
    from_counts: bool = False  # the trace's own counts stand in (no F given, or the F given contradicts them)
    account: FlopAccount | None = None  # the rank's counted FLOPs by where they ran, made once beside F_model


@dataclass(frozen=True)
class StepTimes:
    mean: float  # ms
    min: float
    max: float
    cv: float = 0.0  # coefficient of variation (standard deviation over the mean) of the analysed steps


@dataclass(frozen=True)
class Share:
    ms: float  # per step
    fraction: float  # of the step time


@dataclass(frozen=True)
class ProfilerCost:
    """What recording the step cost, measured before the run: µs per recorded op × the ops recorded per step."""

    us_per_op: float
    ops_per_step: float
    ms_per_step: float  # taken out of the step time for MFU and the ledger (capped by small_batch + other)


@dataclass(frozen=True, kw_only=True)
class Mfu:
    analytic: float | None  # F_model / (T · P)
    counted: float | None  # F_counted / (T · P)
    flops_analytic: float | None
    flops_counted: float
    analytic_from: str | None
    account: FlopAccount | None = None  # the counted FLOPs by where they ran

    def over(self, step_s: float, peak: float | None) -> "Mfu":
        """These FLOPs in a step of step_s at the peak P: MFU's one formula, F / (T · P)."""
        return replace(self, analytic=self.flops_analytic / (step_s * peak) if self.flops_analytic and peak else None,
                       counted=self.flops_counted / (step_s * peak) if peak and self.flops_counted else None)

    @property
    def of_ledger(self) -> float | None:
        """The MFU the ledger adds up to: analytic, or counted where the model's FLOPs are unknown."""
        return self.analytic if self.analytic is not None else self.counted


@dataclass(frozen=True, kw_only=True)
class OpRow:
    name: str
    category: str
    count: float  # calls per step
    ms: float  # per step
    flops: float  # per step
    tflops_per_s: float | None
    bytes: float = 0.0  # per step, of the calls whose shapes say (nbytes.py)
    roofline: Roofline | None = None  # where its bytes and the ceilings are known
    flop_ms: float = 0.0  # per step, the time its counted FLOPs took (what tflops_per_s divides by; 0 without FLOPs)
    shapes: str = ""  # its input shapes, in the table of ops by name and shapes ("" in top_ops and for kernels)


@dataclass(frozen=True, kw_only=True)
class Communication:
    total_ms: float  # collectives running, exposed or hidden, per step
    exposed_ms: float
    exposed_fraction: float | None
    calls_per_step: dict[str, float]
    bytes_per_step: float | None
    parallelism: list[str] = field(default_factory=list)  # the marks found (mfu/parallelism.NAMES), in that order
    collectives: list[CollectiveRow] = field(default_factory=list)  # by phase and kind, largest exposed first
    group_size: int = 1  # the n of the bus bandwidths
    backend: str = ""  # nccl, gloo, ...: what the bus bandwidths ran over
    fsdp_all_gather_ms: dict[str, float] = field(default_factory=dict)  # FSDP2's all-gathers by module, per step
    micro_batches: float = 0.0  # a pipeline schedule's micro-batch forwards per step
    link: str = ""  # the link the bus bandwidths compare with (mfu/parallelism.peer_link), "" where none is known
    link_gb_per_s: float | None = None


@dataclass(frozen=True)
class StepRow:
    step: int
    ms: float
    categories: dict[str, float]  # ms of each breakdown category
    points: dict[str, float] = field(default_factory=dict)  # the step's own ledger, in the ledger's unit ({}: none)


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    cause: Cause
    points: float  # of MFU, or of the step time in a time ledger (Figures.ledger_unit)
    ms: float
    what_if_mfu: float | None  # None in a time ledger
    low: float | None = None  # the cause's points in the analysed step where it cost least
    high: float | None = None  # ... and most
    what_if_step_ms: float | None = None  # time ledger: the steady-state step without the cause
    speedup: float | None = None  # ... and how much faster that is
    removable_ms: float | None = None  # the seconds per step (ms) the what-if takes away: all, or what a fix can


@dataclass(frozen=True, kw_only=True)
class Bottleneck:
    cause: Cause
    points: float
    ms: float
    what_if_mfu: float | None  # None in a time ledger
    facts: Facts  # the measurements behind it: its cause's facts TypedDict (diagnosis/), which words them
    fix: str
    fix_config: dict | None = None  # the change that applies the fix, in the recording program's keys
    what_if_step_ms: float | None = None  # time ledger: the steady-state step without the cause
    speedup: float | None = None
    fix_speedup: float | None = None  # what the proposed fix should bring (tokens/s), within the what-if's bound
    fix_form: str | None = None  # how fix_config is written there: --key=value, TrainingArguments, Trainer


@dataclass(frozen=True, kw_only=True)
class MemoryFigures:
    """The memory of the device the kernels ran on, over the analysed steps (each figure the worst step's, in
    bytes; None where the trace cannot tell), its capacity and how many times the batch can grow
    (mfu/memory.py)."""

    device: str  # "cuda:0", "cpu"
    source: str  # "totals": the allocator's levels; "bytes only", "cpu": its changes alone (no absolute level)
    capacity_bytes: float | None
    capacity_source: str | None  # --memory-capacity, profile(memory_capacity=), deviceProperties, device table, ...
    peak_allocated_bytes: float | None
    peak_reserved_bytes: float | None
    at_step_start_bytes: float | None  # what a step inherits: parameters, gradients, optimizer state, caches
    transient_peak_bytes: float | None  # the peak above that: activations and temporaries
    reserved_free_bytes: float | None  # reserved but not allocated at the peak
    allocator_calls_per_step: float
    allocator_ms_per_step: float
    batch_headroom: float | None  # (capacity x MEMORY_USABLE - at_step_start) / transient_peak
    parts: dict | None = None  # our runs: model states, activations per sample, predicted peaks (memory_parts)
    median_step: MemoryCurve | None = None  # the median step's memory over time (the first file's)
    rank: int | None = None  # a job's: the rank whose memory this is (the worst)


@dataclass(frozen=True, kw_only=True)
class Figures:
    """What a report shows of a rank or of a job."""

    step_time_ms: StepTimes
    device_utilization: Utilization | None  # HTA's definition
    mfu: Mfu
    breakdown: dict[str, Share]  # by category, in classify.CATEGORIES order
    ledger: list[LedgerEntry]
    bottlenecks: list[Bottleneck]
    top_ops: list[OpRow]
    classification_ms: KernelClassification | None  # device time per step (ms) by how kernels were classified
    copied_bytes_per_step: float
    matmul_without_flops_ms: float
    communication: Communication | None
    per_step: list[StepRow]
    profiler_cost: ProfilerCost | None = None  # the recording cost taken out of MFU and the ledger (our runs)
    ledger_unit: LedgerUnit = LedgerUnit.MFU
    memory: MemoryFigures | None = None  # None where the trace records no memory of the device
    ops: list[OpRow] = field(default_factory=list)  # by name and input shapes, longest OPS_IN_REPORT
    kernels: list[OpRow] = field(default_factory=list)  # by kernel name, longest OPS_IN_REPORT (GPU traces)


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """The measurements the diagnosis cites (ms per step unless said)."""

    step_ms: float
    kind: str
    dtype: str | None
    meta: RunMetadata  # our run's metadata (empty for a foreign trace): the diagnosis speaks in its keys
    peak: float
    peak_run: float
    flops: float  # F_model, or F_counted standing in
    counted_flops: float
    uncounted_matmul_ms: float  # matmul time without a FLOP count (Figures.matmul_without_flops_ms)
    account: FlopAccount | None = None  # the counted FLOPs by where they ran (recomputation's evidence)
    communication: Communication | None = None  # the rank's communication figures (communication's evidence)
    breakdown: dict[str, Share]
    observed: Observed  # what the trace shows per step (mfu/observed.py): the rules read it, never a total
    ops: list[OpRow]  # every op, largest first
    short_idle_ms: float
    optimizer_overhead_ms: float
    fixed_ms: float  # fixed per-op cost of compute and copy ops
    parameter_ms: float
    copied_bytes: float
    allocator_ms: float
    sync_ms: float
    python_ms: float
    other_ops_per_step: float  # elementwise / norm / softmax / optimizer ops
    step_ms_by_dtype: dict  # forward and backward of a micro-step per dtype, measured by our run ({} if not)
    step_ms_by_batch: dict = field(default_factory=dict)  # ... at the run's batch and 4x it, by batch size
    profiler_ms: float = 0.0  # the profiler's own recording cost taken out of the step and small_batch
    fastest_dtype: str | None = None  # the dtype of P, where known
    unit: LedgerUnit = LedgerUnit.MFU  # the ledger's (Figures.ledger_unit): a time ledger's evidence cites no F or P
    fp32_speed: float | None = None  # time ledger: float32's peak over the device's fastest (its table)
    short_gap_us: float = SHORT_GAP_US  # idle gaps shorter than this were small_batch, longer ones other
    bandwidth: Bandwidth | None = None  # the memory ceiling of the roofline, where known
    shape_timing: ShapeTiming | None = None  # the trace's matmul shapes timed here per precision (recorded here)
    precision_ms: float = 0.0  # what the ledger charged to precision, per step
    memory: MemoryFigures | None = None  # the device's memory and capacity, where the trace records it


@dataclass(frozen=True, kw_only=True)
class RankInputs:
    """What a rank's ledger rests on besides its analysis (mfu/inputs.py resolves them, mfu/memory.py the
    memory): everything the attribution needs, so that its evidence is built once."""

    peak: Peak | None
    bandwidth: Bandwidth | None
    f_model: ModelFlops
    timing: ShapeTiming | None = None  # the trace's matmul shapes timed here per precision
    memory: MemoryFigures | None = None
    short_gap_us: float = SHORT_GAP_US  # as the breakdown had it
    top: int = TOP_OPS  # ops in the report's table


@dataclass(frozen=True, kw_only=True)
class Attribution:
    rank: int
    figures: Figures
    steps: StepTable
    overheads: Overheads | None  # None when there is no ledger (no peak, no FLOPs, implausible inputs)
    seconds: dict[str, float]  # per cause, per step
    evidence: Evidence | None
    warnings: list[Note] = field(default_factory=list)
