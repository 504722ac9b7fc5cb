import json
import statistics
import subprocess
import sys

import msgspec
import pytest
from conftest import ROOT, SCRIPT, TINY, run_script

from profiler.analysis.per_file import analyze_file
from profiler.analysis.records import by_name, merged
from profiler.trace.metadata import RunMetadata


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
    low, high = statistics.quantiles(others, n=10)[::8]  # their 10th and 90th percentiles
    assert summary["unrecorded_step_ms_p10"] == pytest.approx(low, abs=0.01)
    assert summary["unrecorded_step_ms_p90"] == pytest.approx(high, abs=0.01)
    assert (f"against {summary['unrecorded_step_ms']:.2f} ms (median; 10-90%: {summary['unrecorded_step_ms_p10']:.2f}-"
            f"{summary['unrecorded_step_ms_p90']:.2f}) for the 4 iterations not recorded") in result.stdout
    # recording's own cost, measured before the run, taken out: the ops the trace recorded per step x the cost
    cost = report["profiler_cost"]
    trace = json.loads(next(out.glob("*.pt.trace.json")).read_text())
    measured = trace["mfu_analyzer"]["recording_cost_us_per_op"]
    assert measured >= 0  # a time difference: on a busy machine the profiled loop can even come out faster
    if measured == 0:  # then nothing is taken out, and nothing said
        assert cost is None and "without the profiler's own cost" not in result.stdout
        return
    recorded_ops = sum(1 for e in trace["traceEvents"] if e.get("ph") == "X" and e.get("cat") == "cpu_op")
    assert cost["us_per_op"] == measured
    assert 0.9 * recorded_ops / 3 < cost["ops_per_step"] <= recorded_ops / 3  # three steps, less what lies between
    assert cost["ms_per_step"] == pytest.approx(cost["us_per_op"] * cost["ops_per_step"] / 1000)
    without = summary["recorded_step_ms_without_profiler"]
    assert without == pytest.approx(summary["recorded_step_ms"] - cost["ms_per_step"])
    assert f"without the profiler's own cost ({cost['ms_per_step']:.2f} ms/step" in result.stdout


def test_trace_has_metadata_steps_dataloader_and_shapes(tiny_run):
    out, _ = tiny_run
    traces = sorted(out.glob("*.pt.trace.json"))
    assert len(traces) == 1
    trace = json.loads(traces[0].read_text())
    meta = trace["mfu_analyzer"]
    assert set(meta) <= set(RunMetadata.__struct_fields__)  # every key the script writes is one the analyzer reads
    assert msgspec.json.decode(json.dumps(meta), type=RunMetadata).as_json() == meta  # and reads back as written
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
    (["--dataset=/nonexistent/shakespeare"], "no train.bin in /nonexistent/shakespeare"),
    (["max_iters"], "cannot read config file"),
])
def test_bad_configuration_is_one_line_and_status_2(tmp_path, args, message):
    result = run_script(*args, f"--out={tmp_path / 'x'}", timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr, result.stderr


def test_help_lists_every_key_with_its_default():
    result = run_script("--help")
    assert result.returncode == 0 and not result.stderr
    for line in ("  --n_layer=4", "  --dtype=float32  (float32 | bfloat16)", "  --compile=False", "  --active=4",
                 "  --attention=sdpa  (sdpa | manual)", "  --peak_flops=0.0"):
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
    ops = merged([analyze_file(next(tmp_path.glob("*.pt.trace.json"))).ops], by_name)
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


NANOGPT_SHAKESPEARE_CHAR = """# nanoGPT's config/train_shakespeare_char.py: every key and value as it ships
out_dir = 'out-shakespeare-char'
eval_interval = 250
eval_iters = 200
log_interval = 10
always_save_checkpoint = False
wandb_log = False
wandb_project = 'shakespeare-char'
wandb_run_name = 'mini-gpt'
dataset = 'shakespeare_char'
gradient_accumulation_steps = 1
batch_size = 64
block_size = 256
n_layer = 6
n_head = 6
n_embd = 384
dropout = 0.2
learning_rate = 1e-3
max_iters = 5000
lr_decay_iters = 5000
min_lr = 1e-4
beta2 = 0.99
warmup_iters = 100
"""


def test_nanogpt_config_file_runs_as_it_is_with_its_data_folder(tmp_path):
    """Run from a folder holding data/shakespeare_char as nanoGPT's prepare.py leaves it (train.bin, val.bin,
    meta.pkl), shrunk by --key=value overrides as nanoGPT allows. Evaluation every 3 iterations is held back
    while the profiler records steps 3 and 4, so it runs at 0, 5, 6 and 9."""
    import pickle

    import numpy as np

    folder = tmp_path / "data" / "shakespeare_char"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 20_000), ("val", 4_000)):
        rng.integers(0, 65, n, dtype=np.uint16).tofile(folder / f"{split}.bin")
    (folder / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": 65, "itos": {}, "stoi": {}}))
    (tmp_path / "train_shakespeare_char.py").write_text(NANOGPT_SHAKESPEARE_CHAR)
    small = ["--max_iters=10", "--eval_interval=3", "--eval_iters=2", "--n_layer=1", "--n_head=2", "--n_embd=32",
             "--block_size=32", "--batch_size=4", "--lr_decay_iters=10", "--warmup_iters=2", "--log_interval=1",
             "--skip_first=1", "--wait=1", "--warmup=1", "--active=2", "--repeat=1"]
    result = subprocess.run([sys.executable, str(SCRIPT), "train_shakespeare_char.py", *small], capture_output=True,
                            text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert "ignored: wandb_log, wandb_project, wandb_run_name (this project logs to TensorBoard in the run folder, " \
           "not wandb)" in lines
    assert [line.split(":")[0] for line in lines if line.startswith("step ")] == ["step 0", "step 5", "step 6",
                                                                                   "step 9"]
    run = tmp_path / "out-shakespeare-char"
    config = json.loads((run / "config.json").read_text())["train"]
    assert config["vocab_size"] == 65 and config["dropout"] == 0.2 and config["always_save_checkpoint"] is False
    report = json.loads((run / "report.json").read_text())
    assert report["source"]["steps"] == [3, 4]


@pytest.mark.parametrize("args, message", [
    (["--batchsize=4"], "unknown config key: batchsize (did you mean batch_size?)"),
    (["--init_from=gpt2-xl"], "init_from='gpt2-xl' is not implemented"),
    (["--dataset=shakespeare_char"], "python data/shakespeare_char/prepare.py"),
])
def test_nanogpt_keys_not_implemented_or_mistyped_say_so(tmp_path, args, message):
    result = run_script(*args, f"--out={tmp_path / 'x'}", timeout=60)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and message in result.stderr


def test_values_are_literals_or_arithmetic_never_code(tmp_path):
    from model.configurator import ConfigError, parse_literal, read_config_file

    assert [parse_literal(t) for t in ("4 * 2", "1e-3 / 10", "5 * 8", "-2", "bfloat16")] == [8, 1e-4, 40, -2,
                                                                                             "bfloat16"]
    (tmp_path / "cfg.py").write_text("batch_size = 4 * 2\nmin_lr = 1e-3 / 10\ngradient_accumulation_steps = 5 * 8\n")
    assert read_config_file(tmp_path / "cfg.py") == {"batch_size": 8, "min_lr": 1e-4,
                                                      "gradient_accumulation_steps": 40}
    (tmp_path / "bad.py").write_text("n_layer = __import__('os').getpid()\n")
    with pytest.raises(ConfigError, match="not a literal or arithmetic on literals"):
        read_config_file(tmp_path / "bad.py")
    (tmp_path / "huge.py").write_text("max_iters = 10 ** 10 ** 10\n")
    with pytest.raises(ConfigError, match="exponent too large"):
        read_config_file(tmp_path / "huge.py")
