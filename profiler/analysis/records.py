"""The analysis stage's results, as plain records: what the MFU stage and the reports read. They sit low, with
no import of the stage's computing modules, so that a reader of a result never pulls in the code that made it."""

from collections import Counter, defaultdict
from dataclasses import dataclass, field, fields

import numpy as np

from profiler.facts import Note
from profiler.settings import US_PER_MS, US_PER_S
from profiler.trace.classify import CATEGORIES
from profiler.trace.load import TraceInfo
from profiler.trace.metadata import RunMetadata


def seconds(us: float) -> float:
    """µs in seconds, the MFU stage's unit: it reads the analysis' µs through this module alone."""
    return us / US_PER_S


def milliseconds(us: float) -> float:
    """µs in ms, the report's unit, for a figure shown as measured (one division: 60 µs are 0.06 ms exactly)."""
    return us / US_PER_MS


@dataclass(kw_only=True)
class OpStats:
    count: int = 0  # calls
    us: float = 0.0  # time attributed to the op (device time on GPU, exclusive host time on CPU)
    flops: float = 0.0
    flop_us: float = 0.0  # the time its FLOPs took: device time of its kernels, or the counted ops' duration
    bytes: float = 0.0  # bytes moved by its calls whose shapes say (nbytes.py)
    byte_us: float = 0.0  # the time those calls took, measured as flop_us is
    category_us: dict = field(default_factory=lambda: defaultdict(float))

    def absorb(self, other: "OpStats"):
        """Add another file's statistics of the same op (profiler cycles of one rank)."""
        self.count += other.count
        self.us += other.us
        self.flops += other.flops
        self.flop_us += other.flop_us
        self.bytes += other.bytes
        self.byte_us += other.byte_us
        for category, us in other.category_us.items():
            self.category_us[category] += us

    def seconds(self) -> float:
        """Its time over the steps, in seconds."""
        return self.us / US_PER_S

    def byte_seconds(self) -> float:
        """The time of its calls whose bytes are known, over the steps, in seconds."""
        return self.byte_us / US_PER_S

    def flop_seconds(self) -> float:
        """The time its FLOPs took over the steps, in seconds."""
        return self.flop_us / US_PER_S

    @property
    def category(self) -> str:
        return max(self.category_us, key=lambda c: self.category_us[c]) if self.category_us else "idle"


OpKey = tuple[str, str]  # an op's name and its recorded input shapes ("[8,1024]x[1024,4096]"; "" where none)


def merged(parts, key=lambda k: k) -> dict:
    """OpStats summed by key: the files of one rank, or an op's shapes into the op (key=by_name)."""
    out: defaultdict = defaultdict(OpStats)
    for part in parts:
        for k, stats in part.items():
            out[key(k)].absorb(stats)
    return dict(out)


def by_name(key: OpKey) -> str:
    return key[0]


@dataclass(frozen=True, kw_only=True)
class StepTable:
    """The per-step figures of a file or a rank, one named array per figure (the last axis is the step): a new
    per-step figure is one field here and one line in analyze_file."""

    ids: np.ndarray  # step numbers
    step_us: np.ndarray  # analysed window of each step
    breakdown_us: np.ndarray  # (categories, steps)
    flops: np.ndarray  # counted FLOPs, every op that ran (HFU's numerator)
    backward_flops: np.ndarray  # ... of them in the backward's own work
    recomputed_flops: np.ndarray  # ... in forward ops run again inside the backward (activation checkpointing)
    outside_flops: np.ndarray  # ... in the optimizer step (the forward's are the rest)
    copied_bytes: np.ndarray  # memcpy / memset bytes (GPU), copy_ bytes (CPU)
    short_idle_us: np.ndarray  # idle made of gaps shorter than Options.short_gap_us
    optimizer_host_us: np.ndarray  # host overhead inside Optimizer.step spans
    optimizer_idle_us: np.ndarray  # idle inside them
    collective_us: np.ndarray  # time collectives ran, exposed or not
    allocator_us: np.ndarray  # host overhead in allocator calls
    sync_us: np.ndarray  # ... in synchronizations
    python_us: np.ndarray  # ... in Python frames
    warmup_us: np.ndarray  # ... in one-off costs (compilation, lazy loading, library set-up)
    # memory of the device the kernels ran on (analysis/memory.py), bytes, NaN where the trace does not tell
    peak_allocated_bytes: np.ndarray
    peak_reserved_bytes: np.ndarray  # what the caching allocator holds, allocated or not
    at_start_bytes: np.ndarray  # allocated when the step starts: what it inherits (model states, caches)
    transient_bytes: np.ndarray  # the peak above that start: activations and temporaries
    reserved_free_bytes: np.ndarray  # reserved but not allocated at the peak
    allocator_calls: np.ndarray  # runtime calls that allocate or free device memory (cudaMalloc, cudaFree, ...)

    def __len__(self):
        return len(self.ids)

    def seconds(self, figure: str) -> np.ndarray:
        """A per-step figure in seconds, step by step: where the MFU stage reads the table's µs."""
        return getattr(self, figure) / US_PER_S

    def mean_s(self, figure: str) -> float:
        """A per-step figure's mean over the steps, in seconds."""
        return float(getattr(self, figure).mean()) / US_PER_S

    def per_step_s(self, total_us: float) -> float:
        """A µs total over the table's steps as seconds per step."""
        return total_us / max(len(self), 1) / US_PER_S

    def category_s(self) -> dict[str, float]:
        """Each breakdown category's mean seconds per step, in classify.CATEGORIES order."""
        means = self.breakdown_us.mean(axis=1) / US_PER_S
        return {c: float(means[k]) for k, c in enumerate(CATEGORIES)}

    def select(self, mask: np.ndarray) -> "StepTable":
        return StepTable(**{f.name: getattr(self, f.name)[..., mask] for f in fields(self)})

    @staticmethod
    def concat(tables: list["StepTable"]) -> "StepTable":
        return StepTable(**{f.name: np.concatenate([getattr(t, f.name) for t in tables], axis=-1)
                            for f in fields(StepTable)})


@dataclass(kw_only=True)
class Signals:
    steps: int = 0
    host_ops: int = 0
    kernel_us: list = field(default_factory=list)  # durations of the kernels in the steps
    small_matmul_us: float = 0.0  # time of 2-D matmuls with a dimension < SMALL_DIM
    small_matmul_flops: float = 0.0
    matmul_us: float = 0.0  # time of all counted FLOP ops (device time on GPU, duration on CPU)
    op_counts: Counter = field(default_factory=Counter)  # ops of interest by name, over the steps
    optimizer_ops: int = 0  # host ops inside Optimizer.step spans
    optimizer_op_counts: Counter = field(default_factory=Counter)  # ... by name: which implementation ran
    optimizer_kernels: int = 0  # kernels those ops launched (GPU traces)
    optimizers: Counter = field(default_factory=Counter)  # Optimizer.step spans by optimizer class
    dataloaders: Counter = field(default_factory=Counter)
    memcpy_bytes: Counter = field(default_factory=Counter)  # by memcpy kind (HtoD Pageable, ...)
    fixed_us: Counter = field(default_factory=Counter)  # per-op fixed cost in other_compute and memory time
    attention_us: Counter = field(default_factory=Counter)  # time of unfused attention's ops, by category
    attention_flops: float = 0.0  # FLOPs of its score and value matmuls
    recompute_us: Counter = field(default_factory=Counter)  # time of forward ops run again in the backward, by category
    recompute_ops: Counter = field(default_factory=Counter)  # ... the outermost of them by name: what was re-run
    recompute_calls: Counter = field(default_factory=Counter)  # ... and their calls
    recompute_written_bytes: float = 0.0  # what those ops wrote: about what checkpointing kept out of memory
    parameter_us: Counter = field(default_factory=Counter)  # work on parameter-shaped tensors, by category
    collectives: Counter = field(default_factory=Counter)  # collective calls by name
    collective_bytes: float = 0.0  # message bytes, where record_param_comms recorded them
    embedding_tokens: Counter = field(default_factory=Counter)  # indices looked up, by embedding table shape
    uncounted_matmul_us: Counter = field(default_factory=Counter)  # matmul time without a FLOP count, by op / kernel
    stall_calls: Counter = field(default_factory=Counter)  # allocator and synchronizing runtime calls, by name
    stall_sites: Counter = field(default_factory=Counter)  # ... by the op they were made in
    data_prep_us: Counter = field(default_factory=Counter)  # data-preparation Python frames, by name
    backward_ops: int = 0  # autograd backward ops in the steps: a training trace, not inference
    fp32_matmul_us: Counter = field(default_factory=Counter)  # matmul kernels in float32 on SIMT cores, by name
    warmup_us: Counter = field(default_factory=Counter)  # one-off spans (warmup.py) in the steps, by name
    collective_kernel_us: list = field(default_factory=list)  # durations of the collective kernels in the steps
    memcpy_us: Counter = field(default_factory=Counter)  # memcpy time by kind, beside memcpy_bytes
    fusable_bytes: float = 0.0  # elementwise / norm / softmax / optimizer traffic that fusion removes (fusion.py)
    elementwise_bytes: float = 0.0  # all of their traffic, where shapes say
    elementwise_byte_us: float = 0.0  # the time of the ops whose traffic is known
    # the counted matmul and attention ops by (name, input dims, input types, concrete inputs) as JSON texts:
    # calls, and their time, over the steps (mfu/shapetime.py replays them to time a change of precision)
    # the communication account (analysis/collectives.py), keyed "phase/kind": calls, input bytes, time, exposed time
    collective_calls: Counter = field(default_factory=Counter)
    collective_in_bytes: Counter = field(default_factory=Counter)
    collective_us: Counter = field(default_factory=Counter)
    collective_exposed_us: Counter = field(default_factory=Counter)
    parallel_marks: Counter = field(default_factory=Counter)  # events bearing each parallelism library's marks
    fsdp_unit_us: Counter = field(default_factory=Counter)  # FSDP2's all-gathers by the module they gather
    pipeline_forwards: int = 0  # a pipeline schedule's micro-batch forwards (its `Forward N` spans) in the steps
    graph_launches: int = 0  # CUDA / HIP graph launches in the steps: their ops ran with no host op to count
    lost_launches: Counter = field(default_factory=Counter)  # launches whose device work the trace lost: kernel, graph
    matmul_calls: Counter = field(default_factory=Counter)
    matmul_call_us: Counter = field(default_factory=Counter)

    @property
    def uncounted_matmul_total_us(self) -> float:
        """The matmul time, over the steps, in ops whose FLOPs the trace does not let us count."""
        return float(sum(self.uncounted_matmul_us.values()))

    @property
    def fp32_matmul_total_us(self) -> float:
        """The time, over the steps, of matmul kernels in float32 on SIMT cores."""
        return float(sum(self.fp32_matmul_us.values()))

    def per_step(self, total: float) -> float:
        """A total over the analysed steps as a mean per step (a table of no steps gives its total)."""
        return total / max(self.steps, 1)

    def per_step_s(self, total_us: float) -> float:
        """A µs total over the analysed steps as seconds per step."""
        return self.per_step(total_us) / US_PER_S

    def add(self, other: "Signals"):
        """Sum another file's signals into these (numbers add, lists concatenate, counters merge)."""
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass(frozen=True, kw_only=True)
class MemoryCurve:
    """The median step's memory over time, in slices of equal length, each the highest level in it: allocated
    and reserved (bytes), or where the trace has no level (`relative`), what was allocated since the step began."""

    step: int
    t_ms: list[float]  # each slice's start, from the step's
    allocated_bytes: list[float]
    reserved_bytes: list[float] | None
    relative: bool


@dataclass(frozen=True)
class MemoryDevice:
    """Whose memory the per-step memory figures describe."""

    label: str  # "cuda:0", "cpu"
    source: str  # "totals": absolute levels; "bytes only" or "cpu": changes alone (analysis/memory.py)
    capacity_bytes: int  # the device's memory from deviceProperties, 0 where the trace does not say
    curve: MemoryCurve | None = None  # the median step's memory over time

    @property
    def totals(self) -> bool:
        return self.source == "totals"


@dataclass(frozen=True, kw_only=True)
class Recorded:
    """Which of torch.profiler's optional parts a trace holds (analysis/health.py); of several files, what all hold."""

    shapes: bool  # record_shapes=True: the ops' input shapes
    dtypes: bool  # ... with their dtypes (torch >= 1.10)
    memory: bool  # profile_memory=True
    stacks: bool  # with_stack=True: Python frames
    device_events: bool  # activities with the device's (CUDA, XPU, ...); a CPU run has none to record
    step_markers: bool  # ProfilerStep#N: a schedule and prof.step() each iteration

    def of_all(self, others: "list[Recorded]") -> "Recorded":
        """What this and every other one record."""
        return Recorded(**{k: v and all(getattr(o, k) for o in others) for k, v in vars(self).items()})


ALL_RECORDED = Recorded(shapes=True, dtypes=True, memory=True, stacks=True, device_events=True, step_markers=True)


@dataclass(frozen=True)
class Utilization:
    window_ms: float  # first to last device event
    busy_fraction: float  # any kernel, memcpy or memset running on any stream


@dataclass(frozen=True)
class KernelClassification:
    """Device time by how it was classified: by the launching op, by the kernel's name, or not at all."""

    by_op: float
    by_name: float
    unclassified: float


@dataclass(frozen=True, kw_only=True)
class RankAnalysis:
    rank: int
    paths: list[str]
    kind: str  # device backend, or "cpu"
    device_names: list[str]
    metadata: RunMetadata  # our run's metadata (model, tokens, dtype, peak, ...); empty for a foreign trace
    dtype: str | None  # the matmuls' dtype: the run's own word, else the one that carried most FLOPs
    table: StepTable
    signals: Signals  # totals over the table's steps
    ops: dict[OpKey, OpStats]  # totals over the table's steps, by name and input shapes
    kernels: dict[str, OpStats]  # device time by kernel name (GPU traces; empty on a CPU)
    classified_us: KernelClassification | None  # device time by how kernels were classified (GPU traces)
    utilization: Utilization | None  # device busy share of the files' device windows (HTA's definition)
    memory: MemoryDevice | None = None  # whose memory the table's memory figures describe; None: not recorded
    recorded: Recorded = ALL_RECORDED  # what all its files record
    group_size: int = 1  # ranks in the job (the trace's distributedInfo): the collectives' n
    comm_backend: str = ""  # the process group's backend (nccl, gloo, ...), where the trace records it


@dataclass(frozen=True, kw_only=True)
class Timeline:
    """Spans of one step, as columns (times in µs from the step's start)."""

    step: int
    duration_us: float
    lanes: list[str]  # "host thread 7", "stream 7 (device 0)"
    names: list[str]  # interned span names; `name` indexes it
    lane: np.ndarray
    depth: np.ndarray  # nesting depth within the lane (0 outermost)
    start: np.ndarray
    dur: np.ndarray
    name: np.ndarray
    category: np.ndarray  # index into classify.CATEGORIES
    flops: np.ndarray
    shapes: dict[int, str]  # span index → its ops' recorded input shapes, where recorded


@dataclass(kw_only=True)
class TraceAnalysis:
    trace: TraceInfo
    kind: str  # the device backend (cuda, rocm, mtia, ...) when there are device events, else "cpu"
    table: StepTable
    ops: dict[OpKey, OpStats]  # summed over the analysed steps, by name and input shapes
    kernels: dict[str, OpStats]  # device time by kernel name (GPU traces; empty on a CPU)
    classified_us: KernelClassification | None  # device time (µs) by how it was classified (GPU traces)
    utilization: Utilization | None
    dtype: str | None  # matmul input dtype weighted by FLOPs
    signals: Signals
    warnings: list[Note] = field(default_factory=list)
    timeline: Timeline | None = None  # the median step's spans, when asked for
    memory: MemoryDevice | None = None  # whose memory the table's memory figures describe; None: not recorded
    recorded: Recorded = ALL_RECORDED
