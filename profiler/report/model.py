"""The `mfu-report/1` JSON as types (docs/DESIGN.md): what schema.py writes, what a saved report decodes into,
and what every writer (terminal, Markdown / HTML, charts, compare, TensorBoard, the dashboard's listing) reads.

The field names are the JSON's keys. A field that the JSON leaves out where it does not apply (a time ledger's
what-ifs, a job's per-rank figures) is UNSET there; a field the JSON writes as null is None.
"""

import json
import math
from typing import Any

import msgspec
import numpy as np
from msgspec import UNSET, UnsetType

SCHEMA = "mfu-report/1"


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """A report part: immutable, built by keyword."""


class Source(Record, frozen=True, kw_only=True):
    paths: list[str]
    ranks: list[int]
    steps: list[int]
    torch_version: str | None = None
    world_size: int | None = None  # absent in reports saved before it
    config: dict[str, Any] = {}  # the run's configuration in its program's keys (our runs, a user's config)


class Device(Record, frozen=True, kw_only=True):
    name: str | None
    kind: str
    dtype: str | None
    peak_flops: float | None
    peak_flops_run: float | None
    peak_source: str | None
    peak_note: str | None = None
    bandwidth: float | None = None
    bandwidth_source: str | None = None
    link_bandwidth: float | None = None
    bandwidth_note: str | None = None


class StepTime(Record, frozen=True, kw_only=True):
    mean: float  # ms
    min: float
    max: float
    cv: float | None = None  # standard deviation over the mean of the analysed steps


class DeviceUtilization(Record, frozen=True, kw_only=True):
    window_ms: float
    busy_fraction: float


class FlopsPerStep(Record, frozen=True, kw_only=True):
    analytic: float | None
    counted: float | None  # every FLOP that ran and had shapes: the account below adds up to it
    forward: float | None = None
    backward: float | None = None
    recomputed: float | None = None  # forward ops run again in the backward (activation checkpointing)
    outside: float | None = None  # the optimizer step


class MfuFigures(Record, frozen=True, kw_only=True):
    analytic: float | None
    counted: float | None  # PaLM's hardware FLOPs utilization (HFU): every counted FLOP over T · P
    flops_per_step: FlopsPerStep
    analytic_from: str | None = None
    hfu: float | None = None  # the same figure as `counted`, under the name the literature gives it


class CategoryShare(Record, frozen=True, kw_only=True):
    ms: float  # per step
    fraction: float  # of the step


class LedgerRow(Record, frozen=True, kw_only=True):
    cause: str
    points: float
    ms: float
    what_if_mfu: float | None
    interval: list[float] | None = None  # [lowest, highest] points over the analysed steps
    what_if_step_ms: float | None | UnsetType = UNSET  # time ledger only
    speedup: float | None | UnsetType = UNSET


class Bottleneck(Record, frozen=True, kw_only=True):
    cause: str
    points: float
    ms: float
    what_if_mfu: float | None
    evidence: str
    fix: str
    what_if_step_ms: float | None | UnsetType = UNSET  # time ledger only
    speedup: float | None | UnsetType = UNSET
    fix_config: dict[str, Any] | UnsetType = UNSET  # where the recording program's keys are known
    fix_form: str | None | UnsetType = UNSET
    fix_speedup: float | UnsetType = UNSET  # where a fix's gain is predicted
    facts: dict[str, Any] = {}  # the numbers of the evidence, by name (absent in reports saved before them)


class Roofline(Record, frozen=True, kw_only=True):
    intensity: float  # FLOP per byte
    attainable_tflops: float
    roofline_ms: float
    achieved_tflops: float | None
    achieved_tb_s: float
    of_roofline: float
    bound: str  # "memory" or "compute"
    above_ceiling: bool = False


class TopOp(Record, frozen=True, kw_only=True):
    name: str
    category: str
    count: float  # calls per step
    ms: float
    flops: float
    tflops_per_s: float | None
    bytes: float | None = None
    roofline: Roofline | None = None


class OpShape(Record, frozen=True, kw_only=True):
    """An op by name and input shapes, or a kernel by name (shapes ""): what a diff matches."""

    name: str
    shapes: str = ""
    category: str
    count: float  # calls per step
    ms: float
    flops: float = 0.0
    tflops_per_s: float | None = None


class Classification(Record, frozen=True, kw_only=True):
    by_op: float
    by_name: float
    unclassified: float


class CollectiveRow(Record, frozen=True, kw_only=True):
    """One phase and kind of collective, per step (mfu/parallelism.py)."""

    phase: str
    kind: str
    calls: float
    mb: float
    ms: float
    exposed_ms: float
    bus_gb_per_s: float | None


class Communication(Record, frozen=True, kw_only=True):
    total_ms: float
    exposed_ms: float
    exposed_fraction: float | None
    calls_per_step: dict[str, float]
    bytes_per_step: float | None
    parallelism: list[str] = []  # as the report names them: "FSDP2 (fully_shard)", "tensor parallel (DTensor)", ...
    collectives: list[CollectiveRow] = []
    group_size: int = 1
    backend: str = ""
    fsdp_all_gather_ms: dict[str, float] = {}
    micro_batches: float = 0.0
    link: str = ""  # the link the bus bandwidths compare with, where known
    link_gb_per_s: float | None = None


class StepRow(Record, frozen=True, kw_only=True):
    """One analysed step: its ms and each breakdown category's (classify.CATEGORIES, in that order)."""

    step: int
    ms: float
    matmul: float
    other_compute: float
    memory: float
    communication: float
    data_loading: float
    host_overhead: float
    idle: float
    unrecorded: float = 0.0  # device work the trace lost (absent in reports saved before it)
    ledger: dict[str, float] = {}  # the step's own ledger, in the report's ledger unit (absent: none, or older)


class MemoryCurve(Record, frozen=True, kw_only=True):
    """The median step's memory over time: each slice's highest level (analysis/memory.py)."""

    step: int
    t_ms: list[float]
    allocated_bytes: list[float]  # relative: allocated since the step began
    reserved_bytes: list[float] | None
    relative: bool


class Memory(Record, frozen=True, kw_only=True):
    """The device's memory over the analysed steps (bytes, the worst step's; null where the trace cannot tell),
    its capacity and the batch headroom (mfu/memory.py)."""

    device: str
    source: str  # "totals"; "bytes only" or "cpu": changes alone, no absolute level (analysis/memory.py)
    capacity_bytes: float | None
    capacity_source: str | None
    peak_allocated_bytes: float | None
    peak_reserved_bytes: float | None
    at_step_start_bytes: float | None
    transient_peak_bytes: float | None
    reserved_free_bytes: float | None
    allocator_calls_per_step: float
    allocator_ms_per_step: float
    batch_headroom: float | None
    parts: dict[str, Any] | None = None  # our runs: the model states and activations per sample, measured
    median_step: MemoryCurve | None = None
    rank: int | UnsetType = UNSET  # a job's: the rank whose memory it is


class ProfilerCost(Record, frozen=True, kw_only=True):
    us_per_op: float
    ops_per_step: float
    ms_per_step: float


class Figures(Record, frozen=True, kw_only=True):
    """What a report shows of a job, or of one of its ranks."""

    ledger_unit: str | UnsetType = UNSET  # "step_time"; absent for a ledger of MFU points
    step_time_ms: StepTime
    device_utilization: DeviceUtilization | None
    mfu: MfuFigures
    breakdown: dict[str, CategoryShare]
    ledger: list[LedgerRow]
    bottlenecks: list[Bottleneck]
    top_ops: list[TopOp]
    classification_ms: Classification | None = None
    copied_bytes_per_step: float = 0.0
    matmul_without_flops_ms: float = 0.0
    communication: Communication | None = None
    per_step: list[StepRow] = []
    profiler_cost: ProfilerCost | None = None
    memory: Memory | None = None  # absent in reports saved before it; null where the trace records no memory
    ops: list[OpShape] = []  # by name and input shapes, the longest OPS_IN_REPORT (absent in older reports)
    kernels: list[OpShape] = []  # by kernel name, the longest OPS_IN_REPORT (GPU traces)

    @property
    def ledger_mfu(self) -> float | None:
        """The MFU the ledger adds up to: analytic, or counted where the model's FLOPs are unknown."""
        return self.mfu.analytic if self.mfu.analytic is not None else self.mfu.counted

    @property
    def time_ledger(self) -> bool:
        """Whether the ledger is in points of the step time (MFU could not be formed)."""
        return self.ledger_unit == "step_time"


class RankFigures(Figures, frozen=True, kw_only=True):
    rank: int


class WarningData(Record, frozen=True, kw_only=True):
    code: str
    numbers: dict[str, Any] = {}
    ranks: str | UnsetType = UNSET  # a job of several ranks: "all", or "0-3, 5"


class Straggler(Record, frozen=True, kw_only=True):
    rank: int
    excess_ms: float
    category: str


class Lack(Record, frozen=True, kw_only=True):
    what: str  # "memory"
    costs: str  # what the analysis goes without
    record_with: str  # the torch.profiler.profile(...) argument that records it


class Health(Record, frozen=True, kw_only=True):
    """What the trace records and what it lost (analysis/health.py), said before any number."""

    recorded: dict[str, bool]  # shapes, dtypes, memory, stacks, device_events, step_markers
    lacks: list[Lack] = []
    lost: list[str] = []  # the warnings that say what the trace lost (their numbers are in warnings_data)


class Report(Figures, frozen=True, kw_only=True):
    """A whole report. Its JSON opens with the schema, the source and the device (schema.to_json orders it so:
    a reader tells a report from a trace by its first bytes)."""

    schema: str = SCHEMA
    source: Source
    device: Device
    job_aggregation: dict[str, str] | UnsetType = UNSET  # several ranks: how each job figure is formed
    health: Health | None = None  # absent in reports saved before it
    warnings: list[str] = []
    warnings_data: list[WarningData] = []  # absent in reports saved before it
    conventions: list[str] = []
    per_rank: list[RankFigures] | UnsetType = UNSET
    stragglers: list[Straggler] | UnsetType = UNSET


HEAD = ("schema", "source", "device", "health", "job_aggregation")  # the keys a report's JSON opens with


def to_json(report: Report) -> dict:
    """The report as JSON data, opening with its schema, source and device; a figure that is not finite (NaN,
    infinite) is null there, never a NaN that a JSON reader refuses (report_of says which, in a warning)."""
    data, _ = json_data(report)
    return {**{k: data.pop(k) for k in HEAD if k in data}, **data}


def json_data(report: Report) -> tuple[dict, list[str]]:
    """The report as JSON data with every non-finite figure null, and where those were ('ledger[2].points')."""
    return finite(msgspec.to_builtins(report, enc_hook=plain))


def json_text(report: Report) -> str:
    """The report's JSON file: indented, and refusing NaN (to_json has made every non-finite figure null)."""
    return json.dumps(to_json(report), indent=1, allow_nan=False)


def finite(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """The JSON data with every non-finite number made null, and where they were ('ledger[2].points')."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, [path.lstrip(".")]
    if isinstance(value, dict):
        pairs = [(k, finite(v, f"{path}.{k}")) for k, v in value.items()]
        return {k: v for k, (v, _) in pairs}, [p for _, (_, bad) in pairs for p in bad]
    if isinstance(value, list):
        items = [finite(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return [v for v, _ in items], [p for _, bad in items for p in bad]
    return value, []


def plain(value: Any) -> Any:
    """A numpy scalar that a stage left in a figure, as the Python number it is."""
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    raise NotImplementedError(f"{type(value).__name__} in a report")
