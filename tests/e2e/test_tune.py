"""tune.py: the decision logic on a fake trainer (what is kept, rejected and why), and one real short run."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT, TINY
from synth import gpu_steps

from model.configurator import read_config_file
from profiler.pipeline import load_report
from profiler.report.model import to_json
from profiler.settings import Options

sys.path.insert(0, str(ROOT / "scripts"))
import tune  # noqa: E402


def report(mfu: float, fixes: list[tuple[str, dict, float]]) -> dict:
    return {"mfu": {"analytic": mfu}, "bottlenecks": [{"cause": c, "fix_config": f, "what_if_mfu": w}
                                                      for c, f, w in fixes]}


class FakeTuner(tune.Tuner):
    """tokens/s by configuration: num_workers=4 doubles the speed, bfloat16 halves it, compile crashes."""

    def __init__(self, tmp_path):
        super().__init__(None, {"num_workers": 0}, tmp_path, repeats=2, budget=tune.Budget("40"))

    def train(self, config, extra, label):
        self.runs += 1
        self.budget.used += 1
        if config.get("compile"):
            return "torch._dynamo.exc.BackendCompilerFailed: crashed"
        speed = 1000.0 * (2 if config.get("num_workers") == 4 else 1) * (0.5 if config.get("dtype") else 1)
        return {"tokens_per_s": speed, "mfu": speed / 1e5}

    def diagnose(self, config):
        if config.get("num_workers") == 4:
            return report(0.02, [("non_fused", {"compile": True}, 0.05), ("precision", {"dtype": "bfloat16"}, 0.03)])
        return report(0.01, [("io", {"num_workers": 4}, 0.04), ("small_batch", {"batch_size": 32}, 0.0101)])


def test_tune_keeps_what_helps_and_rejects_the_slower_and_the_failing(tmp_path):
    result = FakeTuner(tmp_path).run()
    steps = [(s["cause"], s["kept"], s["reason"].split(":")[0]) for s in result["steps"]]
    assert steps == [("io", True, "+100.0% tokens/s against the baseline (1,000 -> 2,000), noise 3.0%"),
                     ("non_fused", False, "failed"), ("precision", False, "-50.0% tokens/s against the baseline "
                                                      "(2,000 -> 1,000), noise 3.0%")]
    assert result["steps"][1]["reason"] == "failed: torch._dynamo.exc.BackendCompilerFailed: crashed"
    assert result["steps"][2]["reason"].endswith("slower")
    assert result["final_config"] == {"num_workers": 4} and result["final_to_baseline"] == pytest.approx(2.0)
    assert result["steps"][0]["predicted_gain"] == pytest.approx(4.0) and result["steps"][0]["measured_gain"] == 2.0
    for s in result["steps"]:  # never a kept fix that made the run slower
        assert not s["kept"] or s["tokens_per_s"] > s["baseline_tokens_per_s"]


def test_a_fix_that_promises_less_than_the_noise_is_not_tried():
    assert tune.candidates(report(0.01, [("io", {"num_workers": 4}, 0.04)]), {"num_workers": 4}, set()) == []
    found = tune.candidates(report(0.01, [("a", {"x": 1}, 0.02), ("b", {"y": 1}, 0.04)]), {}, set())
    assert [c for c, _, _ in found] == ["b", "a"]  # largest predicted gain first


@pytest.mark.timed
def test_a_real_tune_run_writes_its_table_and_a_config_profile_run_accepts(tmp_path):
    out = tmp_path / "tune"
    args = [a for a in TINY if not a.startswith("--max_iters")] + ["--max_iters=8", "--data_delay=0.004",
                                                                  "--num_workers=0"]
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "tune.py"), *args, "--repeats=1", "--budget=3",
                             f"--tune_out={out}"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads((out / "tune.json").read_text())
    assert {"baseline_tokens_per_s", "final_tokens_per_s", "final_config", "steps"} <= set(data)
    first = data["steps"][0]
    assert first["cause"] == "io" and first["change"] == {"num_workers": 4}
    assert {"change", "predicted_mfu", "measured_mfu", "tokens_per_s", "kept", "reason"} <= set(first)
    assert read_config_file(out / "final_config.py") == data["final_config"]
    assert data["final_config"]["num_workers"] == (4 if first["kept"] else 0)
    assert "| change | predicted MFU |" in (out / "tune.md").read_text()
    assert list(out.glob("events.out.tfevents.*"))


def test_on_a_cpu_that_emulates_bfloat16_tune_takes_float32():
    """The precision rule points a bfloat16 run to float32 where bfloat16 is the slow one; tune takes the change,
    and leaves a time ledger's causes alone (they predict no MFU to measure against)."""
    found = tune.candidates(report(0.01, [("precision", {"dtype": "float32"}, 0.06)]), {"dtype": "bfloat16"}, set())
    assert found == [("precision", {"dtype": "float32"}, 0.06)]
    timed = report(0.01, [("small_batch", {"batch_size": 32}, 0.05)])
    timed["bottlenecks"][0]["what_if_mfu"] = None
    assert tune.candidates(timed, {}, set()) == []


def test_a_second_tune_into_the_same_folder_numbers_its_runs_after_the_first(tmp_path):
    """The third trial of a quiet-machine tune failed with 'run folder .../run018-base already holds files': tune
    had collided with its own earlier runs. Each trial's folder is new."""
    (tmp_path / "run017-candidate").mkdir()
    (tmp_path / "run018-base").mkdir()
    (tmp_path / "notes").mkdir()
    tuner = tune.Tuner(None, {}, tmp_path, 1, tune.Budget("3"))
    assert tuner.runs == 18 and tune.last_run(tmp_path / "absent") == 0


class TightMemoryTuner(FakeTuner):
    """At batch 8 twice the batch does not fit (the diagnosis says so); num_workers=4 runs out of memory in its
    trial; compile would help."""

    def __init__(self, tmp_path):
        super().__init__(tmp_path)
        self.config = {"batch_size": 8}

    def train(self, config, extra, label):
        if config.get("num_workers") == 4 and label == "candidate":
            self.runs += 1
            return "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
        return super().train({k: v for k, v in config.items() if k != "compile"}, extra, label)

    def diagnose(self, config):
        small = {"cause": "small_batch", "fix_config": None, "what_if_mfu": 0.05,
                 "facts": {"fit_factor": 1, "double_peak": 91.5, "memory_capacity": 80.0, "memory_unit": "GB",
                           "memory_capacity_source": "deviceProperties"}}
        found = report(0.01, [("io", {"num_workers": 4}, 0.04), ("non_fused", {"compile": True}, 0.02)])
        return {**found, "bottlenecks": [small, *found["bottlenecks"]]}


def test_tune_skips_a_batch_that_does_not_fit_and_rejects_a_trial_out_of_memory(tmp_path, capsys):
    result = TightMemoryTuner(tmp_path).run()
    steps = [(s["cause"], s["change"], s["kept"], s["reason"].split(":")[0]) for s in result["steps"]]
    assert steps[:2] == [("small_batch", {"batch_size": 16}, False, "skipped"),
                         ("io", {"num_workers": 4}, False, "failed")]
    assert result["steps"][0]["reason"].startswith("skipped: predicted 91.50 GB of 80.00 GB (deviceProperties)")
    assert result["steps"][1]["reason"] == ("failed: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
                                            "2.00 GiB")
    assert steps[2][0] == "non_fused"  # and tune went on to the next fix
    assert "skip small_batch: --batch_size=16 predicted 91.50 GB of 80.00 GB" in capsys.readouterr().out
    assert "| --batch_size=16 (small_batch) | - | - | - | - / - | no | skipped:" in tune.markdown(result)


def test_a_step_is_explained_by_the_diff_of_its_profiled_runs(tmp_path):
    """tune words what each kept or rejected step changed as `python -m profiler diff` finds it: on synthetic
    traces whose aten::add_ got 2 ms slower in every step of 9.9 ms."""
    base, slow = (to_json(load_report(gpu_steps(tmp_path / f"{name}.json", add_extra_us=extra), Options(measure=False)))
                  for name, extra in (("base", 0), ("slow", 2000)))
    line = tune.explanation(base, slow)
    assert line.startswith("step +20.2% [+")
    assert line.endswith(", non_fused +15.2 points (higher), other_compute 1.00 → 3.00 ms, "
                         "aten::add_ [8,4096]x[8,4096] 0.97 → 2.97 ms")
    assert tune.explanation(report(0.01, []), slow) is None  # not a whole report: no diff
