"""What a change of precision saves at a trace's own matmul and attention shapes, timed on the machine that
recorded it.

A 2048-cube GEMM's rate (the peak) overstates what a faster precision brings at small shapes: on a CPU, bfloat16
can even be slower than float32 there, where its large GEMMs are twice as fast. So where the analysis runs on
the recording machine, each distinct (op, input shapes) of the counted matmul and attention ops is replayed in
each precision the device offers, as autocast would run it (the inputs cast from float32 first), the best of a
few calls; each shape weighs as much as the trace's own time in it. Private generators and a forked RNG: the
user's training draws the same random numbers with or without this measurement.
"""

import json
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from profiler.settings import SHAPE_TIMING_BUDGET_S, SHAPE_TIMING_REPEATS, SLOW_DTYPE_RATIO, US_PER_S

# the precisions autocast trains in, per device kind: float32 is the run without autocast
CANDIDATES = {"cpu": ("float32", "bfloat16"), "cuda": ("float32", "bfloat16", "float16")}
REPLAYED = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")  # GEMMs; SDPA's forward and backward too


@dataclass(frozen=True, kw_only=True)
class ShapeTiming:
    """The replayed ops' time per step in each precision, scaled to the trace's own time of them."""

    run_dtype: str  # the precision the trace's matmuls ran in
    us_by_dtype: dict[str, float]  # per step: the trace's time of the replayed ops, × each dtype's time over the run's
    counted_us: float  # per step: the trace's time of every counted matmul and attention op
    flops: float  # per step, of the replayed ops
    isolated_us: dict[str, float]  # per step: the replayed ops' own time here, in each dtype
    shapes: int  # distinct (op, shapes) replayed

    @property
    def replayed_us(self) -> float:
        """Per step: the trace's own time of the replayed ops (their time in the run's own precision)."""
        return self.us_by_dtype[self.run_dtype]

    @property
    def fastest(self) -> str:
        """The precision the replayed ops are fastest in (the run's own on a tie)."""
        return min(self.us_by_dtype, key=lambda d: (self.us_by_dtype[d], d != self.run_dtype))

    @property
    def saving_share(self) -> float:
        """The share of the replayed ops' time that the fastest precision saves (0 where the run's is fastest):
        applied to every counted matmul op, those that could not be replayed too."""
        return max(1 - self.us_by_dtype[self.fastest] / self.us_by_dtype[self.run_dtype], 0.0)


@contextmanager
def isolated_rng(device_type: str = "cpu"):
    """The global torch RNG (and CUDA's, where initialised) as it was, whatever the block draws."""
    import torch

    devices = list(range(torch.cuda.device_count())) if device_type == "cuda" and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        yield


_MEASURED: dict[tuple, "ShapeTiming | None"] = {}  # this process's timings: a run's cycles share their shapes


def timed_shapes(calls: dict[tuple, int], call_us: dict[tuple, float], steps: int, run_dtype: str,
                 device_type: str) -> "ShapeTiming | None":
    """time_shapes, once per process for one set of shapes: each profiler cycle of a run and its final report
    replay the same ones."""
    key = (frozenset(calls), run_dtype, device_type)
    if key not in _MEASURED:
        _MEASURED[key] = time_shapes(calls, call_us, steps, run_dtype, device_type)
    return _MEASURED[key]


def time_shapes(calls: dict[tuple, int], call_us: dict[tuple, float], steps: int, run_dtype: str,
                device_type: str, budget_s: float = SHAPE_TIMING_BUDGET_S) -> ShapeTiming | None:
    """Replay each (op, dims, types, concrete) key of the counted matmul and attention ops (Signals.matmul_calls)
    in every candidate precision; None where torch is missing or nothing could be replayed."""
    try:
        import torch
    except ImportError:
        return None
    started = time.perf_counter()
    candidates = CANDIDATES.get(device_type, CANDIDATES["cpu"])
    if run_dtype not in candidates:
        return None
    device = torch.device("cuda" if device_type == "cuda" else "cpu")
    per_step = max(steps, 1)
    totals = {d: 0.0 for d in candidates}
    isolated = {d: 0.0 for d in candidates}
    flops = 0.0
    shapes = 0
    slow: set[str] = set()
    with isolated_rng(device_type):
        generator = torch.Generator(device=device).manual_seed(0)
        for key in sorted(call_us, key=lambda k: -call_us[k]):  # the largest first, in case the budget runs out
            if time.perf_counter() - started > budget_s:
                break
            prepare = replay(key, device, generator)
            if prepare is None:
                continue
            times = {}
            for dtype in candidates:
                if dtype in slow:  # emulated here: far slower at every shape, not worth its seconds
                    times[dtype] = float("inf")
                    continue
                times[dtype] = best_us(prepare, getattr(torch, dtype), device, SHAPE_TIMING_REPEATS)
            if not all(times[d] > 0 for d in candidates):
                continue
            base = times["float32"]
            slow |= {d for d, t in times.items() if t > SLOW_DTYPE_RATIO * base}
            trace_us = call_us[key] / per_step
            for d in candidates:
                totals[d] += trace_us * min(times[d] / times[run_dtype], SLOW_DTYPE_RATIO)
                isolated[d] += calls[key] / per_step * min(times[d], SLOW_DTYPE_RATIO * base)
            flops += calls[key] / per_step * key_flops(key)
            shapes += 1
    if not shapes:
        return None
    return ShapeTiming(run_dtype=run_dtype, us_by_dtype=totals,
                       counted_us=sum(call_us.values()) / per_step, flops=flops, isolated_us=isolated, shapes=shapes)


def key_flops(key: tuple) -> float:
    from profiler.trace.flops import attention_flops, matmul_flops

    name, dims = key[0], json.loads(key[1])
    return matmul_flops(name, dims) if name in REPLAYED else attention_flops(name, dims)


def replay(key: tuple, device, generator) -> Callable | None:
    """For the key's op, a function of a dtype that prepares one call on inputs of the recorded shapes and
    returns the part to time: the op with autocast's casts of its float32 inputs, or (a backward) the gradient
    of a forward already run. None where the op or its shapes cannot be replayed."""
    import torch
    import torch.nn.functional as F

    name = key[0]
    dims, concrete = json.loads(key[1]), json.loads(key[3])
    shapes = [d for d in dims if isinstance(d, list) and d and all(isinstance(x, int) for x in d)]
    ops: dict[str, Callable] = {"aten::mm": torch.mm, "aten::bmm": torch.bmm, "aten::addmm": torch.addmm,
                                "aten::baddbmm": torch.baddbmm}
    op = ops.get(name)
    if op:
        count = 2 if name in ("aten::mm", "aten::bmm") else 3
    elif "scaled_dot_product" in name and "attention" in name:  # SDPA's forward and backward, [B, H, L, E]
        count = 4 if name.endswith("_backward") else 3
    else:
        return None  # other attention spellings and convolutions are not replayed
    if len(shapes) < count:
        return None
    tensors = [torch.randn(*sh, device=device, generator=generator) for sh in shapes[:count]]
    causal = "True" in map(str, concrete)  # SDPA's is_causal, the one boolean it records as True
    if op:
        try:
            op(*tensors)
        except RuntimeError:  # shapes that do not multiply as recorded
            return None
        return lambda dtype: lambda: op(*(t.to(dtype) for t in tensors))
    if any(t.dim() != 4 for t in tensors):
        return None
    if count == 3:
        q, k, v = tensors
        return lambda dtype: lambda: F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype),
                                                                    is_causal=causal)
    grad_out, q, k, v = tensors

    def backward(dtype):
        leaves = [t.to(dtype).requires_grad_() for t in (q, k, v)]
        out = F.scaled_dot_product_attention(leaves[0], leaves[1], leaves[2], is_causal=causal)
        return lambda: torch.autograd.grad(out, leaves, grad_out.to(dtype))

    return backward


def best_us(prepare: Callable, dtype, device, repeats: int) -> float:
    """The fastest of `repeats` timed calls after a warm-up, in µs; 0 where the device refuses the dtype."""
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def once() -> float:
        run = prepare(dtype)
        sync()
        start = time.perf_counter()
        run()
        sync()
        return US_PER_S * (time.perf_counter() - start)

    try:
        once()
        return min(once() for _ in range(repeats))
    except (RuntimeError, TypeError):
        return 0.0
