"""GPT-2 small on an NVIDIA H200 (torch 2.11, CUDA 13), one profiler cycle (steps 14-16) of the run
scripts/gpu_gpt2.sh made beside nanoGPT: 12 layers, 12 heads, n_embd 768, block 1024, vocab 50304, no bias,
batch 16, bfloat16, torch.compile, sdpa. F_model and F_counted by hand; the diagnosis of a compiled run."""

from conftest import ROOT

from profiler.mfu.modelflops import gpt_params
from profiler.pipeline import analyze_path
from profiler.settings import Options

TRACE = ROOT / "tests" / "fixtures" / "h200_gpt2_small_compiled.pt.trace.json.gz"
L, H, C, T, V, B = 12, 12, 768, 1024, 50304, 16


def test_gpt2_small_flops_by_hand():
    report = analyze_path(TRACE, Options())
    # N as nanoGPT's get_num_params counts it: 12 · (12C² + 2C) + V·C + C = 123,587,328
    n = L * (12 * C * C + 2 * C) + V * C + C
    assert n == gpt_params(L, C, V, bias=False) == 123_587_328
    per_token = 6 * n + 12 * L * H * (C // H) * T  # 741,523,968 + 113,246,208
    flops = report["mfu"]["flops_per_step"]
    assert flops["analytic"] == per_token * B * T == 14_004_554_563_584
    # the matmuls that ran: all of it but 6 FLOPs per token for each LayerNorm weight (2 per block, 1 final),
    # which no matmul multiplies
    assert flops["counted"] == flops["analytic"] - 6 * (2 * L + 1) * C * B * T
    assert report["device"]["name"] == "NVIDIA H200" and report["device"]["dtype"] == "bfloat16"
    assert report["source"]["steps"] == [14, 15, 16]
    assert [w["code"] for w in report["warnings_data"]] == ["no_memory_events"]  # recorded without profile_memory


def test_gpt2_small_compiled_diagnosis():
    report = analyze_path(TRACE, Options())
    assert 0.39 < report["mfu"]["analytic"] < 0.40  # 39.40%: 35.94 ms per step of 14.0 TFLOP at 989 TFLOP/s
    causes = [b["cause"] for b in report["bottlenecks"]]
    assert causes == ["non_fused", "matmul_efficiency", "small_batch"]
    non_fused, _, small = report["bottlenecks"]
    # already compiled: torch.compile is not recommended again, inductor's fused triton kernels are named
    assert non_fused["fix"].startswith("already compiled") and "compile" not in non_fused.get("fix_config", {})
    assert "triton_" in non_fused["evidence"]
    assert small["fix_config"] == {"batch_size": 64}  # what tune.py kept next on the H200: 45.17% MFU
    assert report["classification_ms"]["unclassified"] == 0 and report["classification_ms"]["by_name"] == 0
