"""The analyzer on our own CUDA runs: one profiler cycle (steps 23-26) of each run that scripts/gpu_check.sh
made on an NVIDIA H200 (torch 2.11, CUDA 13): nanoGPT's shakespeare_char shape (6 layers, 6 heads,
n_embd=384, block_size=256, batch 64, dropout 0.2, vocab 256), bfloat16 autocast, sdpa (cuDNN attention),
num_workers=0; eager and torch.compile'd."""

import pytest
from conftest import ROOT

from profiler.pipeline import analyze_path
from profiler.settings import Options

FIXTURES = ROOT / "tests" / "fixtures"
B, T, L, H, C, V = 64, 256, 6, 6, 384, 256


def report_of(name: str) -> dict:
    return analyze_path(FIXTURES / f"h200_gpt_bf16_{name}.pt.trace.json.gz", Options())


@pytest.mark.parametrize("name", ["eager", "compiled"])
def test_h200_run_end_to_end(name):
    report = report_of(name)
    # Kineto's GPU mirrors of ProfilerStep and Optimizer.step are not steps; the run recorded no memory
    assert [w["code"] for w in report["warnings_data"]] == ["no_memory_events"]
    assert report["source"]["steps"] == [23, 24, 25, 26]
    assert report["device"] == {"name": "NVIDIA H200", "kind": "cuda", "dtype": "bfloat16", "peak_flops": 989e12,
                                "peak_flops_run": 989e12, "peak_source": "table", "peak_note": None,
                                "bandwidth": 4.8e12, "bandwidth_source": "table", "link_bandwidth": 63e9,
                                "bandwidth_note": "NVIDIA H200: 4.8 TB/s (data sheet), host link PCIe 5.0 x16 63.0 "
                                                  "GB/s a direction"}
    flops = report["mfu"]["flops_per_step"]
    assert flops["analytic"] == 1_169_795_579_904  # what profile_run wrote: (6N + 12·L·H·Q·T)·B·T
    # the counted FLOPs miss only 6× the LayerNorm weights per token, which no matmul multiplies
    assert flops["counted"] == flops["analytic"] - 6 * (2 * L + 1) * C * B * T
    attention = {op["name"]: op for op in report["top_ops"] if "cudnn_attention" in op["name"]}
    forward = 4 * B * H * T * T * (C // H) * L  # QK^T and PV, full square, every layer
    assert attention["aten::_scaled_dot_product_cudnn_attention"]["flops"] == forward
    assert attention["aten::_scaled_dot_product_cudnn_attention_backward"]["flops"] == 2 * forward
    assert all(op["category"] == "matmul" for op in attention.values())
    assert report["classification_ms"]["by_name"] == 0 and report["classification_ms"]["unclassified"] == 0
    assert sum(b["fraction"] for b in report["breakdown"].values()) == pytest.approx(1, abs=1e-6)
    assert sum(e["points"] for e in report["ledger"]) == pytest.approx(100 - 100 * report["mfu"]["analytic"], abs=0.01)
    fixes = {b["cause"]: b.get("fix_config") for b in report["bottlenecks"]}
    assert fixes["small_batch"] == {"batch_size": 256} and fixes["io"] == {"num_workers": 4}


def test_h200_eager_is_host_bound_and_told_to_compile():
    report = report_of("eager")
    assert [b["cause"] for b in report["bottlenecks"]][:3] == ["small_batch", "io", "non_fused"]
    assert report["breakdown"]["data_loading"]["ms"] == pytest.approx(8.60, abs=0.01)
    assert report["breakdown"]["host_overhead"]["ms"] == pytest.approx(8.91, abs=0.01)
    non_fused = next(b for b in report["bottlenecks"] if b["cause"] == "non_fused")
    assert non_fused["fix_config"] == {"compile": True}
    assert "native_layer_norm_backward 1.32 ms (16% of its memory roofline)" in non_fused["evidence"]
    # eager's elementwise ops run at 0.7-4.4 TB/s of the H200's 4.8; fusion would remove 37% of their bytes
    assert "37% of it is intermediates one op writes and the next reads" in non_fused["evidence"]
    rates = {op["name"]: round(op["roofline"]["achieved_tb_s"], 2) for op in report["top_ops"] if op["roofline"]}
    assert rates["aten::add_"] == 4.35 and rates["aten::gelu"] == 2.75 and rates["aten::native_layer_norm"] == 1.45
    mm = next(op for op in report["top_ops"] if op["name"] == "aten::mm")
    assert mm["count"] == 75 and mm["roofline"]["bound"] == "compute"  # 75 calls a step, each at 281 FLOP/byte
    assert mm["roofline"]["intensity"] == pytest.approx(280.8, abs=0.1)


def test_h200_compiled_triton_kernels_are_classified_by_their_launching_op():
    report = report_of("compiled")
    triton = [op for op in report["top_ops"] if op["name"].startswith("triton_")]
    assert len(triton) >= 5 and all(op["category"] == "other_compute" for op in triton)
    assert report["breakdown"]["other_compute"]["ms"] == pytest.approx(2.37, abs=0.01)  # eager: 4.07
    non_fused = next(b for b in report["bottlenecks"] if b["cause"] == "non_fused")
    assert "already compiled: 1 torch.compile region(s) per step" in non_fused["evidence"]
    assert "fix_config" not in non_fused and non_fused["fix"].startswith("already compiled")
    small_batch = next(b for b in report["bottlenecks"] if b["cause"] == "small_batch")
    assert "torch.compile(mode='reduce-overhead')" in small_batch["fix"]
