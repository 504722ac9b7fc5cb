"""The parallelism people train with, on 2 gloo ranks of this CPU (examples/parallel_loop.py under torchrun): each
is named, its communication accounted by phase, and its fix given in its library's own words.

Hand counts (tests/e2e/test_hf_models.py): the Llama's F per step of 8 × 128 tokens is 6,877,347,840. Under FSDP2
each rank runs whole tokens, so each rank's F is that. Under tensor parallelism each MLP's 3 · 128 · 344 weights
are split over 2 ranks: a rank runs 6 · 4 · 3 · 128 · 344 · 1,024 / 2 = 1,623,195,648 FLOPs fewer than the whole
model, and its share of F_model is half of it (the whole job's FLOPs over its 2 devices, as torchtitan counts).
"""

import json
import subprocess
import sys

import pytest
from conftest import ROOT, invariants_hold

LLAMA_F = 6_877_347_840
MLP_HALF = 6 * 4 * 3 * 128 * 344 * 1024 // 2

pytest.importorskip("transformers")


def run(parallelism: str, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp(parallelism) / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(ROOT / "examples" /
           "parallel_loop.py"), str(out), f"--parallelism={parallelism}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DeprecationWarning" not in result.stderr
    assert sorted(p.name.split(".")[0] for p in out.glob("*.pt.trace.json")) == ["rank0", "rank1"]
    return json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def fsdp2(tmp_path_factory):
    return run("fsdp2", tmp_path_factory)


@pytest.fixture(scope="module")
def tensor_parallel(tmp_path_factory):
    return run("tp", tmp_path_factory)


def communication(report: dict) -> dict:
    return next(b for b in report["bottlenecks"] if b["cause"] == "communication")


def test_fsdp2_is_named_and_fixed_in_its_own_words(fsdp2):
    comm = fsdp2["communication"]
    assert comm["parallelism"] == ["FSDP2 (fully_shard)"] and comm["backend"] == "gloo"
    kinds = {(r["phase"], r["kind"]) for r in comm["collectives"]}
    assert {("forward", "all_gather"), ("backward", "all_gather")} <= kinds  # re-gathered for the backward
    assert all(r["bus_gb_per_s"] and r["mb"] > 0 for r in comm["collectives"])
    fix = communication(fsdp2)["fix"]
    assert "set_modules_to_forward_prefetch" in fix and "reshard_after_forward" in fix and "bucket_cap_mb" not in fix
    evidence = communication(fsdp2)["evidence"]
    assert "aten::" not in evidence.split("; parallelism")[0]  # FSDP's copies and views are not collectives
    assert "model.layers.0" in evidence  # the first layer's all-gather, which nothing can prefetch
    for rank in fsdp2["per_rank"]:  # each rank trains whole tokens: the whole model's F, and the counts agree
        flops = rank["mfu"]["flops_per_step"]
        assert flops["analytic"] == LLAMA_F
        assert flops["forward"] + flops["backward"] == pytest.approx(LLAMA_F, rel=0.005)
    invariants_hold(fsdp2)


def test_tensor_parallel_counts_each_matmul_once_at_its_shard(tensor_parallel):
    comm = tensor_parallel["communication"]
    assert comm["parallelism"] == ["tensor parallel (DTensor)"]
    assert {r["kind"] for r in comm["collectives"]} == {"all_reduce"}  # the row-wise down projections'
    for rank in tensor_parallel["per_rank"]:
        flops = rank["mfu"]["flops_per_step"]
        assert flops["analytic"] == LLAMA_F / 2  # the tensor-parallel degree, read from the DTensor mesh
        assert flops["forward"] + flops["backward"] == pytest.approx(LLAMA_F - MLP_HALF, rel=0.005)
        assert "/ 2 (the tensor / context-parallel degree" in rank["mfu"]["analytic_from"]
    fix = communication(tensor_parallel)["fix"]
    assert "sequence parallel" in fix and "async TP" in fix and "bucket_cap_mb" not in fix
    invariants_hold(tensor_parallel)


def test_pipeline_gets_its_bubble(tmp_path_factory):
    report = run("pp", tmp_path_factory)
    comm = report["communication"]
    assert comm["parallelism"] == ["pipeline parallel"] and comm["micro_batches"] == 4
    assert {r["kind"] for r in comm["collectives"]} == {"send_recv"}
    facts = communication(report)["facts"]
    assert facts["bubble_pct"] == pytest.approx(100 * 1 / 5)  # (p − 1) / (m + p − 1), p = 2, m = 4
    # each stage's measured wait: its exposed send / recv, the job's per-rank breakdown
    assert sorted(r["rank"] for r in facts["exposed_by_rank"]) == [0, 1]
    for r in facts["exposed_by_rank"]:
        rank = next(x for x in report["per_rank"] if x["rank"] == r["rank"])
        assert r["ms"] == pytest.approx(rank["breakdown"]["communication"]["ms"]) and r["ms"] > 0
    assert "n_microbatches" in communication(report)["fix"]
    invariants_hold(report)
