"""Peak FLOP/s of the device: P (fastest precision training commonly uses) and P_run (the dtype that ran).

One implementation for the training script and the analyzer. GPUs come from a table of dense (no sparsity)
tensor-core figures from the vendors' data sheets; a CPU is measured in the run's thread count (cpupeak.py).
"""

import re
from dataclasses import asdict, dataclass, replace

from profiler.mfu.cpupeak import ceilings, cpu_measurement, cpu_name
from profiler.settings import TERA

T = TERA


NARROW_FORMATS = ("float8", "float4")  # P_run where the GEMMs ran in them; never P (MFU's convention below)


def _gpu(half: float, tf32: float | None, fp32: float | None, bf16: bool = True, fp8: float | None = None,
         fp4: float | None = None) -> dict[str, float]:
    """Dense tensor-core TFLOP/s with fp32 accumulation (half: fp16 and, where supported, bf16), and fp32; fp8
    and fp4 where the vendor states them (fp32 too, on accelerators whose vendor states only the matrix engines'
    16-bit rate: a float32 run's P_run is then P, an upper bound)."""
    rates = {"float16": half * T, **({"float32": fp32 * T} if fp32 else {})}
    if bf16:
        rates["bfloat16"] = half * T
    if tf32:
        rates["tf32"] = tf32 * T
    rates.update({d: r * T for d, r in (("float8", fp8), ("float4", fp4)) if r})
    return rates


# (pattern on the device name, {matmul dtype: dense peak FLOP/s}); more specific patterns first. Vendors' data
# sheets, dense (no sparsity), with fp32 accumulation: GeForce cards run fp16 with fp32 accumulation at half
# their fp16-accumulate rate, which is the figure training sees.
DEVICE_TABLE = [
    # NVIDIA data center: Blackwell, Hopper, Ampere, Ada, Turing, Volta
    (r"GB200", _gpu(2500, 1250, 80, fp8=5000, fp4=10000)),
    (r"B200", _gpu(2250, 1100, 80, fp8=4500, fp4=9000)),
    (r"B100", _gpu(1750, 875, 60, fp8=3500, fp4=7000)),
    (r"GH200", _gpu(989, 494, 67, fp8=1979)),
    (r"H200", _gpu(989, 494, 67, fp8=1979)),
    (r"H100.*(PCIe|PCI)", _gpu(756, 378, 51, fp8=1513)),
    (r"H100|H800", _gpu(989, 494, 67, fp8=1979)),
    (r"H20\b", _gpu(148, 74, 44, fp8=296)),
    (r"A100|A800", _gpu(312, 156, 19.5)),
    (r"A30\b", _gpu(165, 82, 10.3)),
    (r"A40\b", _gpu(149.7, 74.8, 37.4)),
    (r"A10G", _gpu(70, 35, 31.2)),
    (r"A10\b", _gpu(125, 62.5, 31.2)),
    (r"A16\b", _gpu(72, 36, 18)),
    (r"A2\b", _gpu(18, 9, 4.5)),
    (r"L40S", _gpu(362, 183, 91.6, fp8=733)),
    (r"L40\b", _gpu(181, 90.5, 90.5)),
    (r"L20\b", _gpu(119.5, 59.8, 59.8)),
    (r"L4\b", _gpu(121, 60, 30.3, fp8=242)),
    (r"V100", _gpu(125, None, 15.7, bf16=False)),
    (r"T4\b", _gpu(65, None, 8.1, bf16=False)),
    # NVIDIA laptop GPUs, before their desktop namesakes. A laptop's clock follows its power limit (TGP), so these
    # are upper references at the highest boost clock listed for the part: CUDA cores x boost x 2 FLOP for
    # float32, tensor cores at 2x that in half precision with fp32 accumulation on GeForce, 4x on RTX Ada
    # workstation parts (the desktop cards' ratios, from NVIDIA's Ampere and Ada whitepapers)
    (r"RTX 5000 Ada.*Laptop", _gpu(164.6, 82.3, 41.15)),  # 9,728 cores, 2,115 MHz
    (r"RTX 4000 Ada.*Laptop", _gpu(129.2, 64.6, 32.3)),  # 7,424 cores, 2,175 MHz
    (r"RTX 2000 Ada.*Laptop", _gpu(52.0, 26.0, 13.0)),  # 3,072 cores, 2,115 MHz
    (r"RTX 500 Ada.*Laptop", _gpu(33.2, 16.6, 8.29)),  # 2,048 cores, 2,025 MHz
    (r"RTX 4090 Laptop", _gpu(79.4, 39.7, 39.7)),  # 9,728 cores, 2,040 MHz
    (r"RTX 4080 Laptop", _gpu(67.7, 33.9, 33.9)),  # 7,424 cores, 2,280 MHz
    (r"RTX 4070 Laptop", _gpu(40.1, 20.0, 20.0)),  # 4,608 cores, 2,175 MHz
    (r"RTX 4060 Laptop", _gpu(29.1, 14.6, 14.6)),  # 3,072 cores, 2,370 MHz
    (r"RTX 4050 Laptop", _gpu(24.3, 12.1, 12.1)),  # 2,560 cores, 2,370 MHz
    (r"RTX 3080 Ti Laptop", _gpu(47.2, 23.6, 23.6)),  # 7,424 cores, 1,590 MHz
    (r"RTX 3080 Laptop", _gpu(42.0, 21.0, 21.0)),  # 6,144 cores, 1,710 MHz
    (r"RTX 3070 Laptop", _gpu(33.2, 16.6, 16.6)),  # 5,120 cores, 1,620 MHz
    (r"RTX 3060 Laptop", _gpu(26.2, 13.1, 13.1)),  # 3,840 cores, 1,703 MHz
    (r"RTX 3050 Laptop", _gpu(14.3, 7.1, 7.1)),  # 2,048 cores, 1,740 MHz
    # NVIDIA Jetson: AGX Orin 64GB (torch names the device "Orin"): 2,048 cores at 1.3 GHz, 170 sparse INT8
    # TOPS in its GPU, so 42.5 dense fp16; the smaller Orin modules are slower (pass --peak-flops)
    (r"\bOrin\b", _gpu(42.5, 21.3, 5.3)),
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
    (r"MI325|MI300X", _gpu(1307, 654, 163, fp8=2615)),
    (r"MI300A", _gpu(980.6, 490.3, 122.6)),
    (r"MI250X", _gpu(191.5, None, 47.9)),
    (r"MI250", _gpu(181, None, 45.3)),
    (r"MI210", _gpu(181, None, 45.3)),
    (r"MI100", _gpu(184.6, None, 46.1)),
    # Intel Data Center GPU Max (Ponte Vecchio), as torch.xpu names it: XMX engines x 512 FLOP a clock at the
    # part's peak clock (1550: 1,024 at 1.6 GHz; 1100: 448 at 1.55 GHz), and the vector engines' fp32
    (r"GPU Max 1550", _gpu(832, 416, 52)),
    (r"GPU Max 1100", _gpu(352, 176, 22.2)),
    # Intel Gaudi (torch.hpu names them GAUDI2, GAUDI3): the matrix engines' dense bf16 and fp8, Intel's Hot Chips
    # 2024 and Vision 2024 figures; Intel states no fp32 matrix rate beside them
    (r"GAUDI ?3|HL-32\d", _gpu(1835, None, None, fp8=1835)),
    (r"GAUDI ?2|HL-22\d", _gpu(432, None, None, fp8=865)),
    # Huawei Ascend 910C (torch_npu names its dies Ascend910_93xx, one device each): the CloudMatrix384 paper's
    # 376 TFLOP/s dense bf16 a die. Huawei states no per-chip figure for the 910B: pass --peak-flops
    (r"Ascend910_93|Ascend ?910C", _gpu(376, None, None)),
]
@dataclass(frozen=True, kw_only=True)
class Peak:
    device: str
    dtype: str  # the dtype the matmuls ran in: float32, tf32, bfloat16, float16
    peak_flops: float  # P
    peak_flops_run: float  # P_run
    source: str  # table | measured | user
    fastest: str | None = None  # the dtype of P (None where the user gave it)
    note: str | None = None  # how and when a measured peak was measured, what the CPU emulates, its ISA bound
    ceiling: float | None = None  # a measured P_run may be raised to a run's own rate up to this (cpupeak.ceilings)

    def as_dict(self):
        return asdict(self)


def table_peaks(device_name: str) -> dict[str, float] | None:
    for pattern, peaks in DEVICE_TABLE:
        if re.search(pattern, device_name, re.IGNORECASE):
            return peaks
    return None


def precision_of(dtype: str, tf32: bool) -> str:
    """The precision the matmuls run in: float32 becomes tf32 when TF32 matmuls are allowed."""
    return "tf32" if dtype == "float32" and tf32 else dtype


def peak_from_rates(device: str, rates: dict[str, float], dtype: str, source: str) -> Peak:
    """P is the best rate in a training precision; P_run the rate of `dtype` (its nearest slower kin if absent).

    fp8 and fp4 are never P: MFU stays against the 16-bit peak, as Megatron-LM and PaLM count it, so that it
    compares across precisions; a run whose GEMMs ran in them gets their rate as P_run (above P), and the
    report says so."""
    trained = {d: r for d, r in rates.items() if d not in NARROW_FORMATS} or rates
    fastest = max(trained, key=lambda d: (trained[d], d == "bfloat16"))  # bfloat16 where float16 ties
    kin = fastest if dtype in NARROW_FORMATS else "float16" if dtype == "bfloat16" else "float32"
    run = rates.get(dtype) or rates.get(kin) or rates[fastest]
    return Peak(device=device, dtype=dtype, peak_flops=rates[fastest], peak_flops_run=run, source=source,
                fastest=fastest)


def cpu_peak(dtype: str, threads: int) -> Peak:
    """This CPU's measured peak (cpupeak), with a note on how it was measured, what the CPU only emulates, and
    the instruction set's upper reference beside the measured rates."""
    m = cpu_measurement(threads)
    peak = peak_from_rates(cpu_name(), m["rates"], dtype, "measured")
    note = "measured: " + m["how"]
    if m.get("emulated"):
        note += "; " + ", ".join(m["emulated"]) + " is emulated on this CPU (no AVX-512-BF16, AMX or BF16 instructions)"
    if m.get("isa"):
        note += ("; instruction-set reference at the highest clock the kernel states, two FMA units a core: "
                 + ", ".join(f"{d} {r / T:.3g} TFLOP/s" for d, r in m["isa"].items()))
    return replace(peak, note=note, ceiling=ceilings(m).get(peak.dtype))


def resolve_peak(device_name: str, kind: str, dtype: str, tf32: bool = False, user_peak: float = 0.0,
                 threads: int = 1, user_peak_run: float = 0.0) -> Peak | None:
    """The peak for a device, by the user's figure, the table (GPUs) or a measurement (CPU); None if unknown.

    A user figure is P, and P_run too unless the user gives the run's dtype its own (user_peak_run): the user
    says what the matmuls could have done. The device keeps its name (a CPU's model).
    """
    run_dtype = precision_of(dtype, tf32)
    if user_peak > 0:
        name = device_name or (cpu_name() if kind == "cpu" else "")
        note = ("P_run is the given peak for the run's dtype" if user_peak_run > 0 else
                "P_run is P: the given peak stands for the run's dtype too (set the run dtype's own with "
                "--peak-flops-run, or peak_flops_run=)")
        return Peak(device=name, dtype=run_dtype, peak_flops=user_peak,
                    peak_flops_run=min(user_peak_run or user_peak, user_peak), source="user", note=note)
    if kind == "cpu":
        return cpu_peak(run_dtype, threads)
    rates = table_peaks(device_name)
    return peak_from_rates(device_name, rates, run_dtype, "table") if rates else None
