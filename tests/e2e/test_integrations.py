"""Your own training loop, Hugging Face's Trainer and PyTorch Lightning, each through profiler.profile.

F_model by hand for the examples' model (2 layers, 2 heads, n_embd 64, sequence 64, vocab 512, biases):
N = 2 · (12 · 64² + 13 · 64) + 512 · 64 + 2 · 64 = 132,864 (position embeddings left out, tied lm_head in),
per token 6N + 12 · 2 · 2 · 32 · 64 = 895,488, times 8 · 64 tokens = 458,489,856 per step.
"""

import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

import profiler
from model.gpt import GPT, GPTConfig
from profiler.capture.modeltree import describe

EXAMPLE_FLOPS = 458_489_856


@pytest.mark.parametrize("example", ["hf_trainer.py", "lightning_fit.py"])
def test_framework_callbacks_write_the_report_with_f_model_from_the_models_config(example, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / example), str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["mfu"]["flops_per_step"]["analytic"] == EXAMPLE_FLOPS
    source = report["mfu"]["analytic_from"]  # the sequence length the first forward saw, not the config's cap
    assert source.startswith("run metadata (the model's ") and "T = 64 (the first forward's input)" in source
    assert report["source"]["steps"] == [4, 5, 6] and report["ledger"]  # skip 0-1, wait 2, warm up 3
    assert list((tmp_path / "run").glob("events.out.tfevents.*"))  # TensorBoard in the same folder


def test_hugging_face_config_describes_the_model():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=512, n_positions=64, n_embd=64, n_layer=2, n_head=2))
    described = describe(model, 64)
    assert described.params == 132_864 and described.contexts == (64, 64) and described.n_head == 2
    assert described.flops_per_step(8 * 64) == EXAMPLE_FLOPS
    assert describe(torch.nn.Linear(4, 4), 64) is None  # no config: nothing to describe


def test_own_loop_without_a_description_counts_the_first_step(tmp_path):
    """A model whose config says nothing: F_model is three times FlopCounterMode's count of the first step's
    forward, and says so."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = dict(skip_first=1, wait=0, warmup=1, active=2, repeat=1)
    with profiler.profile(tmp_path, model=model, schedule=schedule, tensorboard=False, say=lambda *a: None) as p:
        for _ in range(5):
            model(torch.randn(32, 64)).square().mean().backward()
            opt.step()
            opt.zero_grad()
            p.step()
    report = json.loads((tmp_path / "report.json").read_text())
    # forward 2 · 32 · (64·256 + 256·64); the model's FLOPs are three times that (a backward does twice the
    # forward's work), whatever autograd skipped (the first layer's input gradient)
    forward = 2 * 32 * (64 * 256 + 256 * 64)
    assert report["mfu"]["flops_per_step"]["analytic"] == 3 * forward
    assert report["mfu"]["analytic_from"] == ("run metadata (3 × the first step's forward FLOPs, counted with "
                                              "FlopCounterMode (1 forward pass))")


def test_own_gpt_is_described_by_its_nanogpt_config():
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=64, block_size=64, vocab_size=512, dropout=0.0))
    assert describe(model, 64).flops_per_step(8 * 64) == EXAMPLE_FLOPS
