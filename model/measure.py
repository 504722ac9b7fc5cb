"""Micro-steps timed and measured before a run trains, at its own shapes: what a change of precision, a larger
batch or non_fused's fix would save, and what a larger batch would need in memory. One trace cannot tell these
at small shapes (an op's fixed cost and its work look alike there); the analyzer quotes them (diagnosis/measured.py,
diagnosis/memory_plan.py, mfu/memory.py)."""

import json
import tempfile
import time
from itertools import accumulate
from pathlib import Path

import torch

from model.train import DTYPES, TrainConfig, autocast, device_type_of, make_optimizer_over


def fwd_bwd(model, x, y, device_type: str, dtype: str):
    """One micro-step's forward (under the run's autocast) and backward."""
    with autocast(device_type, dtype):
        _, loss = model(x, y)
    loss.backward()


def fwd_bwd_ms(model, x, y, device_type: str, dtype: str, repeats: int) -> list[float]:
    """Milliseconds of each of a warm-up and `repeats` forward and backward passes."""
    times: list[float] = []
    for _ in range(repeats + 1):
        if device_type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fwd_bwd(model, x, y, device_type, dtype)
        if device_type == "cuda":
            torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - start))
    return times


def step_ms_by_dtype(model, batches, cfg: TrainConfig, device: str, repeats: int = 3,
                     slow: float = 10.0) -> dict[str, float]:
    """Milliseconds of one micro-step's forward and backward at the run's shapes in each training dtype (best
    of `repeats` after a warm-up): what switching precision really saves here, where a GEMM peak overstates it
    (bfloat16 attention's backward can even be slower on a CPU). The dtypes take turns, round by round, so that
    a load that comes and goes on a shared machine falls on both alike, not on whichever ran second. A dtype
    whose warm-up is `slow` times the fastest warm-up (bfloat16 emulated on a CPU without AVX-512-BF16 or AMX)
    is not repeated: its warm-up time stands, an upper bound, so the measurement costs seconds. Pass the bare
    model, never a DDP wrapper: ranks may repeat a dtype a different number of times. Gradients are cleared
    afterwards."""
    x, y = (t.to(device) for t in next(batches))
    times: dict[str, list[float]] = {}
    for dtype in DTYPES:  # the warm-ups, one each
        times[dtype] = fwd_bwd_ms(model, x, y, device_type_of(device), dtype, 0)
    fastest = min(t[0] for t in times.values())
    repeated = [d for d in DTYPES if times[d][0] <= slow * fastest]
    for _ in range(repeats):
        for dtype in repeated:
            times[dtype] += fwd_bwd_ms(model, x, y, device_type_of(device), dtype, 0)
    model.zero_grad(set_to_none=True)
    return {d: min(t[1:] or t) for d, t in times.items()}  # the first is a warm-up, unless it was all there was


def step_ms_by_batch(model, batches, cfg: TrainConfig, device: str, factor: int, repeats: int = 3
                     ) -> dict[str, float]:
    """Milliseconds of one micro-step's forward and backward in the run's dtype at its batch and at `factor`
    times it (the batch small_batch's fix proposes), best of `repeats` after a warm-up: how much of the step
    grows with the batch, which one trace cannot tell at small shapes (an op's fixed cost and its work look
    alike there). Keyed by batch size; empty where the larger batch does not fit in memory. Pass the bare
    model, never a DDP wrapper. Gradients are cleared afterwards."""
    x, y = (t.to(device) for t in next(batches))
    out: dict[str, float] = {}
    try:
        for n in (1, factor):
            times = fwd_bwd_ms(model, x.repeat(n, 1), y.repeat(n, 1), device_type_of(device), cfg.dtype, repeats)
            out[str(n * len(x))] = min(times[1:])
    except torch.OutOfMemoryError:
        out = {}
    model.zero_grad(set_to_none=True)
    return out


def step_ms_by_fix(model, batches, cfg: TrainConfig, device: str, repeats: int = 3) -> dict[str, dict[str, float]]:
    """What non_fused's fix would change, timed at the run's shapes before it trains (on a CPU, bfloat16
    SDPA's backward can be slower than the matmuls it replaces): a micro-step's forward and backward with the
    run's manual attention and with SDPA, and an optimizer step in the run's implementation and fused, on copies
    of the parameters. Only the parts that differ from the fix are timed; {} where none does. Pass the bare
    model. Gradients are cleared afterwards."""
    out: dict[str, dict[str, float]] = {}
    attention = [m for m in model.modules() if hasattr(m, "fused") and isinstance(m.fused, bool)]
    if cfg.attention != "sdpa" and attention:
        x, y = (t.to(device) for t in next(batches))
        times: dict[str, float] = {}
        for _ in range(repeats):  # the two in turn, so that another job's load falls on both alike
            for fused, name in ((False, cfg.attention), (True, "sdpa")):
                for m in attention:
                    m.fused = fused
                best = min(fwd_bwd_ms(model, x, y, device_type_of(device), cfg.dtype, 1)[1:])
                times[name] = min(times.get(name, best), best)
        for m in attention:
            m.fused = False
        out["attention"] = times
        model.zero_grad(set_to_none=True)
    if cfg.optimizer_impl != "fused":
        private = torch.Generator(device=device).manual_seed(0)
        params = [p.detach().clone().requires_grad_() for p in model.parameters()]
        for p in params:
            p.grad = torch.randn(p.shape, device=device, generator=private, dtype=p.dtype)
        times = {}
        for impl in (cfg.optimizer_impl, "fused"):
            optimizer = make_optimizer_over(params, cfg, impl)
            optimizer.step()  # warm-up, and the optimizer's state
            runs = []
            for _ in range(repeats):
                start = time.perf_counter()
                optimizer.step()
                if device_type_of(device) == "cuda":
                    torch.cuda.synchronize()
                runs.append(1000 * (time.perf_counter() - start))
            times[impl] = min(runs)
        out["optimizer"] = times
    return out


def transient_bytes(model, x, y, device_type: str, dtype: str) -> float:
    """Bytes one forward and backward allocates above what it starts with, at its peak (activations, gradients,
    temporaries): on a GPU the caching allocator's own peak; on a CPU, which keeps no such count, the peak of the
    running sum of the allocations and frees that torch.profiler's memory events record over the pass."""
    if device_type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        fwd_bwd(model, x, y, device_type, dtype)
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated() - start)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fwd_bwd(model, x, y, device_type, dtype)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "micro_step.json"
        prof.export_chrome_trace(str(path))
        events = [e for e in json.loads(path.read_text())["traceEvents"] if e.get("name") == "[memory]"]
    changes = [e["args"].get("Bytes", 0) for e in sorted(events, key=lambda e: e["ts"])]
    return float(max(accumulate(changes), default=0))


def memory_by_batch(model, batches, cfg: TrainConfig, device: str, factor: int) -> dict:
    """What our run knows exactly of its memory (parameters, gradients, AdamW's two states per parameter and its
    step count, at their dtypes) and what it measures: a micro-step's transient at its batch and at `factor`
    times it, keyed by batch size (mfu/memory.py fits the activations per sample to them). The transients are
    {} where the larger batch does not fit. Pass the bare model. Gradients are cleared afterwards."""
    params = [p for p in model.parameters() if p.requires_grad]
    weights = sum(p.numel() * p.element_size() for p in params)
    x, y = (t.to(device) for t in next(batches))
    transients: dict[str, float] = {}
    try:
        for n in (1, factor):
            transients[str(n * len(x))] = transient_bytes(model, x.repeat(n, 1), y.repeat(n, 1),
                                                          device_type_of(device), cfg.dtype)
            model.zero_grad(set_to_none=True)
    except torch.OutOfMemoryError:
        transients = {}
    model.zero_grad(set_to_none=True)
    step_counts = 4 * len(params)  # AdamW keeps a float32 step count per parameter tensor
    return {"parameters": weights, "gradients": weights, "optimizer_state": 2 * weights + step_counts,
            "transient_bytes_by_batch": transients}
