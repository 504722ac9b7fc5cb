"""The API around a user's own loop in nanoGPT's shape (nanogpt_shaped_loop.py): the profiler changes nothing
the loop computes, fixes come in the user's own keys, the optimizer evidence names what ran, and the mistakes a
user makes get a hint that fits."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, analyze

LOOP = Path(__file__).with_name("nanogpt_shaped_loop.py")


def run_loop(out: Path, *args: str, cache: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, **({"MFU_CACHE_DIR": str(cache)} if cache else {}))
    result = subprocess.run([sys.executable, str(LOOP), f"--out_dir={out}", *args], capture_output=True, text=True,
                            timeout=300, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    return result


def losses(result: subprocess.CompletedProcess) -> list[str]:
    return re.findall(r"^iter \d+: loss (\S+)$", result.stdout, re.M)


@pytest.fixture(scope="module")
def wrapped(tmp_path_factory):
    """The loop unwrapped, wrapped with a cold cache (the peak and bandwidth measured in the run), and wrapped
    in profiler.start / p.stop() with the cache warm."""
    base = tmp_path_factory.mktemp("loop")
    return {"none": run_loop(base / "none", "--wrap=none"),
            "with": run_loop(base / "with", "--wrap=with", cache=base / "cold-cache"),
            "start": run_loop(base / "start", "--wrap=start"), "dir": base}


def test_the_profiler_changes_no_loss_with_a_cold_cache_or_a_warm_one(wrapped):
    plain = losses(wrapped["none"])
    assert len(plain) == 15 and plain == losses(wrapped["with"]) == losses(wrapped["start"])
    # and the terminal holds our lines only: Kineto's own (USDT: ... profiler_start) are kept off it
    assert not any("USDT:" in r.stdout + r.stderr for r in (wrapped["with"], wrapped["start"]))
    # settings= and run_config=: no DeprecationWarning, which Python shows where it points into the user's script
    assert not any("DeprecationWarning" in r.stderr for r in (wrapped["with"], wrapped["start"]))


def test_f_model_is_nanogpts_estimate_mfu_count_to_the_flop(wrapped):
    """The loop hands over its GPT: F is nanoGPT's estimate_mfu count, 6N + 12·L·H·Q·T per token (T the
    block_size it trains at), times the tokens per iteration."""
    from model.gpt import GPT, GPTConfig

    # the loop's defaults: batch_size 4, block_size 32, vocab 256, 2 layers, 2 heads, n_embd 32, no biases
    n = GPT(GPTConfig(block_size=32, vocab_size=256, n_layer=2, n_head=2, n_embd=32, bias=False)).get_num_params()
    per_token = 6 * n + 12 * 2 * 2 * 16 * 32
    for wrap in ("with", "start"):
        report = json.loads((wrapped["dir"] / wrap / "report.json").read_text())
        assert report["mfu"]["flops_per_step"]["analytic"] == per_token * 4 * 32


@pytest.mark.timed
def test_fixes_name_only_keys_the_users_config_has(wrapped):
    report = json.loads((wrapped["dir"] / "with" / "report.json").read_text())
    config_keys = {"batch_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "learning_rate",
                   "max_iters", "grad_clip", "dtype", "compile", "out_dir", "wrap", "pass_config", "call_step", "stop"}
    changes = [b for b in report["bottlenecks"] if b.get("fix_config")]
    assert all(set(b["fix_config"]) <= config_keys and b["fix_form"] == "--key=value" for b in changes)
    # small_batch, where the run's timing makes it a bottleneck (a loaded machine can give its points to the
    # for-loop AdamW), changes the user's own batch_size
    assert all(set(b.get("fix_config", {})) == {"batch_size"} for b in report["bottlenecks"]
               if b["cause"] == "small_batch")
    non_fused = next(b for b in report["bottlenecks"] if b["cause"] == "non_fused")
    assert "fix_config" not in non_fused  # its fixes (SDPA, a fused AdamW) are code: the script has no such key
    assert "AdamW(..., fused=True)" in non_fused["fix"]


def test_the_optimizer_evidence_names_the_for_loop_adamw_not_clip_grad_norms_foreach_ops(wrapped):
    report = json.loads((wrapped["dir"] / "with" / "report.json").read_text())
    evidence = next(b for b in report["bottlenecks"] if b["cause"] == "non_fused")["evidence"]
    loop = re.search(r"per-parameter AdamW loop: (\d+) ops per AdamW\.step \(ops: ([^)]*)\)", evidence)
    assert loop and "lerp_" in loop.group(2) and "foreach" not in evidence.replace("no _foreach_", "")


@pytest.mark.timed
def test_precision_follows_the_shapes_timed_here(wrapped):
    """The API's run is recorded here: precision is what its shapes' timing says (0 where float32 is the fastest
    at them), never the 2048-cube peaks' ceiling. Read from the facts of the causes that quote it (precision's,
    and matmul_efficiency's where precision took none), whichever the run's timing made bottlenecks."""
    report = json.loads((wrapped["dir"] / "with" / "report.json").read_text())
    quoting = [b["facts"] for b in report["bottlenecks"] if "measured_by" in b["facts"]]
    assert all(f["measured_by"] == "shape_timing" for f in quoting)
    points = {e["cause"]: e["points"] for e in report["ledger"]}
    assert quoting or max(points["precision"], points["matmul_efficiency"]) < 1  # 1: the bottleneck threshold
    for facts in quoting:
        faster = facts["timed_fastest"] != facts["timed_run_dtype"]
        assert (points["precision"] > 0) == faster and (facts["timed_saving_pct"] > 0) == faster


def test_the_start_form_reports_at_exit_without_stop(tmp_path):
    result = run_loop(tmp_path / "run", "--wrap=start", "--stop=False", "--max_iters=9")
    assert (tmp_path / "run" / "report.json").is_file() and "MFU ledger" in result.stdout
    assert result.stdout.index("final loss") < result.stdout.index("MFU ledger")  # written at exit


def test_a_forgotten_step_is_named(tmp_path):
    result = run_loop(tmp_path / "run", "--wrap=with", "--call_step=False", "--max_iters=4")
    assert "no report: p.step() was never called" in result.stdout
    assert "run more steps than the schedule skips" not in result.stdout


def test_a_folder_holding_a_report_says_so_and_the_report_is_shown(wrapped, tmp_path):
    (tmp_path / "report.json").write_text((wrapped["dir"] / "with" / "report.json").read_text())
    status, out, err = analyze("analyze", tmp_path)
    assert status == 2 and err.strip() == (
        f"error: {tmp_path}: holds a saved report (report.json), no traces: `python -m profiler analyze "
        f"{tmp_path / 'report.json'}` prints it, `tensorboard --logdir={tmp_path}` shows it in the MFU tab")
    status, out, err = analyze("analyze", tmp_path / "report.json")
    assert status == 0 and out.startswith("trace: ") and "MFU ledger" in out
