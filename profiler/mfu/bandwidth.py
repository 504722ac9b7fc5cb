"""The memory ceiling beside the FLOP ceiling: the device's memory bandwidth and its host link.

GPUs come from a table of the vendors' data-sheet figures (DRAM / HBM bandwidth of the part, and the PCIe link
it sits on); a CPU is measured here, STREAM-style: the triad a = b + s·c over arrays larger than the last-level
cache, counting 3 arrays of traffic (two reads, one write), bounded to about a second, best of several, cached
per machine and shared by concurrent processes like the GEMM peak (cpupeak.py).
"""

import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from profiler.mfu.cpupeak import cache_dir, cached, machine_key, utc_now
from profiler.settings import GIGA, TERA

TB, GB = TERA, GIGA
PCIE = {3: 15.75 * GB, 4: 31.5 * GB, 5: 63.0 * GB}  # one direction of an x16 link
# (pattern on the device name, memory bandwidth B/s, PCIe generation of the host link); more specific first,
# the same devices as peak.DEVICE_TABLE. Data sheets: NVIDIA's (HBM / GDDR bandwidth of the part), AMD's
# Instinct sheets (per device as torch sees it: one GCD of an MI250 / MI250X); laptop parts at the memory clock
# and bus width their makers list
BANDWIDTH_TABLE = [
    (r"GB200", 8.0 * TB, 5), (r"B200", 8.0 * TB, 5), (r"B100", 8.0 * TB, 5),
    (r"GH200", 4.0 * TB, 5), (r"H200", 4.8 * TB, 5), (r"H100.*(PCIe|PCI)", 2.0 * TB, 5), (r"H100|H800", 3.35 * TB, 5),
    (r"H20\b", 4.0 * TB, 5),
    (r"A100.*80GB|A800.*80GB", 2.039 * TB, 4), (r"A100|A800", 1.555 * TB, 4), (r"A30\b", 0.933 * TB, 4),
    (r"A40\b", 0.696 * TB, 4), (r"A10G", 0.6 * TB, 4), (r"A10\b", 0.6 * TB, 4), (r"A16\b", 0.2 * TB, 4),
    (r"A2\b", 0.2 * TB, 4), (r"L40S", 0.864 * TB, 4), (r"L40\b", 0.864 * TB, 4), (r"L20\b", 0.864 * TB, 4),
    (r"L4\b", 0.3 * TB, 4), (r"V100", 0.9 * TB, 3), (r"T4\b", 0.32 * TB, 3),
    # laptops (their link is usually x8 or x16 of the generation given; the x16 figure is the upper reference)
    (r"RTX 5000 Ada.*Laptop", 0.576 * TB, 4), (r"RTX 4000 Ada.*Laptop", 0.432 * TB, 4),
    (r"RTX 2000 Ada.*Laptop", 0.256 * TB, 4), (r"RTX 500 Ada.*Laptop", 0.128 * TB, 4),
    (r"RTX 4090 Laptop", 0.576 * TB, 4), (r"RTX 4080 Laptop", 0.432 * TB, 4), (r"RTX 4070 Laptop", 0.256 * TB, 4),
    (r"RTX 4060 Laptop", 0.256 * TB, 4), (r"RTX 4050 Laptop", 0.192 * TB, 4),
    (r"RTX 3080 Ti Laptop", 0.512 * TB, 4), (r"RTX 3080 Laptop", 0.448 * TB, 4), (r"RTX 3070 Laptop", 0.448 * TB, 4),
    (r"RTX 3060 Laptop", 0.336 * TB, 4), (r"RTX 3050 Laptop", 0.192 * TB, 4),
    (r"\bOrin\b", 0.2048 * TB, 4),  # LPDDR5 shared with the CPU: no PCIe between them, the figure is nominal
    # workstation and GeForce
    (r"RTX PRO 6000", 1.792 * TB, 5), (r"RTX 6000 Ada", 0.96 * TB, 4), (r"RTX A6000", 0.768 * TB, 4),
    (r"RTX A5000", 0.768 * TB, 4), (r"RTX A4000", 0.448 * TB, 4), (r"Quadro RTX (6000|8000)", 0.672 * TB, 3),
    (r"TITAN RTX", 0.672 * TB, 3), (r"TITAN V\b", 0.653 * TB, 3), (r"RTX 5090", 1.792 * TB, 5),
    (r"RTX 5080", 0.96 * TB, 5), (r"RTX 4090", 1.008 * TB, 4), (r"RTX 4080", 0.717 * TB, 4),
    (r"RTX 3090", 0.936 * TB, 4), (r"RTX 3080", 0.76 * TB, 4), (r"RTX 3070", 0.448 * TB, 4),
    (r"RTX 3060", 0.36 * TB, 4), (r"RTX 2080 Ti", 0.616 * TB, 3), (r"RTX 2080", 0.448 * TB, 3),
    (r"RTX 2070", 0.448 * TB, 3), (r"RTX 2060", 0.336 * TB, 3),
    # AMD Instinct
    (r"MI355", 8.0 * TB, 5), (r"MI325", 6.0 * TB, 5), (r"MI300X", 5.3 * TB, 5), (r"MI300A", 5.3 * TB, 5),
    (r"MI250X", 1.6 * TB, 4), (r"MI250", 1.6 * TB, 4), (r"MI210", 1.6 * TB, 4), (r"MI100", 1.228 * TB, 4),
    # Intel (Max: HBM2e, 128 and 48 GB; Gaudi: HBM2e, 128 and 96 GB), Huawei (the 910C's 3.2 TB/s over two dies)
    (r"GPU Max 1550", 3.2768 * TB, 5), (r"GPU Max 1100", 1.2288 * TB, 5),
    (r"GAUDI ?3|HL-32\d", 3.67 * TB, 5), (r"GAUDI ?2|HL-22\d", 2.46 * TB, 4),
    (r"Ascend910_93|Ascend ?910C", 1.6 * TB, 5),
]

BUDGET_S = 1.0  # the triads' time after the first (which touches the arrays' pages)
TRIALS = 10
# bytes per array: three together 4x the last-level cache (STREAM's rule), at least 64 MiB, at most 384 MiB so that
# allocating and touching them stays near a second (a VM may report its host's whole cache: 480 MiB here)
MIN_ARRAY, MAX_ARRAY = 64 << 20, 384 << 20


@dataclass(frozen=True)
class Bandwidth:
    bytes_per_s: float  # the memory ceiling
    source: str  # table | measured | user | run metadata
    link_bytes_per_s: float | None = None  # host link, one direction (PCIe x16 of the part's generation)
    note: str | None = None

    def as_dict(self):
        return asdict(self)


def table_bandwidth(device_name: str) -> Bandwidth | None:
    for pattern, rate, pcie in BANDWIDTH_TABLE:
        if re.search(pattern, device_name, re.IGNORECASE):
            return Bandwidth(rate, "table", PCIE[pcie],
                             f"{device_name}: {rate / TB:.3g} TB/s (data sheet), host link PCIe {pcie}.0 x16 "
                             f"{PCIE[pcie] / GB:.1f} GB/s a direction")
    return None


def last_level_cache() -> int:
    """Bytes of the largest CPU cache sysfs lists for cpu0, 0 where unknown."""
    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        unit = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KMG") or 0) * unit)
    return max(sizes, default=0)


def triad_seconds(n: int, threads: int, repeats: int) -> list[float]:
    """Seconds of each of `repeats` float32 triads a = b + 3·c on n elements, after one that touches the pages."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b, c = torch.empty(n), torch.ones(n), torch.full((n,), 2.0)
        torch.add(b, c, alpha=3.0, out=a)
        out = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.add(b, c, alpha=3.0, out=a)
            out.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return out


def measure_triad(threads: int, timer=triad_seconds, cache_bytes: int | None = None) -> tuple[float, int]:
    """The best bytes/s of up to TRIALS triads within BUDGET_S, and the bytes per array: three arrays together
    4x the last-level cache (STREAM's rule), within MIN_ARRAY..MAX_ARRAY each."""
    llc = last_level_cache() if cache_bytes is None else cache_bytes
    array = int(min(MAX_ARRAY, max(MIN_ARRAY, 4 * llc / 3)))
    n = array // 4
    first = min(timer(n, threads, 1))
    repeats = int(max(1, min(TRIALS, BUDGET_S // max(first, 1e-9))))
    best = min(timer(n, threads, repeats) + [first])
    return 3 * n * 4 / max(best, 1e-9), array


def cpu_bandwidth(threads: int, cache: Path | None = None, timer=triad_seconds) -> Bandwidth:
    """This machine's triad bandwidth in `threads` threads, from the cache or measured now under the lock."""

    def measure() -> dict:
        started = time.perf_counter()
        rate, array = measure_triad(threads, timer)
        return {"bytes_per_s": rate,
                "how": f"measured: best STREAM-style triad (3 x {array >> 20} MiB float32 arrays, 2 reads and 1 write "
                       f"counted) in {threads} thread(s), {utc_now()}, {time.perf_counter() - started:.1f} s"}

    entry = cached((cache or cache_dir()) / "cpu_bandwidth.json", machine_key(threads), _valid, measure)
    return Bandwidth(entry["bytes_per_s"], "measured", None, entry["how"])


def _valid(entry) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("bytes_per_s"), (int, float)) and entry["bytes_per_s"] > 0



def resolve_bandwidth(device_name: str, kind: str, threads: int = 1, user: float = 0.0) -> Bandwidth | None:
    """The memory ceiling by the user's figure, the table (GPUs) or a measurement here (CPU); None if unknown."""
    if user > 0:
        return Bandwidth(user, "user", None, f"given: {user / GB:.1f} GB/s")
    if kind == "cpu":
        return cpu_bandwidth(threads)
    return table_bandwidth(device_name)
