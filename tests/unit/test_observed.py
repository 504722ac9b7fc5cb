"""What the diagnosis reads of a rank: Signals' totals made per step once (mfu/observed.py), by hand."""

from collections import Counter

import pytest

from profiler.analysis.records import Signals
from profiler.mfu.observed import observed


def test_totals_become_per_step_figures_ranked_largest_first():
    sig = Signals(steps=4, host_ops=400, kernel_us=[5.0, 7.0, 9.0], graph_launches=8,
                  data_prep_us=Counter({"a.py(1): load": 2000.0, "b.py(2): decode": 8000.0, "c.py(3): crop": 2000.0}),
                  memcpy_bytes=Counter({"Memcpy HtoD (Pageable -> Device)": 8e6,
                                        "Memcpy DtoD (Device -> Device)": 4e6}),
                  memcpy_us=Counter({"Memcpy HtoD (Pageable -> Device)": 2000.0}),
                  small_matmul_us=400.0, small_matmul_flops=2e9, elementwise_bytes=1e8, elementwise_byte_us=1e4,
                  fusable_bytes=2.5e7, stall_calls=Counter({"cudaFree": 8, "cudaStreamSynchronize": 12}),
                  lost_launches=Counter({"kernel": 6}))
    seen = observed(sig, "cuda")
    assert (seen.host_ops, seen.kernels, seen.median_kernel_us, seen.graph_launches) == (100, 0.75, 7.0, 2)
    # ms per step, largest first; the tie keeps the order the names were met in
    assert list(seen.data_preparation_ms.items()) == [("b.py(2): decode", 2.0), ("a.py(1): load", 0.5),
                                                      ("c.py(3): crop", 0.5)]
    assert [(c.kind[:11], c.bytes, c.bytes_per_s) for c in seen.copies] == [
        ("Memcpy HtoD", 2e6, pytest.approx(4e9)), ("Memcpy DtoD", 1e6, None)]  # no time recorded: no rate
    assert seen.host_to_device_ms == 0.5
    assert seen.small_matmul_ms == 0.1 and seen.small_matmul_flop_per_s == pytest.approx(5e12)
    assert (seen.elementwise_bytes, seen.elementwise_bytes_per_s, seen.fusable_pct) == (2.5e7, 1e10, 25.0)
    assert list(seen.stall_calls.items()) == [("cudaStreamSynchronize", 3.0), ("cudaFree", 2.0)]
    assert (seen.lost_kernels, seen.lost_graphs) == (1.5, 0.0)
    assert seen.optimizer is None and not seen.training


def test_the_optimizer_span_says_its_implementation_and_its_working_ops():
    sig = Signals(steps=2, optimizers=Counter({"Optimizer.step#AdamW.step": 2}), optimizer_kernels=600,
                  optimizer_ops=900, optimizer_op_counts=Counter({"aten::mul_": 300, "aten::empty": 400,
                                                                  "aten::addcdiv_": 200}))
    gpu, cpu = observed(sig, "cuda").optimizer, observed(sig, "cpu").optimizer
    assert gpu is not None and cpu is not None and observed(sig, "cuda").training
    assert (gpu.fused, gpu.foreach_ops, gpu.work, gpu.work_unit) == (False, 0.0, 300.0, "kernels")
    assert (cpu.work, cpu.work_unit) == (450.0, "ops")
    assert list(gpu.ops.items()) == [("aten::mul_", 150.0), ("aten::addcdiv_", 100.0)]  # aten::empty allocates
