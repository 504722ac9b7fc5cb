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


def _gpu(half: float, tf32: float | None, fp32: float, bf16: bool = True) -> dict[str, float]:
    """Dense tensor-core TFLOP/s with fp32 accumulation (half: fp16 and, where supported, bf16), and fp32."""
    rates = {"float16": half * T, "float32": fp32 * T}
    if bf16:
        rates["bfloat16"] = half * T
    if tf32:
        rates["tf32"] = tf32 * T
    return rates


# (pattern on the device name, {matmul dtype: dense peak FLOP/s}); more specific patterns first. Vendors' data
# sheets, dense (no sparsity), with fp32 accumulation: GeForce cards run fp16 with fp32 accumulation at half
# their fp16-accumulate rate, which is the figure training sees.
DEVICE_TABLE = [
    # NVIDIA data center: Blackwell, Hopper, Ampere, Ada, Turing, Volta
    (r"GB200", _gpu(2500, 1250, 80)),
    (r"B200", _gpu(2250, 1100, 80)),
    (r"B100", _gpu(1750, 875, 60)),
    (r"GH200", _gpu(989, 494, 67)),
    (r"H200", _gpu(989, 494, 67)),
    (r"H100.*(PCIe|PCI)", _gpu(756, 378, 51)),
    (r"H100|H800", _gpu(989, 494, 67)),
    (r"H20\b", _gpu(148, 74, 44)),
    (r"A100|A800", _gpu(312, 156, 19.5)),
    (r"A30\b", _gpu(165, 82, 10.3)),
    (r"A40\b", _gpu(149.7, 74.8, 37.4)),
    (r"A10G", _gpu(70, 35, 31.2)),
    (r"A10\b", _gpu(125, 62.5, 31.2)),
    (r"A16\b", _gpu(72, 36, 18)),
    (r"A2\b", _gpu(18, 9, 4.5)),
    (r"L40S", _gpu(362, 183, 91.6)),
    (r"L40\b", _gpu(181, 90.5, 90.5)),
    (r"L20\b", _gpu(119.5, 59.8, 59.8)),
    (r"L4\b", _gpu(121, 60, 30.3)),
    (r"V100", _gpu(125, None, 15.7, bf16=False)),
    (r"T4\b", _gpu(65, None, 8.1, bf16=False)),
    # NVIDIA workstation and GeForce
    (r"RTX PRO 6000", _gpu(503.8, 251.9, 125)),
    (r"RTX 6000 Ada", _gpu(364.2, 182.1, 91.1)),
    (r"RTX A6000", _gpu(154.8, 77.4, 38.7)),
    (r"RTX A5000", _gpu(111.1, 55.6, 27.8)),
    (r"RTX A4000", _gpu(76.7, 38.4, 19.2)),
    (r"Quadro RTX (6000|8000)", _gpu(130.5, None, 16.3, bf16=False)),
    (r"TITAN RTX", _gpu(130, None, 16.3, bf16=False)),
    (r"TITAN V\b", _gpu(110, None, 14.9, bf16=False)),
    (r"RTX 5090", _gpu(209.5, 104.8, 104.8)),
    (r"RTX 5080", _gpu(112.6, 56.3, 56.3)),
    (r"RTX 4090", _gpu(165.2, 82.6, 82.6)),
    (r"RTX 4080", _gpu(97.5, 48.7, 48.7)),
    (r"RTX 3090", _gpu(71, 35.6, 35.6)),
    (r"RTX 3080", _gpu(59.5, 29.8, 29.8)),
    (r"RTX 3070", _gpu(40.6, 20.3, 20.3)),
    (r"RTX 3060", _gpu(25.5, 12.7, 12.7)),
    (r"RTX 2080 Ti", _gpu(53.8, None, 13.4, bf16=False)),
    (r"RTX 2080", _gpu(40.3, None, 10.1, bf16=False)),
    (r"RTX 2070", _gpu(29.9, None, 7.5, bf16=False)),
    (r"RTX 2060", _gpu(25.8, None, 6.5, bf16=False)),
    # AMD Instinct (per device as torch sees it: one GCD of an MI250 / MI250X)
    (r"MI355", _gpu(2300, 1150, 157.3)),
    (r"MI325|MI300X", _gpu(1307, 654, 163)),
    (r"MI300A", _gpu(980.6, 490.3, 122.6)),
    (r"MI250X", _gpu(191.5, None, 47.9)),
    (r"MI250", _gpu(181, None, 45.3)),
    (r"MI210", _gpu(181, None, 45.3)),
    (r"MI100", _gpu(184.6, None, 46.1)),
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
