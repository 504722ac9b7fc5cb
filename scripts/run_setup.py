"""profile_run.py's set-up before training: the configuration read and checked, the dataset found, the process
group joined under torchrun, and the run folder made by rank 0 (one that holds files is refused, or cleared of the
earlier run's files with --overwrite=True)."""

import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from model import data
from model.configurator import ConfigError, apply
from model.train import TrainConfig
from profiler.capture.session import ProfileConfig
from profiler.mfu.cpupeak import cache_dir


class UsageError(Exception):
    """Bad configuration or input: reported as one line, exit status 2."""


RUN_FILES = ("*.pt.trace.json", "*.pt.trace.json.gz", "events.out.tfevents.*", "report.json", "report.md",
             "report.html", "summary.json", "config.json", "ckpt.pt")


def resolve_dataset(cfg: TrainConfig) -> Path:
    """The data folder, with cfg.vocab_size filled in from its meta file when not given."""
    if not cfg.dataset:
        folder = data.prepare_default_dataset(cache_dir() / "data")
    else:  # nanoGPT's data/<dataset> folder, or a path
        named = Path("data") / cfg.dataset
        folder = named if (named / "train.bin").is_file() or not Path(cfg.dataset).is_dir() else Path(cfg.dataset)
        if not (folder / "train.bin").is_file():
            raise UsageError(f"dataset {cfg.dataset!r}: no train.bin in {folder} (nor in {named}); prepare it as "
                             f"nanoGPT does (python data/{Path(cfg.dataset).name}/prepare.py in nanoGPT's folder, "
                             "then copy data/ here), pass a folder with train.bin and val.bin, or leave dataset "
                             "empty for the built-in corpus")
    if not cfg.vocab_size:
        cfg.vocab_size = data.read_vocab_size(folder) or 0
        if not cfg.vocab_size:
            raise UsageError(f"no meta.json or meta.pkl with vocab_size in {folder}: pass --vocab_size=N")
    return folder


def new_run_dir(out: str, overwrite: bool) -> Path:
    """A fresh run folder. One that holds files is refused, unless overwrite: then the files of the
    earlier run (traces, reports, events, checkpoint) are removed and nothing else is touched."""
    run_dir = Path(out or time.strftime("runs/run-%Y%m%d-%H%M%S"))
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise UsageError(f"run folder {run_dir} already holds files; choose another --out or pass --overwrite=True")
        for path in {p for pattern in RUN_FILES for p in run_dir.glob(pattern)}:
            path.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def setup(argv):
    cfg, pcfg = TrainConfig(), ProfileConfig()
    try:
        ignored = apply([cfg, pcfg], argv)
        if ignored:
            print(f"ignored: {', '.join(ignored)} (this project logs to TensorBoard in the run folder, not wandb)")
        cfg.validate()
        pcfg = replace(pcfg)  # made again: its __post_init__ checks the values apply() set
    except (ConfigError, ValueError) as e:
        raise UsageError(str(e)) from None
    folder = resolve_dataset(cfg)
    if cfg.device == "auto":
        cfg.device = "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("device cuda asked for, but torch sees no CUDA device")
    return cfg, pcfg, folder


def init_distributed(cfg: TrainConfig) -> tuple[int, int]:
    """(rank, world size); under torchrun, joins the process group (nccl on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cfg.device.startswith("cuda"):
        cfg.device = f"cuda:{local}"
        torch.cuda.set_device(cfg.device)
    dist.init_process_group(backend=cfg.backend or ("nccl" if cfg.device.startswith("cuda") else "gloo"))
    return dist.get_rank(), world


def shared_run_dir(cfg: TrainConfig, rank: int, world: int) -> Path:
    """Rank 0 makes the run folder (refusing one that holds files) and tells the others its name."""
    run_dir, error = None, None
    if rank == 0:
        try:
            run_dir = new_run_dir(cfg.out_dir, cfg.overwrite)
        except UsageError as e:
            error = str(e)
    if world > 1:
        import torch.distributed as dist

        box = [run_dir, error]
        dist.broadcast_object_list(box, src=0)
        run_dir, error = box
    if error:
        raise UsageError(error)
    return run_dir
