"""torch.profiler around a training loop: the schedule, the TensorBoard trace handler and the run's metadata.

The metadata (model config, tokens and analytic FLOPs per step, dtype, peak) goes into every trace so that
the analyzer can work from the trace alone. `add_metadata_json` only reaches a trace when called while the
profiler records, so it is added at each recording step of every cycle.
"""

import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path

import msgspec
import torch
from torch.profiler import ProfilerAction, ProfilerActivity

from profiler.mfu.memory import memory_size
from profiler.settings import US_PER_S
from profiler.trace.metadata import RunMetadata

# Kineto prints lines of its own at every profiler start and stop ("USDT: ... profiler_start"); above level 5 it
# keeps them to itself. Read when the profiler is first used in the process; a user's own setting stands
# (KINETO_LOG_LEVEL=0 shows everything)
os.environ.setdefault("KINETO_LOG_LEVEL", "6")
METADATA_KEY = "mfu_analyzer"
RECORDING = (ProfilerAction.RECORD, ProfilerAction.RECORD_AND_SAVE)


@dataclass(kw_only=True)
class ProfileConfig:
    """The profiler's settings, one type from profile(settings=) and profile_run.py's keys to the Session: each is
    settled here and nowhere else, and checked when made."""

    profile: bool = True
    skip_first: int = 5
    wait: int = 5
    warmup: int = 2
    active: int = 4
    repeat: int = 2  # 0: repeat until the run ends
    peak_flops: float = 0.0  # the device's peak FLOP/s, overriding the table or the CPU measurement
    peak_flops_run: float = 0.0  # with peak_flops: the peak in the run's matmul dtype (P_run); 0: P_run = P
    tensorboard: bool = True  # scalars, each cycle's analysis and the final report into the run folder
    profile_memory: bool = True  # the allocator's events, for the report's memory: will a larger batch fit
    memory_capacity: str = ""  # the device memory to plan a batch against ("80GB", "24GiB", bytes); "": found

    def __post_init__(self):
        if min(self.skip_first, self.wait, self.repeat) < 0 or self.active < 1 or self.warmup < 0:
            raise ValueError("profiler schedule: active must be at least 1, the others at least 0")
        if self.memory_capacity:
            memory_size(self.memory_capacity)  # says what is wrong with it


class Session:
    """A torch.profiler.profile when cfg.profile, else a no-op with the same step().

    on_trace(path, step) is called with each trace file as soon as the handler has written it.
    """

    def __init__(self, cfg: ProfileConfig, run_dir: Path, metadata: RunMetadata, on_trace=None, worker: str = ""):
        self.metadata = msgspec.json.encode(metadata).decode()
        self.prof = None
        if not cfg.profile:
            return
        worker = worker or f"{socket.gethostname()}_{os.getpid()}"
        handler = torch.profiler.tensorboard_trace_handler(str(run_dir), worker_name=worker)

        def trace_ready(prof):
            before = set(run_dir.glob(f"{worker}.*.pt.trace.json*"))
            handler(prof)
            for path in sorted(set(run_dir.glob(f"{worker}.*.pt.trace.json*")) - before):
                if on_trace:
                    on_trace(path, prof.step_num)

        schedule = torch.profiler.schedule(skip_first=cfg.skip_first, wait=cfg.wait, warmup=cfg.warmup,
                                           active=cfg.active, repeat=cfg.repeat)
        self.prof = torch.profiler.profile(activities=activities(), schedule=schedule, on_trace_ready=trace_ready,
                                           record_shapes=True, profile_memory=cfg.profile_memory)
        # each cycle is written and analysed on its own: torch's advice to accumulate events does not apply
        warnings.filterwarnings("ignore", message=".*Profiler clears events at the end of each cycle")

    def __enter__(self):
        if self.prof:
            self.prof.__enter__()
            self._tag()
        return self

    def __exit__(self, *exc):
        if self.prof:
            self.prof.__exit__(*exc)
        return False

    @property
    def idle(self) -> bool:
        """Whether the step now open is neither recorded nor warming up: work done in it stays out of the traces."""
        return self.prof is None or self.prof.current_action == ProfilerAction.NONE

    def step(self):
        if self.prof:
            self.prof.step()
            self._tag()

    def _tag(self):
        if self.prof is not None and self.prof.current_action in RECORDING:
            self.prof.add_metadata_json(METADATA_KEY, self.metadata)


def activities() -> list:
    return [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])


def recording_cost_us(device: torch.device, steps: int = 150, rounds: int = 4, profile_memory: bool = False) -> float:
    """What recording costs per op on this machine with the session's settings. A tiny training step (a linear
    layer, GELU, a sum, backward: ops of several inputs and autograd's nodes, as in a real step) is looped
    without the profiler, under one profiler session, and without it again (`rounds` loops each, the fastest
    kept); the difference over the ops recorded is the cost per op. A host-bound step's recorded time carries
    it for every op; the analysis takes it out (ledger.without_profiler)."""
    import time

    layer = torch.nn.Linear(16, 16, device=device)
    x = torch.ones(4, 16, device=device)

    def loop() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            torch.nn.functional.gelu(layer(x)).sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    loop()  # warm up
    plain = [loop() for _ in range(rounds)]
    with torch.profiler.profile(activities=activities(), record_shapes=True, profile_memory=profile_memory) as prof:
        recorded = [loop() for _ in range(rounds)]
    plain += [loop() for _ in range(rounds)]
    n_ops = sum(1 for e in prof.profiler.kineto_results.events()  # the raw events: key_averages takes seconds
                if e.device_type() == torch.autograd.DeviceType.CPU and not e.name().startswith(("cuda", "hip"))
                ) / rounds
    return max(min(recorded) - min(plain), 0.0) / max(n_ops, 1) * US_PER_S
