"""The public API: profile your own training loop in three lines.

    import profiler
    with profiler.profile("runs/mine", model=model, tokens_per_step=batch_size * seq_len) as p:
        for batch in loader:
            ...  # forward, backward, optimizer step
            p.step()

or, leaving the loop's indentation as it is, `p = profiler.start(...)` before it and `p.stop()` after it.

It wraps torch.profiler with a schedule, writes each trace with the metadata the analyzer needs, analyses
each profiler cycle as soon as it is written, logs it to TensorBoard in the same folder, and writes
report.json / .md / .html at the end. scripts/profile_run.py and the Hugging Face and Lightning callbacks
(profiler.capture.integrations) go through it.

F_model, the model FLOPs per step, comes from the first of: `flops_per_step`; the model's own description
(mfu/modelflops.py: 6N per token over its active, non-embedding parameters plus attention at the sequence length
it trains on, when its config states layers and heads: a nanoGPT GPTConfig or a Hugging Face config); three
times the first step's forward FLOPs, counted with FlopCounterMode. The sequence length is `sequence_length`, else
the first forward's input; the tokens per step `tokens_per_step`, else those the first step's forwards took.
"""

import atexit
import dataclasses
import sys
import time
import warnings
from pathlib import Path

import msgspec
import torch

from profiler.capture.modeltree import FirstStep, describe, layered_config, sharded_degree
from profiler.capture.session import ProfileConfig, Session, recording_cost_us
from profiler.mfu.bandwidth import Bandwidth, resolve_bandwidth
from profiler.mfu.cpupeak import this_machine
from profiler.mfu.memory import machine_memory, memory_size
from profiler.mfu.peak import Peak, resolve_peak
from profiler.mfu.shapetime import isolated_rng
from profiler.report.model import Report
from profiler.report.terminal import for_terminal
from profiler.settings import MS_PER_S, Options
from profiler.trace.errors import TraceError
from profiler.trace.metadata import NO_METADATA, RunMetadata


class profile:  # noqa: N801 (a context manager named like torch.profiler.profile)
    """Profile a training loop: `with profile(out_dir, model=...) as p:` and `p.step()` after each step.

    `settings`: the profiler's own (session.ProfileConfig: the schedule, the peak, TensorBoard, the device memory a
    larger batch is planned against, over what the trace says or, on a CPU, this machine's memory or cgroup limit).
    `run_config`: your run's settings (nanoGPT's train.py keeps them in its `config` dict), so that a fix is given
    in your own keys, and only in keys your program has; without it, fixes are code. `vocabulary` says whose
    keys they are: "config" (your script's `--key=value`), or "hf" / "lightning" (the callbacks pass theirs).
    The keywords of before (`schedule=`, `config=`, `peak_flops=`, ...) still work for a release, with a warning.
    """

    def __init__(self, out_dir, model: torch.nn.Module | None = None, tokens_per_step: int | None = None, *,
                 settings: ProfileConfig | None = None, run_config: dict | None = None,
                 flops_per_step: float | None = None, dtype: str | None = None, sequence_length: int | None = None,
                 report: bool = True, metadata: RunMetadata | None = None, worker: str = "", say=print,
                 run_log=None, vocabulary: str = "config", **deprecated):
        settings, run_config = settle_deprecated(settings, run_config, deprecated)
        self.out_dir, self.settings = Path(out_dir), settings
        self.model, self.tokens_per_step, self.dtype = model, tokens_per_step, dtype
        self.sequence_length = sequence_length
        self.flops_per_step, self.flops_from = flops_per_step, "flops_per_step" if flops_per_step else None
        self.extra, self.worker, self.say = metadata or NO_METADATA, worker, say
        if run_config is not None:  # the user's own settings: a fix names only the keys they hold (mfu/vocabulary.py)
            self.extra = msgspec.structs.replace(self.extra, config=plain_settings(run_config), vocabulary=vocabulary)
        self.write_report = report
        self.memory_capacity = memory_size(settings.memory_capacity) if settings.memory_capacity else None
        self.session: Session  # opened in __enter__
        self.first_step: FirstStep | None = None  # watches the first step's forwards where F_model is not given
        self.steps, self.waited_s = 0, 0.0
        self.recording_cost_us: float | None = None
        self.stopped = False
        self.run_log, self.own_log = run_log, run_log is None and settings.tensorboard  # a caller's RunLog stays open

    @property
    def stall_s(self) -> float:
        """Seconds the steps that closed a profiler cycle waited for it (the profiler's stop, the trace export,
        our analysis): leave them out of your iteration times."""
        return self.waited_s

    def __enter__(self):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with isolated_rng(self.device().type):  # the user's training draws the same numbers as without us
            self.peak = self.resolve_peak()
            self.bandwidth = live_bandwidth(self.device())
            if self.settings.profile:  # before the session: its own cycles must not record the calibration
                self.recording_cost_us = recording_cost_us(self.device(), profile_memory=self.settings.profile_memory)
        if not self.flops_per_step and self.model is not None:  # before the profiler records
            self.first_step = FirstStep(self.model, count_flops=layered_config(self.model) is None)
        if self.own_log:
            from profiler.capture.tensorboard import RunLog

            self.run_log = RunLog(self.out_dir, Options(peak_flops=self.settings.peak_flops,
                                                          peak_flops_run=self.settings.peak_flops_run), self.say)
        self.session = Session(self.settings, self.out_dir, self.metadata(),
                               self.run_log.trace_written if self.run_log else None, self.worker).__enter__()
        return self

    def step(self):
        """Call once per training step (optimizer step), after it."""
        if self.first_step:
            self.settle_model_flops(self.first_step)
            self.first_step = None
            self.session.metadata = msgspec.json.encode(self.metadata()).decode()
        self.steps += 1
        started = time.perf_counter()
        if self.run_log:
            self.run_log.cycle_line = ""
        self.session.step()
        if self.run_log and self.run_log.cycle_line:  # this step closed a cycle: say what it found, and the wait
            waited = time.perf_counter() - started
            self.waited_s += waited
            self.say(f"{self.run_log.cycle_line}; the step waited {waited:.2f} s for it ("
                     f"{waited - self.run_log.analysis_s:.2f} s stopping the profiler and writing the trace, "
                     f"{self.run_log.analysis_s:.2f} s analysing it)")

    @property
    def idle(self) -> bool:
        """Whether the step now open is not being profiled: do evaluation and checkpoints then."""
        return self.session.idle

    def log_iteration(self, step: int, loss: float, ms: float, mfu: float | None = None):
        """Per-iteration scalars in TensorBoard (loss, step time, tokens/s, MFU)."""
        if self.run_log:
            tokens_s = self.tokens_per_step / ms * MS_PER_S if self.tokens_per_step else 0.0
            self.run_log.iteration(step, loss, ms, tokens_s, mfu)

    def __exit__(self, *exc):
        self.stopped = True
        if self.first_step:
            self.first_step.close()
        self.session.__exit__(*exc)
        if self.settings.profile and self.steps == 0 and exc[0] is None:
            self.say(f"no report: p.step() was never called, so the profiler saw no training step (call it once per "
                     f"step, after optimizer.step()); {self.out_dir} holds no trace of this run")
        elif self.write_report and exc[0] is None:
            report = final_report(self.out_dir, self.run_log, self.steps, self.say)
            if report:
                self.say(f"\n{for_terminal(report, sys.stdout)}\n")
        if self.own_log:
            self.run_log.close()
        return False

    def stop(self):
        """End profiling and write the report (profiler.start's counterpart; a second call does nothing)."""
        if not self.stopped:
            atexit.unregister(self.stop)
            self.__exit__(None, None, None)

    def settle_model_flops(self, seen: FirstStep):
        """F_model from what the first step showed: the model's description at the sequence length it trained on,
        times the tokens per step; else three times its forward FLOPs as counted."""
        seen.close()
        length = self.sequence_length or seen.sequence_length
        self.tokens_per_step = self.tokens_per_step or seen.tokens or None
        described = describe(self.model, length) if self.model is not None and length else None
        degree = sharded_degree(self.model) if self.model is not None else 1
        shared = f", / {degree} (the tensor / context-parallel degree of its DTensor mesh)" if degree > 1 else ""
        if described and self.tokens_per_step:
            origin = "sequence_length=" if self.sequence_length else "the first forward's input"
            self.flops_per_step = described.flops_per_step(self.tokens_per_step) / degree
            self.flops_from = f"{described.formula()} ({origin}), {self.tokens_per_step:,} tokens per step{shared}"
        elif seen.forward_flops:
            self.flops_per_step = 3 * seen.forward_flops / degree
            self.flops_from = (f"3 × the first step's forward FLOPs, counted with FlopCounterMode "
                               f"({seen.forwards} forward pass{'es' if seen.forwards > 1 else ''}){shared}")

    def device(self) -> torch.device:
        """The model's device, else the GPU if there is one."""
        if self.model is not None:
            return next(self.model.parameters()).device
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def resolve_peak(self) -> Peak | None:
        return live_peak(self.device(), self.dtype or "float32", self.settings.peak_flops,
                         self.settings.peak_flops_run)

    def capacity(self) -> dict:
        """The device memory to plan a batch against, where the trace will not say it: the caller's word, else on
        a CPU this machine's memory or its cgroup's limit (a GPU's is in the trace's deviceProperties)."""
        if self.memory_capacity:
            return {"memory_capacity": self.memory_capacity, "memory_capacity_from": "profile(memory_capacity=)"}
        here = machine_memory() if self.device().type == "cpu" else None
        return {"memory_capacity": here[0], "memory_capacity_from": here[1]} if here else {}

    def metadata(self) -> RunMetadata:
        """What the analyzer needs from this run, written into every trace: the caller's metadata (a script of
        ours passes its configuration) over what this session found, and F_model and the profiler's cost as
        measured here over both."""
        found = RunMetadata(tokens_per_step=self.tokens_per_step, dtype=self.dtype,
                            peak=self.peak.as_dict() if self.peak else None,
                            bandwidth=self.bandwidth.as_dict() if self.bandwidth else None,
                            torch_version=str(torch.__version__), machine=this_machine(),
                            threads=torch.get_num_threads(), **self.capacity())
        measured = RunMetadata(flops_per_step=self.flops_per_step or None,
                               flops_from=None if self.flops_from == "flops_per_step" else self.flops_from,
                               recording_cost_us_per_op=self.recording_cost_us)
        return msgspec.convert({**found.as_json(), **self.extra.as_json(), **measured.as_json()}, RunMetadata)


def start(out_dir, **options) -> profile:
    """Profile without a `with` block, so your loop keeps its indentation: `p = profiler.start(out_dir, model=...)`
    before the loop, `p.step()` after each step, `p.stop()` after it; where the program ends without `p.stop()`,
    the report is written at exit all the same. Takes profile's arguments."""
    session = profile(out_dir, **options).__enter__()
    atexit.register(session.stop)
    return session


PACKAGE = Path(__file__).resolve().parents[1]  # profiler/
MOVED_TO_SETTINGS = ("peak_flops", "peak_flops_run", "memory_capacity", "tensorboard")  # ProfileConfig's fields


def settle_deprecated(settings: ProfileConfig | None, run_config: dict | None,
                      old: dict) -> tuple[ProfileConfig, dict | None]:
    """profile()'s keywords of before issue 49, kept for a release so that no caller breaks: each is folded into
    `settings` or `run_config` with a DeprecationWarning that names its new form; anything else is the TypeError
    of an unknown keyword."""
    unknown = sorted(set(old) - {"schedule", "config", *MOVED_TO_SETTINGS})
    if unknown:
        raise TypeError(f"profile() got an unexpected keyword argument {unknown[0]!r}")
    if "schedule" in old:
        deprecated("schedule=", "settings=ProfileConfig(...) (profiler.capture.session)")
        if settings is not None:
            raise TypeError("profile(): pass settings= alone, not with schedule=")
        schedule = old["schedule"]
        settings = schedule if isinstance(schedule, ProfileConfig) else ProfileConfig(**(schedule or {}))
    settings = settings or ProfileConfig()
    if "config" in old:
        deprecated("config=", "run_config=")
        if run_config is not None:
            raise TypeError("profile(): pass run_config= alone, not with config=")
        run_config = old["config"]
    moved = [key for key in MOVED_TO_SETTINGS if key in old]
    if moved:
        deprecated(", ".join(f"{key}=" for key in moved), f"settings=ProfileConfig({', '.join(moved)}=...)")
        given = {key: old[key] for key in moved if key == "tensorboard" or old[key]}  # 0 / None: not given
        if "memory_capacity" in given:  # "80GB", "24GiB" or bytes
            given["memory_capacity"] = str(given["memory_capacity"])
        settings = dataclasses.replace(settings, **given)
    return settings, run_config


def settled(options: dict) -> dict:
    """profile()'s keywords with those of before issue 49 settled now: a callback settles them where it is made,
    so that the warning points at the user's line, not at the trainer that starts it later."""
    old = {k: options[k] for k in ("schedule", "config", *MOVED_TO_SETTINGS) if k in options}
    if not old:
        return options
    rest = {k: v for k, v in options.items() if k not in old and k not in ("settings", "run_config")}
    settings, run_config = settle_deprecated(options.get("settings"), options.get("run_config"), old)
    return {**rest, "settings": settings, **({"run_config": run_config} if run_config is not None else {})}


def deprecated(old: str, new: str):
    """Warn of an old keyword at the line that passed it, profile()'s caller or start()'s, outside this module:
    Python shows a DeprecationWarning by default where it points into the user's script."""
    frame, level = sys._getframe(), 1
    while frame.f_back and Path(frame.f_code.co_filename).is_relative_to(PACKAGE):  # our callbacks' callers too
        frame, level = frame.f_back, level + 1
    warnings.warn(f"profile({old}) is deprecated and goes in the next release: pass {new}", DeprecationWarning,
                  stacklevel=level)


def plain_settings(config: dict) -> dict:
    """The settings of a config dict that a trace's JSON can hold (numbers, strings, booleans)."""
    values = {str(k): getattr(v, "value", v) for k, v in config.items()}  # a str enum (HF's optim) by its value
    return {k: v for k, v in values.items() if isinstance(v, (bool, int, float, str))}


def live_peak(device: torch.device, dtype: str, user_peak: float = 0.0, user_peak_run: float = 0.0) -> Peak | None:
    """The peak of the device this process trains on, in its thread count, with TF32 as torch has it set."""
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else ""
    tf32 = cuda and torch.backends.cuda.matmul.allow_tf32
    return resolve_peak(name, "cuda" if cuda else "cpu", dtype, tf32, user_peak, torch.get_num_threads(),
                        user_peak_run)


def live_bandwidth(device: torch.device) -> Bandwidth | None:
    """The memory bandwidth of the device this process trains on (a CPU's in its thread count)."""
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else ""
    return resolve_bandwidth(name, "cuda" if cuda else "cpu", torch.get_num_threads())


def final_report(out_dir: Path, run_log, last_step: int, say=print,
                 options: Options | None = None) -> Report | None:
    """All traces of the run analysed together: report.json / .md / .html, the step timeline and TensorBoard."""
    from profiler.capture.tensorboard import log_run_summary
    from profiler.pipeline import analyze_view
    from profiler.report.runfiles import write_run_report

    if not any(out_dir.glob("*.pt.trace.json*")):
        say(f"no profiler cycle was recorded in {out_dir}: no report (run more steps than the schedule skips)")
        return None
    try:
        report, timeline = analyze_view(out_dir, options or Options())
    except TraceError as e:
        say(f"the run's traces could not be analysed: {e}")
        return None
    except Exception as e:  # a bug of ours: the run's own files are kept, one line says what happened
        say(f"the run's traces could not be analysed (internal error {type(e).__name__}: {e}; please report it "
            "with the traces)")
        return None
    write_run_report(out_dir, report, timeline)
    if run_log:
        log_run_summary(run_log.writer, report, last_step)
    return report

