"""Peak FLOP/s of the device: P (fastest precision training commonly uses) and P_run (the dtype that ran).

One implementation for the training script and the analyzer. GPUs come from a table of dense (no sparsity)
tensor-core figures from the vendors' data sheets; a CPU is measured with a large GEMM in the run's thread
count, warmed up and best of several runs (a cold first run reads about 20% low), and cached per machine.
"""

import json
import os
import platform
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from profiler.files import write_atomic

T = 1e12
# (pattern on the device name, {matmul dtype: dense peak FLOP/s}); more specific patterns first.
DEVICE_TABLE = [
    (r"H200", {"bfloat16": 989 * T, "float16": 989 * T, "tf32": 494 * T, "float32": 67 * T}),
    (r"H100.*(PCIe|PCI)", {"bfloat16": 756 * T, "float16": 756 * T, "tf32": 378 * T, "float32": 51 * T}),
    (r"H100", {"bfloat16": 989 * T, "float16": 989 * T, "tf32": 494 * T, "float32": 67 * T}),
    (r"GH200", {"bfloat16": 989 * T, "float16": 989 * T, "tf32": 494 * T, "float32": 67 * T}),
    (r"B200", {"bfloat16": 2250 * T, "float16": 2250 * T, "tf32": 1100 * T, "float32": 80 * T}),
    (r"A100", {"bfloat16": 312 * T, "float16": 312 * T, "tf32": 156 * T, "float32": 19.5 * T}),
    (r"A10G", {"bfloat16": 70 * T, "float16": 70 * T, "tf32": 35 * T, "float32": 31.2 * T}),
    (r"A10\b", {"bfloat16": 125 * T, "float16": 125 * T, "tf32": 62.5 * T, "float32": 31.2 * T}),
    (r"L40S", {"bfloat16": 362 * T, "float16": 362 * T, "tf32": 183 * T, "float32": 91.6 * T}),
    (r"L40\b", {"bfloat16": 181 * T, "float16": 181 * T, "tf32": 90.5 * T, "float32": 90.5 * T}),
    (r"L4\b", {"bfloat16": 121 * T, "float16": 121 * T, "tf32": 60 * T, "float32": 30.3 * T}),
    (r"V100", {"float16": 125 * T, "float32": 15.7 * T}),
    (r"T4\b", {"float16": 65 * T, "float32": 8.1 * T}),
    (r"RTX 4090", {"bfloat16": 165 * T, "float16": 165 * T, "tf32": 82.6 * T, "float32": 82.6 * T}),
    (r"RTX 3090", {"bfloat16": 71 * T, "float16": 71 * T, "tf32": 35.6 * T, "float32": 35.6 * T}),
    (r"MI300X", {"bfloat16": 1307 * T, "float16": 1307 * T, "tf32": 654 * T, "float32": 163 * T}),
    (r"MI250", {"bfloat16": 362 * T, "float16": 362 * T, "float32": 45.3 * T}),
]
GEMM_N = 2048
CPU_DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class Peak:
    device: str
    dtype: str  # the dtype the matmuls ran in: float32, tf32, bfloat16, float16
    peak_flops: float  # P
    peak_flops_run: float  # P_run
    source: str  # table | measured | user

    def as_dict(self):
        return asdict(self)


def table_peaks(device_name: str) -> dict[str, float] | None:
    for pattern, peaks in DEVICE_TABLE:
        if re.search(pattern, device_name, re.IGNORECASE):
            return peaks
    return None


def matmul_dtype(dtype: str, tf32: bool) -> str:
    """The precision the matmuls run in: float32 becomes tf32 when TF32 matmuls are allowed."""
    return "tf32" if dtype == "float32" and tf32 else dtype


def peak_from_rates(device: str, rates: dict[str, float], dtype: str, source: str) -> Peak:
    """P is the best rate in a training precision; P_run the rate of `dtype` (its nearest slower kin if absent)."""
    fastest = max(rates.values())
    run = rates.get(dtype) or rates.get("float16" if dtype == "bfloat16" else "float32") or fastest
    return Peak(device, dtype, fastest, run, source)


def cache_dir() -> Path:
    """Where per-machine measurements and prepared data live: $MFU_CACHE_DIR, else ~/.cache/mfu-analyzer."""
    if os.environ.get("MFU_CACHE_DIR"):
        return Path(os.environ["MFU_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mfu-analyzer"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def measure_gemm_flops(dtype: str, threads: int, n: int = GEMM_N, repeats: int = 5) -> float:
    """Best-of-`repeats` FLOP/s of an n×n×n GEMM after one warm-up run, in `threads` threads."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(n, n).to(getattr(torch, dtype))
        b = torch.randn(n, n).to(getattr(torch, dtype))
        a @ b
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return 2 * n**3 / best


def cpu_rates(threads: int, cache: Path | None = None) -> dict[str, float]:
    """Measured GEMM rates per dtype for this CPU and thread count, cached in a JSON file per machine."""
    import torch

    path = (cache or cache_dir()) / "cpu_peak.json"
    key = f"{cpu_name()}|{os.cpu_count()} cpus|{threads} threads|torch {torch.__version__}"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = {dtype: measure_gemm_flops(dtype, threads) for dtype in CPU_DTYPES}
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(known, indent=1))
    return known[key]


def resolve_peak(device_name: str, kind: str, dtype: str, tf32: bool = False, user_peak: float = 0.0,
                 threads: int = 1) -> Peak | None:
    """The peak for a device, by the user's figure, the table (GPUs) or a measurement (CPU); None if unknown.

    A user figure is taken as both P and P_run: the user says what the matmuls could have done.
    """
    run_dtype = matmul_dtype(dtype, tf32)
    if user_peak > 0:
        return Peak(device_name, run_dtype, user_peak, user_peak, "user")
    if kind == "cpu":
        return peak_from_rates(device_name or cpu_name(), cpu_rates(threads), run_dtype, "measured")
    rates = table_peaks(device_name)
    return peak_from_rates(device_name, rates, run_dtype, "table") if rates else None
