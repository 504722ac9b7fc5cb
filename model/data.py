"""Training data in nanoGPT's format (`train.bin` / `val.bin`, uint16 token ids) served by a DataLoader.

The default corpus needs no download: the bytes of the Python standard library's own source files, which
every Python install has, tokenized one byte per token (vocab_size 256). A DataLoader, rather than nanoGPT's
`get_batch`, serves the batches so that data loading shows up in the profiler trace as its own spans.
"""

import json
import os
import sysconfig
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

DEFAULT_CORPUS_BYTES = 4_000_000
VAL_FRACTION = 0.1


def stdlib_corpus(max_bytes: int = DEFAULT_CORPUS_BYTES) -> bytes:
    """The first `max_bytes` of the standard library's .py files, in sorted path order (deterministic)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    chunks, total = [], 0
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts:
            continue
        chunk = path.read_bytes()
        chunks.append(chunk)
        total += len(chunk)
        if total >= max_bytes:
            break
    return b"".join(chunks)[:max_bytes]


def write_bins(data: bytes, out: Path) -> Path:
    """Byte-level tokenization into nanoGPT's train.bin / val.bin plus a JSON meta file, written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    ids = np.frombuffer(data, dtype=np.uint8).astype(np.uint16)
    n_val = int(len(ids) * VAL_FRACTION)
    for name, part in (("train.bin", ids[:-n_val]), ("val.bin", ids[-n_val:])):
        tmp = out / f".{name}.{os.getpid()}.tmp"  # ranks preparing at once each write their own
        part.tofile(tmp)
        os.replace(tmp, out / name)
    (out / "meta.json").write_text(json.dumps({"vocab_size": 256, "tokenizer": "bytes"}))
    return out


def prepare_default_dataset(cache: Path) -> Path:
    """The stdlib byte corpus, prepared once into `cache`/stdlib_bytes and reused."""
    out = cache / "stdlib_bytes"
    if not (out / "train.bin").exists() or not (out / "val.bin").exists():
        write_bins(stdlib_corpus(), out)
    return out


def read_vocab_size(dataset: Path) -> int | None:
    """Vocab size from meta.json, or from nanoGPT's meta.pkl parsed as data (never unpickled as code)."""
    if (dataset / "meta.json").exists():
        return int(json.loads((dataset / "meta.json").read_text())["vocab_size"])
    if (dataset / "meta.pkl").exists():
        return _vocab_size_from_pickle((dataset / "meta.pkl").read_bytes())
    return None


def _vocab_size_from_pickle(raw: bytes) -> int | None:
    """Find the int stored under the key 'vocab_size' by walking the pickle's opcodes, executing nothing."""
    import pickletools

    previous = None
    for op, arg, _ in pickletools.genops(raw):
        if previous == "vocab_size" and op.name in ("BININT", "BININT1", "BININT2", "LONG1", "INT") and arg is not None:
            return int(arg)
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            previous = arg
        elif op.name not in ("MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT"):
            previous = None
    return None


class BlockDataset(Dataset):
    """Random windows of `block_size + 1` tokens from a uint16 .bin file, nanoGPT's get_batch as a Dataset.

    Item i always gives the same window (its offset comes from a generator seeded with seed + i), so a run is
    reproducible whatever the number of workers. `delay_s` sleeps per sample, to inject slow data loading.
    """

    def __init__(self, path: Path, block_size: int, length: int, seed: int = 1337, delay_s: float = 0.0):
        self.path, self.block_size, self.length, self.seed, self.delay_s = path, block_size, length, seed, delay_s
        n_tokens = path.stat().st_size // 2
        if n_tokens <= block_size + 1:
            raise ValueError(f"{path} holds {n_tokens} tokens, fewer than block_size + 1 = {block_size + 1}")
        self.n_tokens = n_tokens

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        if self.delay_s:
            time.sleep(self.delay_s)
        data = np.memmap(self.path, dtype=np.uint16, mode="r")  # re-opened per item, as nanoGPT, to avoid a leak
        start = int(np.random.default_rng(self.seed + i).integers(self.n_tokens - self.block_size - 1))
        window = torch.from_numpy(data[start : start + self.block_size + 1].astype(np.int64))
        return window[:-1], window[1:]


class DevicePrefetcher:
    """Batches moved to the device one step ahead: taking a batch starts the (pinned, non_blocking) copy of the
    next, which overlaps the device's work on this one, as nanoGPT fetches the next batch during the step."""

    def __init__(self, batches, device: str, non_blocking: bool):
        self.batches, self.device, self.non_blocking = batches, device, non_blocking
        self.ahead = self._load()

    def _load(self):
        try:
            return tuple(t.to(self.device, non_blocking=self.non_blocking) for t in next(self.batches))
        except StopIteration:
            return None

    def __iter__(self):
        return self

    def __next__(self):
        if self.ahead is None:
            raise StopIteration
        current, self.ahead = self.ahead, self._load()
        return current


def make_loader(path: Path, block_size: int, batch_size: int, n_batches: int, num_workers: int = 0,
                pin_memory: bool = False, seed: int = 1337, delay_s: float = 0.0) -> DataLoader:
    dataset = BlockDataset(path, block_size, n_batches * batch_size, seed=seed, delay_s=delay_s)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      pin_memory=pin_memory, drop_last=True, persistent_workers=num_workers > 0)

