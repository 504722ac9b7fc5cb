import json
import subprocess
import sys

import pytest

from conftest import ROOT, TINY, run_script
from profiler.analyze import analyze_file


def test_logs_like_nanogpt(tiny_run):
    _, result = tiny_run
    lines = [line for line in result.stdout.splitlines() if line.startswith("iter ")]
    assert len(lines) == 8
    assert lines[3].startswith("iter 3: loss ") and "ms, mfu " in lines[3] and "tok/s" in lines[3]
    assert "peak (measured" in result.stdout


def test_summary_says_what_recording_cost(tiny_run):
    """Steps 3-5 are recorded; iterations 1, 2, 6 and 7 are not (0 is the warm-up, left out)."""
    out, result = tiny_run
    summary = json.loads((out / "summary.json").read_text())
    report = json.loads((out / "report.json").read_text())
    assert summary["recorded_step_ms"] == report["step_time_ms"]["mean"] and summary["unrecorded_step_ms"] > 0
    logged = {int(line.split()[1][:-1]): float(line.split("time ")[1].split("ms")[0])
              for line in result.stdout.splitlines() if line.startswith("iter ")}
    others = sorted(logged[i] for i in (1, 2, 6, 7))
    assert summary["unrecorded_step_ms"] == pytest.approx((others[1] + others[2]) / 2, abs=0.01)  # their median
    assert f"against {summary['unrecorded_step_ms']:.2f} ms (median) for the 4 iterations not recorded" in result.stdout


def test_trace_has_metadata_steps_dataloader_and_shapes(tiny_run):
    out, _ = tiny_run
    traces = sorted(out.glob("*.pt.trace.json"))
    assert len(traces) == 1
    trace = json.loads(traces[0].read_text())
    meta = trace["mfu_analyzer"]
    assert meta["model"] == {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32, "vocab_size": 256,
                             "bias": False, "attention": "sdpa"}
    assert meta["tokens_per_step"] == 4 * 32
    n = meta["n_params"]
    assert meta["flops_per_step"] == (6 * n + 12 * 2 * 2 * 16 * 32) * 128
    assert meta["peak"]["source"] == "measured" and meta["peak"]["peak_flops"] >= meta["peak"]["peak_flops_run"] > 0
    events = trace["traceEvents"]
    steps = sorted(e["name"] for e in events if e.get("name", "").startswith("ProfilerStep#"))
    assert steps == ["ProfilerStep#3", "ProfilerStep#4", "ProfilerStep#5"]
    assert sum(e["name"].startswith("enumerate(DataLoader)#") for e in events if "name" in e) >= 3
    mm = [e for e in events if e.get("name") == "aten::mm"]
    assert mm and all(len(e["args"]["Input Dims"]) == 2 for e in mm)


def test_run_folder_loads_in_tensorboard_profiler_plugin(tiny_run):
    out, _ = tiny_run
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "tb_plugin_load.py"), str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    profiles = json.loads(result.stdout.strip().splitlines()[-1])
    assert [p["steps"] for p in profiles] == [["3", "4", "5"]]


def test_without_profiler_writes_no_trace(tmp_path):
    result = run_script(*TINY, "--profile=False", f"--out={tmp_path / 'plain'}")
    assert result.returncode == 0, result.stderr
    assert not list((tmp_path / "plain").glob("*.pt.trace.json"))
    assert "done: " in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--n_layr=2"], "unknown config key: n_layr"),
    (["--batch_size=big"], "batch_size must be int"),
    (["--compile=1"], "compile must be bool"),
    (["--attention=flash"], "attention must be one of sdpa, manual"),
    (["--optimizer_impl=adam"], "optimizer_impl must be one of fused, foreach, loop"),
    (["--dataset=/nonexistent/shakespeare"], "has no train.bin"),
    (["max_iters"], "cannot read config file"),
])
def test_bad_configuration_is_one_line_and_status_2(tmp_path, args, message):
    result = run_script(*args, f"--out={tmp_path / 'x'}", timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr, result.stderr


def test_help_lists_every_key_with_its_default():
    result = run_script("--help")
    assert result.returncode == 0 and not result.stderr
    for line in ("  --n_layer=4", "  --dtype=float32", "  --compile=False", "  --active=4", "  --peak_flops=0.0"):
        assert line in result.stdout.splitlines()


def test_config_file_is_parsed_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "cfg.py").write_text(f"import os\nos.system('touch {marker}')\n")
    result = run_script(str(tmp_path / "cfg.py"), f"--out={tmp_path / 'x'}", timeout=60)
    assert result.returncode == 2 and "only `name = literal` lines" in result.stderr
    assert not marker.exists()
    (tmp_path / "ok.py").write_text("# tiny\nn_layer = 1\nmax_iters = 2\nprofile = False\n")
    result = run_script(str(tmp_path / "ok.py"), "--n_embd=32", "--block_size=16", f"--out={tmp_path / 'y'}")
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "y" / "config.json").read_text())
    assert config["train"]["n_layer"] == 1 and config["train"]["max_iters"] == 2
    assert config["profile"]["profile"] is False


def test_nanogpt_dataset_folder_with_meta_pkl(tmp_path):
    import pickle

    import numpy as np

    folder = tmp_path / "shakespeare_char"
    folder.mkdir()
    np.random.default_rng(0).integers(0, 65, 5000).astype(np.uint16).tofile(folder / "train.bin")
    np.random.default_rng(1).integers(0, 65, 500).astype(np.uint16).tofile(folder / "val.bin")
    (folder / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": 65}))
    result = run_script(f"--dataset={folder}", "--n_layer=1", "--n_embd=32", "--block_size=16", "--max_iters=2",
                        "--profile=False", f"--out={tmp_path / 'r'}")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["vocab_size"] == 65


def test_compiled_model(tmp_path):
    """torch.compile on a CPU: inductor's kernels are in the trace and the breakdown, the matmuls it calls are
    still counted, and the diagnosis does not recommend compiling what is compiled."""
    result = run_script(*TINY, "--compile=True", f"--out={tmp_path}")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    ops = analyze_file(next(tmp_path.glob("*.pt.trace.json"))).ops
    kernels = [s for name, s in ops.items() if "cpp_fused" in name]
    assert kernels and all(s.category == "other_compute" for s in kernels), ops.keys()
    wrappers = [s for name, s in ops.items() if name.startswith("## Call CompiledFxGraph")]
    assert len(wrappers) == 2 and all(s.category == "host_overhead" for s in wrappers)  # forward and backward
    mfu = report["mfu"]
    assert mfu["counted"] == pytest.approx(mfu["analytic"], rel=0.02)
    assert not any(b.get("fix_config", {}).get("compile") for b in report["bottlenecks"])
    [fused] = [b for b in report["bottlenecks"] if b["cause"] == "non_fused"]
    assert "already compiled: 1 torch.compile region(s) per step" in fused["evidence"]
    assert fused["fix"].startswith("already compiled")
