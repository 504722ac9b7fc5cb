"""Your own training loop, Hugging Face's Trainer and PyTorch Lightning, each through profiler.profile.

F_model by hand for the examples' model (2 layers, 2 heads, n_embd 64, sequence 64, vocab 512, biases):
N = 2 · (12 · 64² + 13 · 64) + 512 · 64 + 2 · 64 = 132,864 (position embeddings left out, tied lm_head in),
per token 6N + 12 · 2 · 2 · 32 · 64 = 895,488, times 8 · 64 tokens = 458,489,856 per step.
"""

import json
import subprocess
import sys
import warnings
from types import SimpleNamespace

import pytest
import torch
from conftest import ROOT

import profiler
from model.gpt import GPT, GPTConfig
from profiler.capture import api
from profiler.capture.modeltree import describe
from profiler.capture.session import ProfileConfig

EXAMPLE_FLOPS = 458_489_856


@pytest.mark.parametrize("example", ["hf_trainer.py", "lightning_fit.py"])
def test_framework_callbacks_write_the_report_with_f_model_from_the_models_config(example, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / example), str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "DeprecationWarning" not in result.stderr  # the examples pass settings= and run_config=
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
    settings = ProfileConfig(skip_first=1, wait=0, warmup=1, active=2, repeat=1, tensorboard=False)
    with profiler.profile(tmp_path, model=model, settings=settings, say=lambda *a: None) as p:
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


def test_the_keywords_of_before_still_work_and_warn_at_the_callers_line_with_the_new_form(tmp_path):
    """Issue 49's keywords of before, for a release: each folds into settings / run_config as it did, with one
    DeprecationWarning that names what replaces it, pointing at the line that passed it."""
    with pytest.warns(DeprecationWarning) as caught:
        p = profiler.profile(tmp_path, schedule=dict(skip_first=1, active=2), config={"batch_size": 4},
                             peak_flops=1e12, peak_flops_run=5e11, memory_capacity="24GiB", tensorboard=False)
    advice = sorted(str(w.message).split(": pass ")[1] for w in caught)
    assert advice == ["run_config=", "settings=ProfileConfig(...) (profiler.capture.session)",
                      "settings=ProfileConfig(peak_flops, peak_flops_run, memory_capacity, tensorboard=...)"]
    assert {w.filename for w in caught} == {__file__}
    assert p.settings == ProfileConfig(skip_first=1, active=2, peak_flops=1e12, peak_flops_run=5e11,
                                       memory_capacity="24GiB", tensorboard=False)
    assert p.extra.config == {"batch_size": 4} and p.memory_capacity == 24 * 2**30 and not p.own_log
    given = ProfileConfig(active=3, peak_flops=2e12)  # a ProfileConfig as schedule=; 0 stays "not given"
    with pytest.warns(DeprecationWarning):
        assert profiler.profile(tmp_path, schedule=given, peak_flops=0.0).settings == given
    with pytest.raises(TypeError, match="settings= alone"), pytest.warns(DeprecationWarning):
        profiler.profile(tmp_path, settings=given, schedule=given)
    with pytest.raises(TypeError, match="unexpected keyword argument 'shedule'"):
        profiler.profile(tmp_path, shedule=given)
    with pytest.raises(ValueError, match="active must be at least 1"), pytest.warns(DeprecationWarning):
        profiler.profile(tmp_path, schedule=dict(active=0))


def test_start_takes_the_same_keywords_and_warns_at_its_callers_line(tmp_path, monkeypatch):
    monkeypatch.setattr(api.profile, "__enter__", lambda self: self)  # the keywords, not a profiler session
    monkeypatch.setattr(api.profile, "__exit__", lambda self, *exc: False)
    with pytest.warns(DeprecationWarning, match=r"profile\(config=\) is deprecated.*pass run_config=") as caught:
        p = profiler.start(tmp_path, config={"batch_size": 4})
    p.stop()
    assert [w.filename for w in caught] == [__file__] and p.extra.config == {"batch_size": 4}


def test_the_new_keywords_do_not_warn_and_settings_say_whether_tensorboard_logs(tmp_path):
    profile = profiler.profile  # imported before the filter: a library's own import warnings are not ours
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        p = profile(tmp_path, settings=ProfileConfig(tensorboard=False, memory_capacity="24GiB"),
                    run_config={"batch_size": 4})
        assert profile(tmp_path).own_log  # TensorBoard by default
    assert not p.own_log and p.memory_capacity == 24 * 2**30 and p.extra.config == {"batch_size": 4}
    with pytest.raises(ValueError, match="active must be at least 1"):
        ProfileConfig(active=0)  # checked when made


def test_the_callbacks_pass_the_new_keywords(tmp_path, monkeypatch):
    hf = pytest.importorskip("profiler.capture.integrations.hf")
    lightning = pytest.importorskip("profiler.capture.integrations.lightning")
    monkeypatch.setattr(api.profile, "__enter__", lambda self: self)  # the keywords, not a profiler session
    settings = ProfileConfig(tensorboard=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        on_hf = hf.MfuCallback(tmp_path, settings=settings)
        args = SimpleNamespace(process_index=0, world_size=1, bf16=True, fp16=False, per_device_train_batch_size=8)
        on_hf.on_train_begin(args, SimpleNamespace(is_world_process_zero=True), None)
        on_pl = lightning.MfuCallback(tmp_path, settings=settings)
        trainer = SimpleNamespace(global_rank=0, world_size=1, precision="32-true", accumulate_grad_batches=2,
                                  is_global_zero=True)
        on_pl.on_train_start(trainer, torch.nn.Linear(2, 2))
    assert on_hf.session.settings is settings
    assert on_hf.session.extra.config == {"per_device_train_batch_size": 8, "bf16": True, "fp16": False}
    assert on_pl.session.extra.config == {"precision": "32-true", "accumulate_grad_batches": 2}


def test_a_callback_given_the_old_keywords_warns_at_the_line_that_made_it(tmp_path, monkeypatch):
    hf = pytest.importorskip("profiler.capture.integrations.hf")
    monkeypatch.setattr(api.profile, "__enter__", lambda self: self)
    with pytest.warns(DeprecationWarning, match=r"profile\(schedule=\) is deprecated") as said:
        callback = hf.MfuCallback(tmp_path, schedule={"active": 2})  # the trainer starts it later, elsewhere
    assert said[0].filename == __file__  # Python's default filters show a warning that points at the user's line
    args = SimpleNamespace(process_index=0, world_size=1, bf16=False, fp16=False)
    callback.on_train_begin(args, SimpleNamespace(is_world_process_zero=True), None)
    assert callback.session.settings.active == 2
