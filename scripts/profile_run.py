"""Train a GPT under torch.profiler and write a trace that TensorBoard shows and the analyzer reads.

    python scripts/profile_run.py [config_file] [--key=value ...]

Keys and their defaults (model/train.py's TrainConfig and profiler/capture/session.py's ProfileConfig explain them):
"""

import json
import math
import os
import signal
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

# with profile_memory, c10 logs "Memory block of unknown size was allocated before the profiling started" once a
# run (a tensor made before a cycle freed inside it, which its memory events cannot include): torch's C++ log
# lines stay off the terminal, as Kineto's do, unless the user set TORCH_CPP_LOG_LEVEL (INFO shows them all)
os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")

import msgspec
import torch
from run_setup import UsageError, init_distributed, setup, shared_run_dir
from tqdm import tqdm

import profiler
from model import data
from model.configurator import describe
from model.gpt import GPT
from model.measure import memory_by_batch, step_ms_by_batch, step_ms_by_dtype, step_ms_by_fix
from model.train import (
    Evaluation,
    IterationClock,
    Stopped,
    StopRequest,
    TrainConfig,
    estimate_loss,
    learning_rate,
    make_optimizer,
    save_checkpoint,
    train_step,
)
from profiler.capture.api import final_report, live_peak
from profiler.capture.modeltree import unwrap
from profiler.capture.session import ProfileConfig
from profiler.capture.tensorboard import RunLog
from profiler.files import write_atomic
from profiler.mfu.cpupeak import this_machine
from profiler.mfu.modelflops import nanogpt
from profiler.mfu.peak import Peak
from profiler.mfu.shapetime import isolated_rng
from profiler.report.model import Report
from profiler.report.terminal import for_terminal
from profiler.settings import BATCH_FACTOR, Options
from profiler.trace.metadata import ModelShape, RunMetadata

STOP = StopRequest()


def run_metadata(cfg: TrainConfig, n_params: int, flops_per_iter: int, peak, rank: int, world: int) -> RunMetadata:
    """What the analyzer needs from this run, written into every trace."""
    return RunMetadata(
        model=ModelShape(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, block_size=cfg.block_size,
                         vocab_size=cfg.vocab_size, bias=cfg.bias, attention=cfg.attention),
        n_params=n_params, tokens_per_step=cfg.tokens_per_iter, flops_per_step=flops_per_iter,
        batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        dtype=cfg.dtype, compile=cfg.compile, optimizer_impl=cfg.optimizer_impl,
        num_workers=cfg.num_workers, pin_memory=cfg.pin_memory, data_delay=cfg.data_delay or None,
        device=cfg.device,
        threads=torch.get_num_threads(), peak=peak.as_dict() if peak else None,
        torch_version=str(torch.__version__), rank=rank, world_size=world, machine=this_machine(),
        vocabulary="profile_run",  # a fix's change is in this script's keys (profiler/mfu/vocabulary.py)
    )


@dataclass(frozen=True, kw_only=True)
class Run:
    """What main() set up and the loop trains with: the model and its optimizer, the settings, where the run
    writes, and what its iterations are measured against."""

    cfg: TrainConfig
    pcfg: ProfileConfig
    run_dir: Path
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    metadata: RunMetadata  # written into every trace
    peak: Peak | None
    flops_per_iter: int
    log: Callable[..., None]  # print on rank 0, silent on the others
    worker: str  # the traces' worker name: "rank3", or "" for one process
    run_log: RunLog | None  # TensorBoard scalars and the cycles' reports (rank 0)


def main(argv):
    """Set up, train under the profiler, then the checkpoint and the report on rank 0: a run that a signal or a
    diverged loss stopped still reports what it recorded, and then exits with its status."""
    cfg, pcfg, folder = setup(argv)
    rank, world = init_distributed(cfg)
    log = print if rank == 0 else (lambda *a, **k: None)
    torch.manual_seed(cfg.seed)
    model = GPT(cfg.gpt_config()).to(cfg.device)
    n_params = model.get_num_params()
    optimizer = make_optimizer(model, cfg)
    run_dir = shared_run_dir(cfg, rank, world)
    delay = cfg.data_delay if cfg.data_delay_rank in (-1, rank) else 0.0
    loader = data.make_loader(folder / "train.bin", cfg.block_size, cfg.batch_size,
                              cfg.max_iters * cfg.gradient_accumulation_steps, cfg.num_workers, cfg.pin_memory,
                              cfg.seed + 1_000_003 * rank, delay)
    model = compiled_and_distributed(model, cfg, pcfg, world)
    peak, flops_per_iter = announce(cfg, pcfg, run_dir, n_params, rank, world, log)
    metadata = run_metadata(cfg, n_params, flops_per_iter, peak, rank, world)
    metadata = with_measurements(metadata, model, folder, cfg, pcfg)
    run_log = RunLog(run_dir, Options(), log) if pcfg.tensorboard and rank == 0 else None
    run = Run(cfg=cfg, pcfg=pcfg, run_dir=run_dir, model=model, optimizer=optimizer, metadata=metadata, peak=peak,
              flops_per_iter=flops_per_iter, log=log, worker=f"rank{rank}" if world > 1 else "", run_log=run_log)
    times, stopped, stall_s = [], None, 0.0
    signal.signal(signal.SIGTERM, STOP)
    signal.signal(signal.SIGINT, STOP)
    try:
        if cfg.eval_only:
            losses = estimate_loss(model, folder, cfg, cfg.device, cfg.seed)
            log(f"step 0: train loss {losses['train']:.4f}, val loss {losses['val']:.4f} (eval_only: no training)")
            return run_dir
        evaluation = Evaluation(model, optimizer, folder, cfg, run_dir, rank, log, run_log)
        batches = data.DevicePrefetcher(iter(loader), cfg.device, cfg.pin_memory)
        stall_s = train(run, batches, evaluation, times)
    except KeyboardInterrupt:  # a second Ctrl-C
        stopped = Stopped(f"interrupted at iter {len(times)}", 130)
    except Stopped as e:
        stopped = e
    wind_up(run, rank, world, times, stopped)
    if rank == 0:
        finish(run_dir, cfg, times, flops_per_iter, peak, run_log, stall_s)
    if stopped:
        raise stopped
    return run_dir


def compiled_and_distributed(model: torch.nn.Module, cfg: TrainConfig, pcfg: ProfileConfig,
                             world: int) -> torch.nn.Module:
    """The model as it trains: compiled and wrapped in DDP where the config and the ranks ask for it, after
    the optimizer took the plain model's parameters."""
    if cfg.compile:
        if pcfg.profile and not cfg.device.startswith("cuda"):
            from torch._inductor import config as inductor_config

            inductor_config.cpp.enable_kernel_profile = True  # inductor's C++ kernels as ops in the trace
        model = torch.compile(model)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[cfg.device] if cfg.device.startswith("cuda") else None)
    return model


def announce(cfg: TrainConfig, pcfg: ProfileConfig, run_dir: Path, n_params: int, rank: int, world: int,
             log) -> tuple[Peak | None, int]:
    """The peak and the FLOPs per iteration the run's MFU is measured against, said before training and kept in
    config.json with the settings: a run can be checked against what it was told."""
    kind = "cuda" if cfg.device.startswith("cuda") else "cpu"
    peak = live_peak(torch.device(cfg.device), cfg.dtype, pcfg.peak_flops, pcfg.peak_flops_run)
    flops_per_iter = int(nanogpt(cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, n_params)
                         .flops_per_step(cfg.tokens_per_iter))
    if rank == 0:
        (run_dir / "config.json").write_text(json.dumps({"train": asdict(cfg), "profile": asdict(pcfg)}, indent=1))
    log(f"run folder {run_dir}; model {n_params / 1e6:.2f}M parameters (non-embedding), "
        f"{cfg.tokens_per_iter:,} tokens/iter" + (f" per rank, {world} ranks" if world > 1 else "")
        + f", {flops_per_iter / 1e9:.2f} GFLOP/iter")
    if peak:
        log(f"peak ({peak.source}, {peak.device or kind}): {peak.peak_flops / 1e12:.3f} TFLOP/s, "
            f"{peak.peak_flops_run / 1e12:.3f} TFLOP/s in {peak.dtype}")
    else:
        log(f"no peak known for {torch.cuda.get_device_name(cfg.device)!r}: MFU is not shown (pass --peak_flops=...)")
    return peak, flops_per_iter


def with_measurements(metadata: RunMetadata, model: torch.nn.Module, folder: Path, cfg: TrainConfig,
                      pcfg: ProfileConfig) -> RunMetadata:
    """The metadata with what a change of precision, of batch or of kernels does at this run's shapes, timed here
    before training: the report's fixes predict from these measurements."""
    if not pcfg.profile or cfg.compile or cfg.eval_only:  # a compiled model would recompile
        return metadata
    kind = "cuda" if cfg.device.startswith("cuda") else "cpu"
    measure_loader = data.make_loader(folder / "train.bin", cfg.block_size, cfg.batch_size, 1, seed=cfg.seed + 99)
    # the module inside DDP: each rank measures alone, and ranks may stop repeating a slow dtype at
    # different times, which DDP's all-reduce in backward would wait on forever
    with isolated_rng(kind):  # dropout and the loader's seed draw from it: training stays as unmeasured
        return msgspec.structs.replace(
            metadata, step_ms_by_dtype=step_ms_by_dtype(unwrap(model), iter(measure_loader), cfg, cfg.device),
            # and what a BATCH_FACTOR times larger batch (small_batch's fix) adds to it
            step_ms_by_batch=step_ms_by_batch(unwrap(model), iter(measure_loader), cfg, cfg.device, BATCH_FACTOR),
            # and what non_fused's fix (SDPA, a fused AdamW) changes at these shapes
            step_ms_by_fix=step_ms_by_fix(unwrap(model), iter(measure_loader), cfg, cfg.device),
            # and what the model states take and a micro-step adds, at the batch and BATCH_FACTOR times it
            memory_parts=memory_by_batch(unwrap(model), iter(measure_loader), cfg, cfg.device, BATCH_FACTOR))


def wind_up(run: Run, rank: int, world: int, times: list[float], stopped: Stopped | None):
    """The ranks leave the process group (after a barrier where none stopped, so that every rank's traces are
    written before rank 0 reads them); rank 0 keeps the checkpoint of a model that is still sound and says why
    the run ended early."""
    if world > 1:
        import torch.distributed as dist

        if not stopped:
            dist.barrier()  # every rank's traces are written before rank 0 reads them
        dist.destroy_process_group()
    if rank == 0:
        if run.cfg.checkpoint and times and (not stopped or stopped.model_ok):
            save_checkpoint(run.run_dir / "ckpt.pt", run.model, run.optimizer, run.cfg, len(times))
        if stopped:
            print(f"{stopped}: reporting the {len(times)} iterations and the profiler cycles recorded so far")


def train(run: Run, batches, evaluation: Evaluation, times: list[float]) -> float:
    """The training loop under the profiler session, letting the host run ahead of the device: losses and
    iteration times are read at the log interval only. Appends the seconds of each iteration to `times`, leaving
    out the time the cycle-closing steps waited for the profiler (its stop, the export, the analysis) and the
    evaluation; returns that wait; raises Stopped on a non-finite loss."""
    cfg, model, run_log = run.cfg, run.model, run.run_log
    model.train()
    cuda = cfg.device.startswith("cuda")
    show = run.log is print and sys.stderr.isatty()
    # TensorBoard through this script's own RunLog, on rank 0 only: profile() opens none of its own
    settings = replace(run.pcfg, tensorboard=run_log is not None)
    with profiler.profile(run.run_dir, tokens_per_step=cfg.tokens_per_iter, settings=settings,
                          flops_per_step=run.flops_per_iter, dtype=cfg.dtype, report=False, metadata=run.metadata,
                          worker=run.worker, say=run.log, run_log=run_log) as session, \
            tqdm(total=cfg.max_iters, unit="it", leave=False, disable=not show) as bar:
        clock, pending = IterationClock(cuda), []  # (iter, loss on the device) not yet read
        for it in range(cfg.max_iters):
            aside = evaluation.seconds + session.stall_s
            evaluation.maybe(it, session.idle)
            pending.append((it, train_step(model, run.optimizer, batches, cfg, cfg.device, learning_rate(it, cfg))))
            session.step()
            clock.lap(evaluation.seconds + session.stall_s - aside)
            if it % cfg.log_interval == 0 or it == cfg.max_iters - 1:  # the only place the host waits for the device
                for (i, loss), dt in zip(pending, clock.read()):
                    loss = float(loss)
                    if not math.isfinite(loss):
                        raise Stopped(f"loss is {loss} at iter {i}: training diverged; lower learning_rate, raise "
                                      "warmup_iters or use grad_clip", 1, model_ok=False)
                    times.append(dt)
                    mfu = run.flops_per_iter / dt / run.peak.peak_flops if run.peak else None
                    if run_log:
                        run_log.iteration(i, loss, 1000 * dt, cfg.tokens_per_iter / dt, mfu)
                pending = []
                if it % cfg.log_interval == 0:
                    line = (f"iter {it}: loss {loss:.4f}, time {dt * 1000:.2f}ms"
                            + (f", mfu {100 * mfu:.2f}%" if mfu is not None else "")
                            + f", tok/s {cfg.tokens_per_iter / dt:,.0f}")
                    bar.write(line) if show else run.log(line)
            bar.update()
            STOP.check(len(times))
    return session.stall_s


def recorded_vs_rest(report: Report, times: list[float]) -> dict:
    """The analysed steps' mean time in the trace against the median iteration the profiler did not record
    (ProfilerStep#N is iteration N): are the steps the report describes typical of the run? The difference
    holds what recording costs, and the machine's noise."""
    recorded = set(report.source.steps)
    others = [t for i, t in enumerate(times[1:], start=1) if i not in recorded]
    if not others:
        return {}
    unrecorded_ms = 1000 * statistics.median(others)
    low, high = (1000 * q for q in (statistics.quantiles(others, n=10)[::8] if len(others) > 1 else others * 2))
    steps = report.step_time_ms
    recorded_ms = steps.mean
    print(f"recorded steps: {recorded_ms:.2f} ms in the trace ({steps.min:.2f}-{steps.max:.2f}), against "
          f"{unrecorded_ms:.2f} ms (median; 10-90%: {low:.2f}-{high:.2f}) for the {len(others)} iterations not "
          f"recorded ({100 * (recorded_ms / unrecorded_ms - 1):+.1f}%)")
    cost = report.profiler_cost
    corrected_ms = recorded_ms - (cost.ms_per_step if cost else 0.0)
    if cost and cost.ms_per_step:
        print(f"without the profiler's own cost ({cost.ms_per_step:.2f} ms/step: {cost.ops_per_step:,.0f} ops "
              f"x {cost.us_per_op:.2f} us): {corrected_ms:.2f} ms ({100 * (corrected_ms / unrecorded_ms - 1):+.1f}% "
              "against the iterations not recorded)")
    return {"recorded_step_ms": recorded_ms, "recorded_step_ms_without_profiler": corrected_ms,
            "unrecorded_step_ms": unrecorded_ms, "unrecorded_step_ms_p10": low, "unrecorded_step_ms_p90": high}


def finish(run_dir: Path, cfg: TrainConfig, times: list[float], flops_per_iter: int, peak, run_log, stall_s: float):
    """Summary of the run, then the analysis of all its traces: report.json / .md / .html, TensorBoard and
    the terminal report."""
    steady = times[1:] or times
    if not steady:
        print("no iteration finished: nothing to report")
        return
    tok_s = cfg.tokens_per_iter * len(steady) / sum(steady)
    summary = {"iters": len(times), "tokens_per_s": tok_s, "ms_per_iter": 1000 * sum(steady) / len(steady),
               "mfu": flops_per_iter * tok_s / cfg.tokens_per_iter / peak.peak_flops if peak else None,
               "profiler_stall_s": stall_s}  # the cycle-closing steps' waits: profiler stop, export, analysis
    print(f"done: {tok_s:,.0f} tokens/s over iters 1-{len(times) - 1}, {summary['ms_per_iter']:.2f} ms/iter"
          + (f", mfu {100 * summary['mfu']:.2f}%" if peak else ""))
    traces = sorted(run_dir.glob("*.pt.trace.json*"))
    report = final_report(run_dir, run_log, len(times) - 1) if traces else None
    if report:
        summary.update(recorded_vs_rest(report, times))
    write_atomic(run_dir / "summary.json", json.dumps(summary, indent=1))
    if report:
        print(f"\n{for_terminal(report, sys.stdout)}\n")
        print(f"{len(traces)} trace(s) and report.json / .md / .html in {run_dir}")
    if run_log:
        run_log.close()
    print(f"view in TensorBoard: tensorboard --logdir={run_dir.parent} (the MFU tab)")


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(f"{__doc__}\n{describe([TrainConfig(), ProfileConfig()])}")
        sys.exit(0)
    try:
        main(sys.argv[1:])
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Stopped as e:
        print(f"stopped: {e}", file=sys.stderr)
        sys.exit(e.status)
