"""The rank's ops as report rows: by name with their roofline (top_ops, the diagnosis' evidence), by name and
input shapes, and the kernels by name (the tables a diff matches)."""

from profiler.analysis.records import OpKey, OpStats, milliseconds, seconds
from profiler.mfu.records import OpRow
from profiler.mfu.roofline import op_roofline
from profiler.settings import OPS_IN_REPORT, TERA


def op_row(name: str, s: OpStats, n_steps: int, **extra) -> OpRow:
    """One op's figures per step; its achieved rate is its counted FLOPs over the time they took."""
    return OpRow(name=name, category=s.category, count=s.count / n_steps, ms=milliseconds(s.us / n_steps),
                 flops=s.flops / n_steps,
                 tflops_per_s=s.flops / seconds(s.flop_us) / TERA if s.flop_us and s.flops else None,
                 bytes=s.bytes / n_steps, flop_ms=milliseconds(s.flop_us / n_steps) if s.flops else 0.0, **extra)


def op_rows(ops: dict[str, OpStats], n_steps: int, peak_run: float | None, bandwidth: float | None) -> list[OpRow]:
    """All ops of the rank by time per step, largest first, each with its roofline where it can be formed."""
    rows = sorted(ops.items(), key=lambda kv: -kv[1].us)
    return [op_row(name, s, n_steps, roofline=op_roofline(s, n_steps, peak_run, bandwidth)) for name, s in rows]


def shaped_rows(ops: dict[OpKey, OpStats], n_steps: int) -> list[OpRow]:
    """The longest OPS_IN_REPORT ops by name and input shapes, largest first."""
    rows = sorted(ops.items(), key=lambda kv: -kv[1].us)[:OPS_IN_REPORT]
    return [op_row(name, s, n_steps, shapes=shapes) for (name, shapes), s in rows]


def kernel_rows(kernels: dict[str, OpStats], n_steps: int) -> list[OpRow]:
    """The longest OPS_IN_REPORT kernels by name, largest first (empty for a CPU trace)."""
    return [op_row(name, s, n_steps) for name, s in sorted(kernels.items(), key=lambda kv: -kv[1].us)[:OPS_IN_REPORT]]
