"""The roofline per op, the memory ceilings, the fusion bound on non_fused's what-if, and the ops' call counts, on
small synthetic traces whose right answers are known exactly."""

import json

import pytest

from profiler.analysis.records import OpStats
from profiler.diagnosis.ceilings import batch_speedup
from profiler.mfu import bandwidth
from profiler.mfu.bandwidth import cpu_bandwidth, measure_triad, table_bandwidth
from profiler.mfu.ledger import ledger, time_ledger
from profiler.mfu.peak import table_peaks
from profiler.mfu.roofline import fusion_removable, op_roofline


def test_roofline_of_a_memory_bound_and_a_compute_bound_op():
    # an elementwise op: 96 MB in 40 µs a step on a 4.8 TB/s device: 2.4 TB/s, half its 20 µs roofline
    add = op_roofline(OpStats(count=2, us=80, bytes=192e6, byte_us=80), 2, 989e12, 4.8e12)
    assert add.bound == "memory" and add.intensity == 0 and add.achieved_tflops is None
    assert add.roofline_ms == pytest.approx(0.02) and add.achieved_tb_s == pytest.approx(2.4)
    assert add.of_roofline == pytest.approx(0.5) and not add.above_ceiling
    # a 4096-cube bf16 GEMM: 137 GFLOP over 100 MB, 1,365 FLOP/byte, past the ridge (206): compute-bound
    flops, moved = 2 * 4096.0**3, 3 * 4096**2 * 2.0
    mm = op_roofline(OpStats(count=1, us=200, flops=flops, flop_us=200, bytes=moved, byte_us=200), 1, 989e12, 4.8e12)
    assert mm.bound == "compute" and mm.intensity == pytest.approx(flops / moved)
    assert mm.attainable_tflops == pytest.approx(989) and mm.roofline_ms == pytest.approx(1000 * flops / 989e12)
    assert mm.achieved_tflops == pytest.approx(flops / 200e-6 / 1e12) and mm.of_roofline == pytest.approx(
        flops / 989e12 / 200e-6)
    # faster than the memory ceiling allows (a CPU op whose data stayed in cache): capped, and said
    cached = op_roofline(OpStats(count=1, us=1, bytes=1e6, byte_us=1), 1, None, 1e11)
    assert cached.of_roofline == 1.0 and cached.above_ceiling
    assert op_roofline(OpStats(count=1, us=1, bytes=0, byte_us=0), 1, 1e12, 1e11) is None  # bytes unknown
    assert op_roofline(OpStats(count=1, us=1, flops=1e9, bytes=1e6, byte_us=1), 1, None, 1e11) is None  # no P_run


def test_fusion_removes_the_intermediates_share_of_the_kernel_time_and_all_of_the_dispatch():
    # 10 ms of non_fused: 8 of kernels, 2 of optimizer dispatch; a quarter of the kernels' bytes are intermediates
    assert fusion_removable(0.010, 0.008, intermediate=25.0, moved=100.0) == pytest.approx(0.002 + 0.25 * 0.008)
    assert fusion_removable(0.010, 0.008, 0.0, 0.0) == 0.010  # no bytes known: all of it, the upper bound
    seconds = {c: 0.0 for c in ("io", "small_batch", "memory_ops", "communication", "precision",
                                "matmul_efficiency", "warmup", "other")}
    seconds.update(non_fused=0.04, matmul_efficiency=0.01)
    entries = {e["cause"]: e for e in ledger(0.1, seconds, flops=5e12, peak=1e14, removable={"non_fused": 0.01})}
    assert entries["non_fused"]["points"] == pytest.approx(40)  # the ledger keeps the whole time...
    assert entries["non_fused"]["what_if_mfu"] == pytest.approx(0.05 / 0.09)  # ...the what-if only what goes
    timed = {e["cause"]: e for e in time_ledger(0.1, seconds, {"non_fused": 0.01})}
    assert timed["non_fused"]["what_if_step_ms"] == pytest.approx(90) and timed["non_fused"]["speedup"] == (
        pytest.approx(0.1 / 0.09))


def test_a_larger_batch_spreads_the_per_step_costs_it_keeps():
    assert batch_speedup(75, 4) == pytest.approx(4 / (0.75 + 4 * 0.25))  # 2.29, where removing all said 4
    assert batch_speedup(0, 4) == 1.0
    assert batch_speedup(75, 4) < 1 / (1 - 0.75)


@pytest.mark.parametrize("name, tb_s", [("NVIDIA H100 80GB HBM3", 3.35), ("NVIDIA H200", 4.8), ("NVIDIA B200", 8.0),
                                        ("NVIDIA A100-SXM4-80GB", 2.039), ("NVIDIA A100-SXM4-40GB", 1.555),
                                        ("AMD Instinct MI300X", 5.3), ("Tesla V100-SXM2-32GB", 0.9),
                                        ("Tesla T4", 0.32), ("NVIDIA GeForce RTX 4090 Laptop GPU", 0.576),
                                        ("NVIDIA GeForce RTX 4090", 1.008), ("Orin", 0.2048),
                                        ("NVIDIA H100 PCIe", 2.0), ("AMD Instinct MI210", 1.6)])
def test_the_bandwidth_table_has_every_device_of_the_flop_table(name, tb_s):
    assert table_peaks(name) and table_bandwidth(name).bytes_per_s == pytest.approx(tb_s * 1e12)


def test_cpu_triad_is_sized_past_the_cache_bounded_and_cached(tmp_path, monkeypatch):
    calls = []

    def fake(n, threads, repeats):  # 20 GB/s, 3 arrays of 4-byte elements
        calls.append((n, repeats))
        return [3 * 4 * n / 20e9] * repeats

    rate, array = measure_triad(2, fake, cache_bytes=480 << 20)
    assert rate == pytest.approx(20e9) and array == 384 << 20  # 4x a 480 MiB cache would be 640 MiB: capped
    assert measure_triad(2, fake, cache_bytes=96 << 20)[1] == 128 << 20  # three arrays, together 4x the cache
    assert calls[1][1] >= 5 and sum(3 * 4 * n / 20e9 * r for n, r in calls) < 1.5  # about a second in all
    assert measure_triad(2, fake, cache_bytes=1 << 20)[1] == 64 << 20  # at least 64 MiB an array
    monkeypatch.setattr(bandwidth, "last_level_cache", lambda: 8 << 20)
    first = cpu_bandwidth(2, tmp_path, fake)
    assert first.bytes_per_s == pytest.approx(20e9) and "triad" in first.note
    calls.clear()
    assert cpu_bandwidth(2, tmp_path, fake).bytes_per_s == pytest.approx(20e9) and not calls  # from the cache
    assert json.loads((tmp_path / "cpu_bandwidth.json").read_text())
