"""Communication on small hand-made GPU traces of 8 ranks: NCCL collectives by phase with their bus bandwidth
computed by hand (nccl-tests' definitions), and DeepEP-style dispatch / combine kernels, which are communication
whatever launched them."""

import pytest
from conftest import invariants_hold
from synth import kernel, launch, op, step, write

from profiler.pipeline import analyze_path
from profiler.settings import Options

DISTRIBUTED = {"distributedInfo": {"backend": "nccl", "rank": 0, "world_size": 8}}
GEMM = "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64"
MM = {"Input Dims": [[1024, 1024], [1024, 1024]], "Input type": ["c10::BFloat16", "c10::BFloat16"]}


def nccl_step():
    """One 4 ms step: a forward all-gather of a 262,144-element bf16 shard (S = 8 × 0.5 MB = 4 MB) whose 2 ms
    kernel nothing overlaps; a backward all-reduce of 1,048,576 floats (S = 4 MB) whose 1 ms kernel a GEMM hides
    half of."""
    gather = {"Input Dims": [[262144]], "Input type": ["c10::BFloat16"]}
    reduce = {"Input Dims": [[1048576]], "Input type": ["float"]}
    return [step(1, 0, 4000),
            op("c10d::_allgather_base_", 10, 20), op("nccl:all_gather", 12, 15, cat="user_annotation", **gather),
            launch(14, 5, 1), kernel("ncclDevKernel_AllGather_RING_LL(ncclDevKernelArgsStorage<4096ul>)", 100, 2000, 1),
            op("autograd::engine::evaluate_function: MmBackward0", 2200, 400),
            op("aten::mm", 2210, 20, **MM), launch(2215, 5, 2), kernel(GEMM, 2300, 500, 2),
            op("c10d::allreduce_", 2300, 20), op("nccl:all_reduce", 2302, 15, cat="user_annotation", **reduce),
            launch(2305, 5, 3), kernel("ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevKernelArgsStorage<4096ul>)",
                                       2550, 1000, 3)]


def test_collectives_by_phase_with_their_bus_bandwidth(tmp_path):
    report = analyze_path(write(tmp_path / "t.json", nccl_step(), **DISTRIBUTED), Options())
    comm = report["communication"]
    assert comm["group_size"] == 8 and comm["backend"] == "nccl"
    rows = {(r["phase"], r["kind"]): r for r in comm["collectives"]}
    gather, reduce = rows[("forward", "all_gather")], rows[("backward", "all_reduce")]
    # all-gather: S = 8 × 262,144 × 2 B over 2 ms, times (n − 1)/n
    assert gather["mb"] == pytest.approx(8 * 262144 * 2 / 1e6)
    assert gather["bus_gb_per_s"] == pytest.approx(8 * 262144 * 2 / 2e-3 * 7 / 8 / 1e9)
    assert (gather["ms"], gather["exposed_ms"]) == pytest.approx((2.0, 2.0))
    # all-reduce: S = 1,048,576 × 4 B over 1 ms, times 2(n − 1)/n; the GEMM (2300-2800) hides 250 of its 1000 µs
    assert reduce["bus_gb_per_s"] == pytest.approx(1048576 * 4 / 1e-3 * 2 * 7 / 8 / 1e9)
    assert (reduce["ms"], reduce["exposed_ms"]) == pytest.approx((1.0, 0.75))
    assert comm["collectives"][0]["kind"] == "all_gather"  # the most exposed first
    # against the H100's NVLink 4 (900 GB/s both ways): the all-reduce's bus bandwidth is the best
    assert comm["link"] == "NVLink 4, 450 GB/s a direction" and comm["link_gb_per_s"] == 450
    facts = next(b for b in report["bottlenecks"] if b["cause"] == "communication")["facts"]
    assert facts["best_bus_of_link_pct"] == pytest.approx(100 * reduce["bus_gb_per_s"] / 450)
    invariants_hold(report)


def deep_ep_step():
    """A MoE layer's expert-parallel all-to-all by DeepEP-style kernels, launched from annotations the analyzer
    knows nothing of, around the experts' GEMM: 2.4 ms of the 4 ms step's kernel time is dispatch and combine."""
    return [step(1, 0, 4000),
            op("moe_layer_0_dispatch", 10, 30, cat="user_annotation"), launch(15, 5, 1),
            kernel("void deep_ep::internode::dispatch<true, 8, 3>(int4*, float*, int*)", 100, 1200, 1),
            op("aten::mm", 50, 20, **MM), launch(55, 5, 2), kernel(GEMM, 1400, 800, 2),
            op("moe_layer_0_combine", 80, 30, cat="user_annotation"), launch(85, 5, 3),
            kernel("void deep_ep::internode::combine<__nv_bfloat16, 8>(int4*, int*)", 2300, 1000, 3),
            launch(90, 5, 4), kernel("void deep_ep::intranode::notify_dispatch<8>(int*)", 3400, 200, 4)]


def test_expert_parallel_kernels_are_communication_and_named(tmp_path):
    report = analyze_path(write(tmp_path / "t.json", deep_ep_step(), **DISTRIBUTED), Options())
    assert report["breakdown"]["communication"]["ms"] == pytest.approx(2.4)
    assert report["breakdown"]["other_compute"]["ms"] == 0
    comm = report["communication"]
    assert comm["parallelism"] == ["expert parallel (all-to-all dispatch / combine)"]
    assert {r["kind"] for r in comm["collectives"]} == {"all_to_all"}
    first = report["bottlenecks"][0]
    assert first["cause"] == "communication" and "dispatch and combine" in first["fix"]
    assert not any(b["cause"] == "non_fused" for b in report["bottlenecks"])
    invariants_hold(report)
