"""Bad traces, interrupted runs and hostile input: one clear line or a correct report with warnings,
never a traceback; nothing the user had is lost."""

import copy
import gzip
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ROOT, SCRIPT, TINY, analyze, invariants_hold, run_script
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler.pipeline import analyze_path
from profiler.settings import Options
from profiler.trace.errors import TraceError

CORPUS = ROOT / "tests" / "bad_traces"
# file: (exit status, what stderr (status 2) or a warning (status 0) must say)
EXPECTED = {
    "empty.json": (2, "empty file"),
    "not_json.json": (2, "not valid JSON"),
    "truncated.json": (0, "the file ends inside traceEvents (cut short, or damaged after byte 301), after 2 "
                          "events (352 bytes read)"),
    "not_gzip.json.gz": (2, "is not gzip data"),
    "array.json": (2, "not a Kineto trace (none of its 3 events"),
    "no_trace_events.json": (2, "not a Kineto trace"),
    "events_not_a_list.json": (2, "not a Kineto trace"),
    "no_complete_events.json": (2, "no complete ('X') events"),
    "deeply_nested.json": (2, "not a Kineto trace"),
    "nested_in_events.json": (2, "nested too deeply"),
    "missing_fields.json": (0, "2 complete events without a usable ts or dur"),
    "timestamp_far_off.json": (0, "1 complete events without a usable ts or dur (missing, not finite, or more than "
                                  "a day from the others) were skipped"),
    "only_negative_duration.json": (2, "no step with a duration: nothing to analyse"),
    "wrong_types.json": (0, "3 events with fields of the wrong type were skipped"),
    "negative_durations.json": (0, "1 events with a negative duration were given duration 0"),
    "duplicate_steps.json": (0, "repeat a step number"),
    "no_steps.json": (0, "no ProfilerStep markers"),
    "unknown_categories.json": (0, "1 events with fields of the wrong type were skipped"),
}


def test_the_corpus_is_complete():
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_trace(name, tmp_path):
    status, stdout, stderr = analyze("analyze", CORPUS / name, "--json", tmp_path / "r.json", "--peak-flops=1e12")
    expected_status, message = EXPECTED[name]
    assert status == expected_status, stderr
    assert "Traceback" not in stdout + stderr
    if status == 2:
        assert stderr.startswith("error: ") and stderr.count("\n") == 1 and message in stderr
        assert not (tmp_path / "r.json").exists()
    else:
        report = json.loads((tmp_path / "r.json").read_text())
        assert any(message in w for w in report["warnings"]), report["warnings"]
        assert sum(b["fraction"] for b in report["breakdown"].values()) == pytest.approx(1, abs=1e-6)


def test_empty_folder_and_folder_mixing_runs(tiny_run, tmp_path):
    (tmp_path / "empty").mkdir()
    status, _, stderr = analyze("analyze", tmp_path / "empty")
    assert status == 2 and "no trace files" in stderr
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    trace = json.loads(next(tiny_run[0].glob("*.pt.trace.json")).read_text())
    (mixed / "a.pt.trace.json").write_text(json.dumps(trace))
    trace["mfu_analyzer"]["model"]["n_layer"] = 12
    (mixed / "b.pt.trace.json").write_text(json.dumps(trace))
    status, _, stderr = analyze("analyze", mixed)
    assert status == 2 and "mixes traces of 2 different runs" in stderr and stderr.count("\n") == 1


H200_TRACE = json.loads(gzip.decompress((ROOT / "tests" / "fixtures" / "h200_gpt_bf16_compiled.pt.trace.json.gz")
                                        .read_bytes()))
JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
                        st.text(max_size=8), st.lists(st.integers(), max_size=3), st.just({}))
FIELDS = ["ph", "cat", "name", "pid", "tid", "ts", "dur", "args"]


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_traces_give_a_report_or_one_clear_error(data):
    """Drop, duplicate and damage events of a real GPU trace (one cycle of our H200 run), or cut its bytes."""
    original = H200_TRACE
    trace = copy.deepcopy(original)
    events = trace["traceEvents"]
    n = len(events)
    for i in sorted(data.draw(st.lists(st.integers(0, n - 1), max_size=30, unique=True)), reverse=True):
        del events[i]
    for _ in range(data.draw(st.integers(0, 20))):
        if events:
            event = events[data.draw(st.integers(0, len(events) - 1))]
            event[data.draw(st.sampled_from(FIELDS))] = data.draw(JSON_VALUES)
    events += [copy.deepcopy(e) for e in data.draw(st.lists(st.sampled_from(events), max_size=5))] if events else []
    raw = json.dumps(trace).encode()
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "damaged.json"
        path.write_bytes(raw)
        try:
            report = analyze_path(path, Options(peak_flops=1e12))
        except TraceError as e:
            assert str(e) and "\n" not in str(e)
            return
    assert all(b["ms"] >= -1e-9 for b in report["breakdown"].values())
    assert report["step_time_ms"]["mean"] > 0
    invariants_hold(report, ledger_required=False)


@pytest.mark.parametrize("sig, message", [(signal.SIGTERM, "stopped by SIGTERM"),
                                          (signal.SIGINT, "interrupted at iter")])
def test_sigterm_or_ctrl_c_keep_finished_cycles_and_report_them(tmp_path, sig, message):
    out = tmp_path / "run"
    args = [*TINY, "--max_iters=100000", "--repeat=0", f"--out={out}"]
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    deadline = time.monotonic() + 120
    while not list(out.glob("*.pt.trace.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, stderr[-3000:]
    assert stderr.strip().splitlines()[-1].startswith(f"stopped: {message}")
    assert "reporting the" in stdout and "Traceback" not in stderr
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["steps"] and len(list(out.glob("*.pt.trace.json"))) >= 1
    from model.train import load_checkpoint

    model, checkpoint = load_checkpoint(out / "ckpt.pt")  # torch.load(weights_only=True)
    assert checkpoint["iter_num"] > 0 and model.config.n_layer == 2


def test_a_diverging_loss_stops_the_run_without_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    result = run_script(*TINY, "--learning_rate=1e6", "--grad_clip=0.0", "--warmup_iters=0", f"--out={out}")
    assert result.returncode == 1
    assert "stopped: loss is nan at iter" in result.stderr and "training diverged" in result.stderr
    assert not (out / "ckpt.pt").exists()


def test_a_run_folder_is_not_overwritten_without_overwrite(tiny_run, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "old.pt.trace.json").write_text("{}")
    result = run_script(*TINY, "--profile=False", f"--out={out}", timeout=120)
    assert result.returncode == 2 and "already holds files" in result.stderr
    assert (out / "old.pt.trace.json").read_text() == "{}"
    result = run_script(*TINY, "--overwrite=True", f"--out={out}")
    assert result.returncode == 0, result.stderr
    assert (out / "notes.txt").read_text() == "mine" and not (out / "old.pt.trace.json").exists()
    assert len(list(out.glob("*.pt.trace.json"))) == 1
