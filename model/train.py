"""The training configuration and one training step, as in nanoGPT's train.py, with switches that let a run
inject or remove a bottleneck: the attention kernel, the AdamW implementation, the dtype, torch.compile and
the DataLoader's workers."""

import dataclasses
import math
import os
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch

from model import data
from model.configurator import literal_choices
from model.gpt import GPT, Attention, GPTConfig

# the switches' choices: configurator.py reads them from these annotations (an unknown value is a ConfigError)
OptimizerImpl = Literal["fused", "foreach", "loop"]  # torch.optim.AdamW(fused=True), (foreach=True), or neither
Dtype = Literal["float32", "bfloat16"]  # bfloat16: torch.autocast around forward and backward
DTYPES: tuple[Dtype, ...] = get_args(Dtype)


@dataclass
class TrainConfig:
    out_dir: str = ""  # run folder; empty means runs/<date-time> (--out= is accepted too)
    dataset: str = ""  # data/<dataset> as nanoGPT prepares it, or a folder (train.bin, val.bin); empty: built-in
    eval_interval: int = 0  # evaluate train and val loss every this many iterations (0: never)
    eval_iters: int = 200  # batches per evaluation
    eval_only: bool = False  # evaluate once and stop
    always_save_checkpoint: bool = True  # with evaluation: write ckpt.pt at each one, not only when val improves
    init_from: str = "scratch"  # nanoGPT's 'resume' and 'gpt2*' are not implemented (see validate)
    vocab_size: int = 0  # 0: from the dataset's meta file
    # model
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 128
    dropout: float = 0.0
    bias: bool = False
    attention: Attention = "sdpa"
    # training
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_iters: int = 250
    learning_rate: float = 1e-3
    weight_decay: float = 1e-1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    decay_lr: bool = True
    warmup_iters: int = 10
    lr_decay_iters: int = 0  # 0: max_iters
    min_lr: float = 1e-4
    optimizer_impl: OptimizerImpl = "fused"
    # system
    backend: str = ""  # DDP backend; empty: nccl on GPU, gloo on CPU
    device: str = "auto"  # auto: cuda when available, else cpu
    dtype: Dtype = "float32"
    compile: bool = False
    num_workers: int = 0
    pin_memory: bool = False
    data_delay: float = 0.0  # seconds of sleep per sample: injects slow data loading
    data_delay_rank: int = -1  # the rank whose data loading sleeps (-1: every rank)
    seed: int = 1337
    log_interval: int = 1
    checkpoint: bool = True  # write ckpt.pt (nanoGPT's layout) into the run folder at the end
    overwrite: bool = False  # reuse a run folder that holds an earlier run, removing that run's files

    def validate(self):
        """Raise ValueError on a value the run cannot use."""
        for key, choices in literal_choices(self).items():
            if getattr(self, key) not in choices:
                raise ValueError(f"{key} must be one of {', '.join(choices)}, not {getattr(self, key)!r}")
        for key in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "gradient_accumulation_steps",
                    "max_iters"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1, not {getattr(self, key)}")
        if self.num_workers < 0 or self.data_delay < 0 or self.eval_interval < 0 or self.eval_iters < 1:
            raise ValueError("num_workers, data_delay and eval_interval must not be negative, eval_iters at least 1")
        if self.init_from != "scratch":
            raise ValueError(f"init_from={self.init_from!r} is not implemented: this project trains from scratch "
                             "('gpt2*' needs GPT-2 weights from the Hugging Face hub, 'resume' a finished run's "
                             "folder, and a new run's folder starts empty)")
        self.gpt_config()  # checks attention and the head split

    def gpt_config(self) -> GPTConfig:
        return GPTConfig(block_size=self.block_size, vocab_size=self.vocab_size or 256, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout, bias=self.bias,
                         attention=self.attention)

    @property
    def tokens_per_iter(self) -> int:
        return self.batch_size * self.block_size * self.gradient_accumulation_steps


def make_optimizer(model: GPT, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW as nanoGPT configures it (decay on 2-D weights only), in the chosen implementation."""
    return make_optimizer_over([p for p in model.parameters() if p.requires_grad], cfg, cfg.optimizer_impl)


def make_optimizer_over(params: list, cfg: TrainConfig, implementation: str) -> torch.optim.AdamW:
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    impl = {"fused": dict(fused=True), "foreach": dict(foreach=True), "loop": dict(foreach=False, fused=False)}
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2), **impl[implementation])


def learning_rate(it: int, cfg: TrainConfig) -> float:
    """nanoGPT's schedule: linear warm-up, then cosine decay to min_lr."""
    if not cfg.decay_lr:
        return cfg.learning_rate
    decay_iters = cfg.lr_decay_iters or cfg.max_iters
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    if it > decay_iters:
        return cfg.min_lr
    ratio = (it - cfg.warmup_iters) / max(1, decay_iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.learning_rate - cfg.min_lr)


def device_type_of(device: str) -> str:
    """torch's device type of a device string: 'cuda' for 'cuda' and 'cuda:1', else 'cpu'."""
    return "cuda" if device.startswith("cuda") else "cpu"


def autocast(device_type: str, dtype: str):
    """Mixed precision as nanoGPT, except that bfloat16 autocast is used on the CPU too."""
    if dtype == "float32":
        return nullcontext()
    return torch.amp.autocast(device_type=device_type, dtype=getattr(torch, dtype))


def train_step(model, optimizer, batches, cfg: TrainConfig, device: str, lr: float) -> torch.Tensor:
    """One optimizer step over gradient_accumulation_steps micro-batches; returns the summed loss as a tensor on
    the device, so that the host need not wait for the step to finish (float() it when it is to be shown)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    total = torch.zeros((), device=device)
    device_type = device_type_of(device)
    for micro in range(cfg.gradient_accumulation_steps):
        if hasattr(model, "require_backward_grad_sync"):  # DDP: all-reduce on the last micro-step only
            model.require_backward_grad_sync = micro == cfg.gradient_accumulation_steps - 1
        x, y = next(batches)
        x, y = x.to(device, non_blocking=cfg.pin_memory), y.to(device, non_blocking=cfg.pin_memory)
        with autocast(device_type, cfg.dtype):
            _, loss = model(x, y)
            loss = loss / cfg.gradient_accumulation_steps
        loss.backward()
        total += loss.detach()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total


class IterationClock:
    """Each iteration's seconds without a synchronization per iteration, so that the host can queue the next
    step while the device works: on CUDA an event is recorded after each step and the events are read when the
    times are wanted (at the log interval, where nanoGPT syncs too); elsewhere the wall clock. The seconds an
    iteration spent on analysis or evaluation are left out of it."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.pending: list[tuple] = []  # (the iteration's end mark, seconds left out of it)
        self.last = self._mark()

    def _mark(self):
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def lap(self, excluded_s: float = 0.0):
        self.pending.append((self._mark(), excluded_s))

    def read(self) -> list[float]:
        """Seconds of the iterations lapped since the last read (waits for the device on CUDA)."""
        if self.cuda and self.pending:
            self.pending[-1][0].synchronize()
        out = []
        for mark, excluded in self.pending:
            seconds = self.last.elapsed_time(mark) / 1000 if self.cuda else mark - self.last
            out.append(max(seconds - excluded, 1e-9))
            self.last = mark
        self.pending = []
        return out


@torch.no_grad()
def estimate_loss(model, folder: Path, cfg: TrainConfig, device: str, seed: int) -> dict[str, float]:
    """Mean loss over eval_iters batches of train.bin and of val.bin, as nanoGPT's estimate_loss."""
    model.eval()
    device_type = device_type_of(device)
    out = {}
    for split in ("train", "val"):
        losses = []
        for x, y in data.make_loader(folder / f"{split}.bin", cfg.block_size, cfg.batch_size, cfg.eval_iters,
                                     seed=seed):
            with autocast(device_type, cfg.dtype):
                losses.append(float(model(x.to(device), y.to(device))[1]))
        out[split] = sum(losses) / len(losses)
    model.train()
    return out


class Evaluation:
    """nanoGPT's evaluation every eval_interval iterations (train and val loss over eval_iters batches, and a
    checkpoint when val improves or always_save_checkpoint), held back while the profiler records so that it
    stays out of the analysed steps. `seconds` is its time, which the loop leaves out of its iteration times."""

    def __init__(self, model, optimizer, folder, cfg, run_dir, rank, log, run_log):
        self.model, self.optimizer, self.folder, self.cfg, self.run_dir = model, optimizer, folder, cfg, run_dir
        self.rank, self.log, self.run_log = rank, log, run_log
        self.due, self.best, self.seconds = False, math.inf, 0.0

    def maybe(self, it: int, profiler_idle: bool):
        cfg = self.cfg
        self.due = self.due or bool(cfg.eval_interval and it % cfg.eval_interval == 0)
        if not (self.due and profiler_idle):
            return
        start = time.perf_counter()
        losses = estimate_loss(self.model, self.folder, cfg, cfg.device, cfg.seed + 7919 * (it + 1))
        self.log(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
        if self.run_log:
            self.run_log.writer.add_scalar("val/loss", losses["val"], it)
            self.run_log.writer.add_scalar("train/eval_loss", losses["train"], it)
        if self.rank == 0 and it > 0 and cfg.checkpoint and (losses["val"] < self.best or cfg.always_save_checkpoint):
            save_checkpoint(self.run_dir / "ckpt.pt", self.model, self.optimizer, cfg, it)
        self.best, self.due = min(self.best, losses["val"]), False
        self.seconds += time.perf_counter() - start


def unwrap(model) -> GPT:
    """The GPT inside DistributedDataParallel and torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def save_checkpoint(path, model, optimizer, cfg: TrainConfig, iter_num: int):
    """nanoGPT's checkpoint layout, of plain types only (so that weights_only loading works), written to a
    temporary file and renamed: a crash never leaves a half-written checkpoint in place of a good one."""
    gpt = unwrap(model)
    checkpoint = {"model": gpt.state_dict(), "optimizer": optimizer.state_dict(),
                  "model_args": dataclasses.asdict(gpt.config), "iter_num": iter_num,
                  "config": dataclasses.asdict(cfg)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)


def load_checkpoint(path) -> tuple[GPT, dict]:
    """The model of a checkpoint (ours or nanoGPT's), loaded with weights_only=True: no code is unpickled."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    args = {k: v for k, v in checkpoint["model_args"].items() if k in {f.name for f in dataclasses.fields(GPTConfig)}}
    model = GPT(GPTConfig(**args))
    state = {k.removeprefix("_orig_mod."): v for k, v in checkpoint["model"].items()}
    model.load_state_dict(state)
    return model, checkpoint


class Stopped(Exception):
    """The run ended early (Ctrl-C, SIGTERM, a non-finite loss): what was recorded is still reported."""

    def __init__(self, message: str, status: int, model_ok: bool = True):
        super().__init__(message)
        self.status, self.model_ok = status, model_ok


class StopRequest:
    """SIGTERM or Ctrl-C asks the run to stop at the end of the iteration under way, never inside the profiler's
    own code (torch.profiler stopped in the middle of a cycle's transition can crash); a second Ctrl-C stops at
    once."""

    def __init__(self):
        self.signum = None

    def __call__(self, signum, frame):
        if self.signum == signal.SIGINT == signum:
            raise KeyboardInterrupt
        self.signum = signum

    def check(self, iterations: int):
        if self.signum == signal.SIGTERM:
            raise Stopped("stopped by SIGTERM", 128 + signal.SIGTERM)
        if self.signum == signal.SIGINT:
            raise Stopped(f"interrupted at iter {iterations}", 130)
