"""A CPU's peak, measured here: GEMM rates per dtype in seconds, robust to load, shared by concurrent processes.

Machines of one kind differ: one with AVX-512-BF16 or AMX runs bfloat16 GEMMs twice as fast as float32, one with
AVX2 only emulates bfloat16 about 100x slower. So nothing is assumed. The GEMM's size comes from a quick first
trial, so that one product takes about TRIAL_S whatever the speed; the best of several trials stands, so another
job on the machine lowers it little; a lock makes processes that start together (torchrun's ranks) wait for one
measurement and share it; and a run whose own matmuls beat the cached figure replaces it (`raise_cached`).
"""

import functools
import json
import os
import platform
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard

from profiler.files import write_atomic
from profiler.settings import ISA_SLACK, KILO, MEGA

DTYPES = ("float32", "bfloat16")
TRIAL_S = 0.15  # one measured GEMM takes about this long: long enough to time, short enough to repeat
TRIALS = 5  # the best of these stands: load slows some trials, rarely all
BUDGET_S = 2.0  # at most this long per dtype after the sizing trial (fewer trials on a very slow one)
MIN_N, MAX_N, FIRST_N = 64, 2048, 128  # GEMM sizes: multiples of 64, the first trial's small enough for any CPU
# FLOP per cycle per core at the widest vector units, with two FMA units per core (the usual server part: an
# upper reference, never the peak itself): 2 FLOP per FMA lane
FP32_FLOP_PER_CYCLE = {"avx512f": 2 * 16 * 2, "avx2": 2 * 8 * 2, "asimd": 2 * 4 * 2}
# bfloat16 dot products: AMX's tile unit does 16x32 by 32x16 in 16 cycles (1024 FLOP/cycle); AVX-512-BF16's
# vdpbf16ps 32 pairs per instruction on two units
BF16_FLOP_PER_CYCLE = {"amx_bf16": 1024, "avx512_bf16": 2 * 32 * 2, "bf16": 2 * 8 * 2}


def cache_dir() -> Path:
    """Where per-machine measurements and prepared data live: $MFU_CACHE_DIR, else ~/.cache/mfu-analyzer."""
    if os.environ.get("MFU_CACHE_DIR"):
        return Path(os.environ["MFU_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mfu-analyzer"


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cpu_name() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine() or "cpu"


def this_machine() -> str:
    """This machine's name and processor, as a run's metadata records where it was recorded."""
    return f"{platform.node()}|{cpu_name()}"


def cpu_flags() -> set[str]:
    info = _cpuinfo()
    return set((info.get("flags") or info.get("Features") or "").split())


def emulated_dtypes(flags: set[str]) -> list[str]:
    """The dtypes this CPU has no native matmul instructions for (bfloat16 without AVX-512-BF16, AMX or Arm's
    BF16): their GEMMs are converted to float32 in software. Nothing is said where the flags are unknown."""
    if not flags:
        return []
    return [] if flags & set(BF16_FLOP_PER_CYCLE) else ["bfloat16"]


def isa_rates(flags: set[str], threads: int, mhz: float | None) -> dict[str, float]:
    """An upper reference per dtype from the instruction set: cores x clock x FLOP per cycle (two FMA units
    assumed). Empty where the clock or the flags are unknown."""
    if not (flags and mhz):
        return {}
    out = {}
    for table, dtype in ((FP32_FLOP_PER_CYCLE, "float32"), (BF16_FLOP_PER_CYCLE, "bfloat16")):
        widest = next((per for flag, per in table.items() if flag in flags), None)
        if widest:
            out[dtype] = threads * mhz * MEGA * widest
    return out


def clock_mhz() -> float | None:
    """The highest clock the cores run at: the kernel's cpufreq maximum (turbo included) where it says, else the
    clock /proc/cpuinfo reports (a VM's nominal one)."""
    reported = _cpuinfo().get("cpu MHz")
    try:
        highest = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / KILO  # kHz
    except (OSError, ValueError):
        highest = None
    return max(filter(None, (float(reported) if reported else None, highest)), default=None)


def ceilings(entry: dict) -> dict[str, float]:
    """The most a rate of this entry may be: its instruction-set reference times ISA_SLACK, per dtype."""
    return {d: r * ISA_SLACK for d, r in (entry.get("isa") or {}).items()}


def gemm_seconds(dtype: str, n: int, threads: int, repeats: int) -> list[float]:
    """Seconds of each of `repeats` n x n x n GEMMs after one warm-up, in `threads` threads."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        private = torch.Generator().manual_seed(0)  # never the global RNG: the user's training draws from it
        a = torch.randn(n, n, generator=private).to(getattr(torch, dtype))
        b = torch.randn(n, n, generator=private).to(getattr(torch, dtype))
        a @ b
        out = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            out.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return out


def measure_gemm_flops(dtype: str, threads: int, timer=gemm_seconds) -> tuple[float, int]:
    """The best FLOP/s of several GEMMs sized so that one takes about TRIAL_S, and that size. Sizing starts at
    FIRST_N and grows at most three times (small GEMMs run below the large-GEMM rate, so one step can fall
    short); the trials stop at BUDGET_S, so a dtype the CPU emulates costs seconds, not minutes."""
    n, seconds = FIRST_N, min(timer(dtype, FIRST_N, threads, 1))
    for _ in range(3):
        rate = 2 * n**3 / max(seconds, 1e-9)
        target = int(min(MAX_N, max(MIN_N, round((rate * TRIAL_S / 2) ** (1 / 3) / 64) * 64)))
        if target <= n:
            break
        n, seconds = target, min(timer(dtype, target, threads, 1))
    repeats = int(max(1, min(TRIALS, BUDGET_S // max(seconds, 1e-9) - 1)))  # the warm-up counts too
    best = min(timer(dtype, n, threads, repeats) + [seconds])
    return 2 * n**3 / max(best, 1e-9), n


@contextmanager
def locked(path: Path):
    """An exclusive lock beside `path` (flock: released when the process ends, even by a crash), so that
    processes measuring the same machine wait for the first one's result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no flock (Windows): measuring twice is the worst that happens
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def machine_key(threads: int) -> str:
    import torch

    return f"{cpu_name()}|{os.cpu_count()} cpus|{threads} threads|torch {torch.__version__}"


def read_cache(path: Path) -> dict:
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def current_entry(entry) -> TypeGuard[dict]:
    """An entry of this format, with its history (earlier ones held bare rates from an unbounded measurement,
    or rates a run raised past the instruction set: they are measured again)."""
    return isinstance(entry, dict) and isinstance(entry.get("rates"), dict) and isinstance(
        entry.get("history"), list) and all(
        isinstance(entry["rates"].get(d), (int, float)) and entry["rates"][d] > 0 for d in DTYPES)


def cached(path: Path, key: str, valid, measure) -> dict:
    """The entry under `key` of a per-machine cache file, or measure() measured now under the file's lock and
    stored; a process that waited on the lock takes what the one before it measured."""
    entry = read_cache(path).get(key)
    if valid(entry) and isinstance(entry, dict):
        return entry
    with locked(path):
        known = read_cache(path)  # another process may have measured while this one waited
        if valid(known.get(key)):
            return known[key]
        known[key] = measure()
        write_atomic(path, json.dumps(known, indent=1))
        return known[key]


def cpu_measurement(threads: int, cache: Path | None = None, timer=gemm_seconds) -> dict:
    """This machine's measurement for `threads` threads: {"rates": {dtype: FLOP/s}, "how": ..., "emulated": [...],
    "isa": {dtype: FLOP/s}}, from the cache, or measured now under the lock and cached."""

    def measure() -> dict:
        started = time.perf_counter()
        measured = {dtype: measure_gemm_flops(dtype, threads, timer) for dtype in DTYPES}
        flags = cpu_flags()
        sizes = ", ".join(f"{d} {n}-cube" for d, (_, n) in measured.items())
        entry: dict[str, Any] = {
            "rates": {d: rate for d, (rate, _) in measured.items()},
            "how": f"best of up to {TRIALS} GEMMs ({sizes}) in {threads} thread(s), {utc_now()}, "
                   f"{time.perf_counter() - started:.1f} s",
            "emulated": emulated_dtypes(flags),
            "isa": isa_rates(flags, threads, clock_mhz()),
        }
        entry["history"] = [{"at": utc_now(), "dtype": d, "rate": r, "what": "measured"}
                            for d, r in entry["rates"].items()]
        for dtype, cap in ceilings(entry).items():  # a timer that lies cannot put a rate past the silicon
            if entry["rates"].get(dtype, 0) > cap:
                entry["rates"][dtype] = cap
                entry["history"].append({"at": utc_now(), "dtype": dtype, "rate": cap,
                                         "what": "held to the instruction-set reference"})
        return entry

    entry = cached((cache or cache_dir()) / "cpu_peak.json", machine_key(threads), current_entry, measure)
    caps = ceilings(entry)  # an entry written before the reference held its rates is held to it when read
    return {**entry, "rates": {d: min(r, caps.get(d, r)) for d, r in entry["rates"].items()}}


def cache_entries(cache: Path | None = None) -> tuple[Path, dict]:
    """The peak cache's file and its entries (by machine, processor count, threads and torch version), those of
    an earlier format too (current_entry tells them apart)."""
    path = (cache or cache_dir()) / "cpu_peak.json"
    return path, {k: v for k, v in read_cache(path).items() if isinstance(v, dict)}


def reset_cache(cache: Path | None = None) -> bool:
    """Remove the peak cache, under its lock: the next run measures again. True when there was one."""
    path = (cache or cache_dir()) / "cpu_peak.json"
    with locked(path):
        if not path.exists():
            return False
        path.unlink()
        return True


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def raise_cached(threads: int, dtype: str, rate: float, cache: Path | None = None) -> bool:
    """Replace the cached rate of `dtype` with a rate that this machine's own run achieved, when it is higher:
    the measurement was taken while something else ran. Never past the instruction-set reference (times
    ISA_SLACK): a rate beyond it was formed with wrong FLOPs, and teaches nothing. True when the cache changed."""
    path = (cache or cache_dir()) / "cpu_peak.json"
    key = machine_key(threads)
    with locked(path):
        known = read_cache(path)
        entry = known.get(key)
        if not current_entry(entry) or dtype not in entry["rates"] or rate <= entry["rates"][dtype]:
            return False
        if rate > ceilings(entry).get(dtype, float("inf")):
            return False
        entry["rates"][dtype] = rate
        entry["how"] += f"; {dtype} raised to a run's own matmul rate, {utc_now()}"
        entry.setdefault("history", []).append({"at": utc_now(), "dtype": dtype, "rate": rate,
                                                "what": "raised to a run's own matmul rate"})
        write_atomic(path, json.dumps(known, indent=1))
        return True
