"""What a diff of two runs finds, as data (`mfu-diff/1`: what `diff --json` writes and every renderer reads).

Every change is B − A. An interval is the change's at the level DIFF_LEVEL, from the steps themselves
(diff/noise.py); None where a side has one step or no per-step figures.
"""

from typing import Any

import msgspec

SCHEMA = "mfu-diff/1"


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """A diff part: immutable, built by keyword."""


class Side(Record, frozen=True, kw_only=True):
    paths: list[str]
    samples: int  # analysed steps with per-step figures: each a sample (a job's ranks averaged per step)
    ranks: int
    cycles: int  # runs of consecutive step numbers: profiler cycles


class Change(Record, frozen=True, kw_only=True):
    """A figure of both sides: step time (ms), MFU (%), a cause (points) or a category (ms per step)."""

    a: float
    b: float
    change: float
    change_pct: float | None  # of A's figure (None where A's is 0)
    interval: list[float] | None = None
    interval_pct: list[float] | None = None
    verdict: str = "no interval"  # slower / faster (step time), higher / lower (others), no change, no interval


class OpChange(Record, frozen=True, kw_only=True):
    """An op (name and input shapes) or a kernel (name) on both sides, per step."""

    name: str
    shapes: str = ""  # B's; A's in shapes_a where the shape changed
    status: str  # "changed", "new", "removed", "reshaped"
    category: str
    ms_a: float
    ms_b: float
    calls_a: float
    calls_b: float
    tflops_a: float | None = None
    tflops_b: float | None = None
    shapes_a: str | None = None

    @property
    def change_ms(self) -> float:
        return self.ms_b - self.ms_a


class CauseChange(Record, frozen=True, kw_only=True):
    cause: str
    points: Change
    categories: dict[str, list[float]]  # the breakdown categories behind it: [A ms, B ms] per step
    ops: list[OpChange]  # the ops behind it that moved most


class SetupChange(Record, frozen=True, kw_only=True):
    key: str
    a: Any
    b: Any


class Diff(Record, frozen=True, kw_only=True):
    schema: str = SCHEMA
    a: Side
    b: Side
    level: float
    conventions: list[str]  # the method behind every interval and verdict
    run_noise: float  # the relative standard deviation per run added to the step time's interval
    unit: str  # "mfu": causes in points of MFU; "step_time": in points of the step time
    notes: list[str]  # what the reader must know first: devices or peaks differ, units converted, no interval
    verdict: str  # of the step time: slower, faster, no change, no interval
    step_time: Change
    mfu: Change | None  # None across devices or peaks, or where a side has no MFU
    causes: list[CauseChange]  # by the size of their change, largest first
    breakdown: dict[str, Change]
    ops: list[OpChange]  # by the size of their change in ms per step, largest first
    kernels: list[OpChange]
    setup: list[SetupChange]
