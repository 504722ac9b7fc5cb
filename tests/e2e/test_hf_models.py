"""The models people train now, built from their configs (random weights, no download) and trained under the API:
a Llama (untied, GQA), a sparse MoE (top 2 of 8), each with and without activation checkpointing.

Hand counts (tests/unit/test_modelflops.py writes N out): the Llama's N = 988,288, so per step of 8 × 128 tokens
F_model = (6 · 988,288 + 12 · 4 · 4 · 32 · 128) · 1,024 = 6,877,347,840. Checkpointing every decoder layer runs
their forward once more in the backward: per token 2 · 724,992 layer weights (the lm_head is not checkpointed)
plus 4 · H · Q · T · L = 4 · 4 · 32 · 128 · 4 attention FLOPs, times 1,024 tokens = 1,753,219,072 recomputed.
"""

import json
from types import SimpleNamespace

import pytest
import torch
from conftest import analyze

import profiler
from profiler.capture.modeltree import describe
from profiler.capture.session import ProfileConfig
from profiler.mfu.modelflops import from_hf_config

transformers = pytest.importorskip("transformers")

BASE = dict(num_hidden_layers=4, hidden_size=128, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=344, vocab_size=2048, max_position_embeddings=4096, tie_word_embeddings=False)
LLAMA_F = 6_877_347_840
RECOMPUTED = (2 * 4 * (128 * 128 + 2 * 128 * 64 + 128 * 128 + 3 * 128 * 344) + 4 * 4 * 32 * 128 * 4) * 1024
SETTINGS = ProfileConfig(skip_first=1, wait=0, warmup=1, active=3, repeat=1, tensorboard=False)


def llama():
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**BASE))


def qwen_moe():
    return transformers.Qwen2MoeForCausalLM(transformers.Qwen2MoeConfig(
        **BASE, moe_intermediate_size=96, num_experts=8, num_experts_per_tok=2, shared_expert_intermediate_size=0))


def train(model, out, checkpointing: bool, steps: int = 6) -> dict:
    """A plain loop wrapped as the README shows: profiler.start, p.step(), p.stop()."""
    torch.manual_seed(0)
    if checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    p = profiler.start(out, model=model, settings=SETTINGS, say=lambda *a: None)
    for _ in range(steps):
        ids = torch.randint(0, 2048, (8, 128))
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
        p.step()
    p.stop()
    return json.loads((out / "report.json").read_text())


def test_the_module_tree_counts_what_the_config_says():
    """N from the live parameters (experts found in the tree, top-k from the router) against the hand-checked
    count from the config's names; T is the sequence trained on, never max_position_embeddings."""
    torch.manual_seed(0)
    for model in (llama(), qwen_moe(), transformers.MixtralForCausalLM(transformers.MixtralConfig(
            **BASE, num_local_experts=8, num_experts_per_tok=2))):
        live, by_hand = describe(model, 128), from_hf_config(model.config.to_dict(), 128)
        assert live.params == by_hand.params and live.contexts == (128,) * 4
    assert describe(llama(), 128).flops_per_step(1024) == LLAMA_F


class Expert(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up, self.down = torch.nn.Linear(16, 32), torch.nn.Linear(32, 16)


class ToyMoE(torch.nn.Module):
    """A family nobody listed: its block holds `experts` and a router with `top_k`, its config only the sizes."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(num_hidden_layers=1, num_attention_heads=2, hidden_size=16)
        self.embed = torch.nn.Embedding(100, 16)
        self.router = torch.nn.Linear(16, 4, bias=False)
        self.router.top_k = 1
        self.experts = torch.nn.ModuleList(Expert() for _ in range(4))
        self.head = torch.nn.Linear(16, 100, bias=False)


def test_a_family_nobody_listed_is_read_from_its_modules():
    expert = 16 * 32 + 32 + 32 * 16 + 16
    described = describe(ToyMoE(), 10)
    assert described.params == 16 * 4 + expert + 16 * 100  # one expert of four, the router, the head; no embedding


@pytest.mark.parametrize("checkpointing", [False, True])
def test_llama_loop_names_recomputation_and_keeps_f_model(checkpointing, tmp_path):
    report = train(llama(), tmp_path / "run", checkpointing)
    mfu, flops = report["mfu"], report["mfu"]["flops_per_step"]
    assert flops["analytic"] == LLAMA_F  # seen at the first forward: T = 128, 1,024 tokens
    assert "T = 128 (the first forward's input)" in mfu["analytic_from"]
    assert flops["forward"] + flops["backward"] == pytest.approx(LLAMA_F, rel=0.01)  # what ran, counted
    causes = {b["cause"]: b for b in report["bottlenecks"]}
    if not checkpointing:
        assert flops["recomputed"] == 0 and "recomputation" not in [e["cause"] for e in report["ledger"]]
        foreign_trace_with_its_config_json(tmp_path)
        return
    assert flops["recomputed"] == RECOMPUTED
    recompute = causes["recomputation"]
    assert recompute["ms"] > 0 and recompute["facts"]["recomputed_gflops"] == pytest.approx(RECOMPUTED / 1e9)
    assert "aten::linear" in recompute["evidence"] and "checkpoint" in recompute["fix"]
    # HFU over MFU by the recomputed share (and nothing else of note: the optimizer runs no matmul)
    assert mfu["hfu"] / mfu["analytic"] == pytest.approx(1 + RECOMPUTED / LLAMA_F, rel=0.01)


def foreign_trace_with_its_config_json(tmp_path):
    """The run's trace without our metadata, as another program would have recorded it: `analyze --model
    config.json --sequence-length 128` gives the same F, the tokens counted at the token embedding."""
    trace = json.loads(next((tmp_path / "run").glob("*.pt.trace.json")).read_text())
    trace.pop("mfu_analyzer")
    (tmp_path / "foreign.json").write_text(json.dumps(trace))
    (tmp_path / "config.json").write_text(transformers.LlamaConfig(**BASE).to_json_string())
    status, _, _ = analyze("analyze", tmp_path / "foreign.json", "--model", tmp_path / "config.json",
                           "--sequence-length", "128", "--json", tmp_path / "r.json", "--no-measure")
    report = json.loads((tmp_path / "r.json").read_text())
    assert status == 0 and report["mfu"]["flops_per_step"]["analytic"] == LLAMA_F
    assert report["mfu"]["analytic_from"].startswith("--model config.json: 6N + 12·L·H·Q·T per token, N = 988,288")
    status, _, stderr = analyze("analyze", tmp_path / "foreign.json", "--model", tmp_path / "config.json")
    assert status == 2
    assert stderr.strip() == "error: --model CONFIG.json needs --sequence-length (the length trained on)"


def test_sparse_moe_counts_its_active_experts(tmp_path):
    model = qwen_moe()
    report = train(model, tmp_path / "run", checkpointing=False, steps=5)
    flops = report["mfu"]["flops_per_step"]
    assert flops["analytic"] == from_hf_config(model.config.to_dict(), 128).flops_per_step(1024)
    # each token runs 2 of 8 experts: what ran (forward and backward) agrees with the analytic count
    assert flops["forward"] + flops["backward"] == pytest.approx(flops["analytic"], rel=0.02)
    assert report["mfu"]["analytic"] <= report["mfu"]["hfu"] * 1.02


class RandomTokens(torch.utils.data.Dataset):
    def __len__(self):
        return 8 * 8

    def __getitem__(self, i):
        ids = torch.randint(0, 2048, (128,), generator=torch.Generator().manual_seed(i))
        return {"input_ids": ids, "labels": ids}


def test_hf_trainer_with_gradient_checkpointing(tmp_path):
    """The Trainer callback, gradient_checkpointing=True: F_model by hand with no tokens given (the first step's
    forwards counted them), recomputation named, and turning it off said in TrainingArguments' words."""
    from profiler.capture.integrations.hf import MfuCallback

    torch.manual_seed(0)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "trainer"), per_device_train_batch_size=8, max_steps=6, save_strategy="no",
        report_to=[], use_cpu=True, dataloader_num_workers=0, gradient_checkpointing=True, logging_steps=6)
    callback = MfuCallback(tmp_path / "run", settings=SETTINGS, say=lambda *a: None)
    transformers.Trainer(model=llama(), args=args, train_dataset=RandomTokens(), callbacks=[callback]).train()
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["mfu"]["flops_per_step"]["analytic"] == LLAMA_F
    assert report["mfu"]["flops_per_step"]["recomputed"] == RECOMPUTED
    recompute = next(b for b in report["bottlenecks"] if b["cause"] == "recomputation")
    assert "TrainingArguments(" in recompute["fix"] and "checkpointing=False" in recompute["fix"]


def test_a_wrong_flops_per_step_teaches_the_peak_cache_nothing(tmp_path, monkeypatch):
    """flops_per_step 5x too high (the issue's Llama with T taken from max_position_embeddings): the counts
    contradict it, the headline stands on them, and no cached rate rises, let alone past the instruction set."""
    from profiler.mfu.cpupeak import cache_entries
    from profiler.settings import ISA_SLACK

    monkeypatch.setenv("MFU_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = llama()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with profiler.profile(tmp_path / "run", model=model, tokens_per_step=1024, flops_per_step=5 * LLAMA_F,
                          settings=SETTINGS, say=lambda *a: None) as p:
        for _ in range(6):
            ids = torch.randint(0, 2048, (8, 128))
            model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
            opt.zero_grad()
            p.step()
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert "model_flops_contradicted" in [w["code"] for w in report["warnings_data"]]
    assert report["mfu"]["flops_per_step"]["analytic"] == pytest.approx(LLAMA_F, rel=0.01)  # 3 x the forward
    _, entries = cache_entries(tmp_path / "cache")
    for entry in entries.values():
        assert all(h["what"] != "raised to a run's own matmul rate" for h in entry.get("history", []))
        for dtype, rate in entry["rates"].items():
            assert rate <= ISA_SLACK * entry.get("isa", {}).get(dtype, float("inf"))
