"""`python -m profiler diff` on synthetic traces whose answer is known: an op made 2 ms slower in every step, a new
op, a changed shape, a trace against itself, one step per side, other devices; and the gate's exit codes."""

import json

import msgspec
import pytest
from conftest import shared_trace
from synth import ADD, gpu_steps

from profiler.__main__ import main
from profiler.diff.compare import diff_reports, regressed
from profiler.diff.render import diff_markdown, diff_text
from profiler.pipeline import load_report
from profiler.report.model import to_json
from profiler.settings import Options


def diff_of(tmp_path, a_kwargs, b_kwargs):
    options = Options(measure=False)
    a = load_report(gpu_steps(tmp_path / "a.json", **a_kwargs), options)
    b = load_report(gpu_steps(tmp_path / "b.json", **b_kwargs), options)
    return diff_reports(a, b)


def test_an_op_2_ms_slower_in_every_step(tmp_path):
    d = diff_of(tmp_path, {}, {"add_extra_us": 2000})
    assert d.verdict == "slower" and d.unit == "mfu" and not d.notes
    assert d.step_time.change == pytest.approx(2.0, abs=0.01)  # every step got 2,000 µs longer
    assert d.step_time.interval[0] > 0 and d.step_time.interval_pct[0] > 0
    top = d.ops[0]
    assert (top.name, top.status, top.category) == ("aten::add_", "changed", "other_compute")
    assert (top.ms_a, top.ms_b) == pytest.approx((1.0 - 0.027, 3.0 - 0.027), abs=0.005)  # mean jitter 27 µs
    assert d.causes[0].cause == "non_fused" and d.causes[0].points.verdict == "higher"
    assert d.causes[0].ops[0].name == "aten::add_"
    assert d.kernels[0].name == ADD and d.kernels[0].change_ms == pytest.approx(2.0, abs=1e-6)
    assert regressed(d, 5.0) and not regressed(d, 90.0)


def test_a_new_op(tmp_path):
    d = diff_of(tmp_path, {}, {"gelu": True})
    new = [o for o in d.ops if o.status == "new"]
    assert [(o.name, o.shapes, o.ms_b, o.calls_b) for o in new] == [("aten::gelu", "[8,4096]", 0.5, 1.0)]
    assert "aten::gelu [8,4096] (new): 0.00 → 0.50 ms" in diff_text(d)
    back = diff_of(tmp_path, {"gelu": True}, {})
    assert [(o.name, o.status, o.ms_a) for o in back.ops if o.status != "changed"] == [("aten::gelu", "removed", 0.5)]


def test_a_changed_shape(tmp_path):
    d = diff_of(tmp_path, {}, {"m": 32})
    reshaped = [o for o in d.ops if o.status == "reshaped"]
    assert {o.name for o in reshaped} == {"aten::mm", "aten::add_"}
    mm = next(o for o in reshaped if o.name == "aten::mm")
    assert (mm.shapes_a, mm.shapes) == ("[8,1024]x[1024,4096]", "[32,1024]x[1024,4096]")
    assert "aten::mm [8,1024]x[1024,4096] → [32,1024]x[1024,4096]" in diff_text(d)
    assert not [o for o in d.ops if o.status in ("new", "removed")]
    assert {"key": "dtype"} not in [{"key": s.key} for s in d.setup]  # nothing in the set-up says so: same trace


def test_the_same_trace_against_itself(tmp_path):
    d = diff_of(tmp_path, {}, {})
    assert d.verdict == "no change" and d.step_time.change == 0.0
    low, high = d.step_time.interval
    assert low < 0 < high  # the steps' own spread, around no change
    assert all(c.points.change == 0.0 and c.points.verdict == "no change" for c in d.causes)
    assert d.ops == [] and d.kernels == [] and d.setup == []
    again = diff_reports(*[load_report(tmp_path / "a.json", Options(measure=False))] * 2)
    assert again.step_time == d.step_time and again.causes == d.causes  # seeded: the same intervals every time


def test_one_step_per_side_gives_no_interval(tmp_path):
    d = diff_of(tmp_path, {"steps": 1}, {"steps": 1, "add_extra_us": 2000})
    assert d.verdict == "no interval" and d.step_time.interval is None
    assert any("no interval can be formed" in n for n in d.notes)
    assert not regressed(d, 0.0)
    assert "no verdict (no interval)" in diff_text(d)


def test_other_devices_compare_step_time_and_the_time_ledger(tmp_path):
    d = diff_of(tmp_path, {}, {"device": "NVIDIA A100-SXM4-80GB"})
    assert d.notes[0].startswith("the devices differ (NVIDIA H100 80GB HBM3 against NVIDIA A100-SXM4-80GB)")
    assert d.unit == "step_time" and d.mfu is None
    causes = {c.cause: c.points for c in d.causes}
    assert "useful" in causes and "matmul_efficiency" not in causes
    assert sum(p.a for p in causes.values()) == pytest.approx(100.0)  # an MFU ledger in points of the step
    assert [(s.key, s.a, s.b) for s in d.setup][:1] == [("device", "NVIDIA H100 80GB HBM3 (cuda)",
                                                          "NVIDIA A100-SXM4-80GB (cuda)")]


def test_markdown_is_short_with_the_full_table_collapsed(tmp_path):
    text = diff_markdown(diff_of(tmp_path, {}, {"add_extra_us": 2000, "gelu": True}))
    lines = text.splitlines()
    assert len(lines) < 60 and lines[0].startswith("### MFU diff: B is slower: step")
    assert "<details>" in text and text.rstrip().endswith("</details>")


def test_the_gate_exit_codes(tmp_path, capsys):
    a = gpu_steps(tmp_path / "a.json")
    slow = gpu_steps(tmp_path / "slow.json", add_extra_us=2000)
    out = tmp_path / "d.json"
    assert main(["diff", str(a), str(slow), "--fail-if-slower=5", "--no-measure", f"--json={out}"]) == 1
    assert "regression: B's step is" in capsys.readouterr().err
    data = json.loads(out.read_text())
    assert data["schema"] == "mfu-diff/1" and data["verdict"] == "slower"
    assert main(["diff", str(a), str(slow), "--fail-if-slower=90", "--no-measure", "--quiet"]) == 0
    assert main(["compare", str(slow), str(a), "--fail-if-slower=0", "--no-measure", "--quiet"]) == 0  # faster
    assert main(["diff", str(a), str(a), "--fail-if-slower=0", "--no-measure", "--quiet"]) == 0
    assert main(["diff", str(a), str(tmp_path / "missing.json"), "--no-measure"]) == 2
    assert capsys.readouterr().err.count("\n") == 1  # one line


def test_resnet50_num_workers_0_against_4_moves_data_loading():
    """The kineto samples: the same ResNet50 with num_workers=0, then 4 (../shared/traces/README.md: DataLoader
    33.37% of the step, then 0.84%)."""
    options = Options(measure=False)
    d = diff_reports(load_report(shared_trace("tbplugin_resnet50_nw0"), options),
                     load_report(shared_trace("tbplugin_resnet50_nw4"), options))
    top = d.causes[0]
    assert top.cause == "io" and top.points.verdict == "lower"
    assert (top.points.a, top.points.b) == pytest.approx((33.37, 0.84), abs=0.01)
    assert top.points.interval[1] < 0  # the interval excludes zero
    loading = d.breakdown["data_loading"]
    assert loading.interval[1] < 0 and loading.change == pytest.approx(-58.08, abs=0.01)
    assert d.verdict == "faster" and d.step_time.interval[1] < 0
    assert (d.a.samples, d.b.samples) == (6, 6)


def test_a_report_saved_before_the_op_table_compares_no_ops(tmp_path):
    options = Options(measure=False)
    a = load_report(gpu_steps(tmp_path / "a.json"), options)
    old = msgspec.structs.replace(a, ops=[], kernels=[],
                                  per_step=[msgspec.structs.replace(s, ledger={}) for s in a.per_step])
    d = diff_reports(old, a)
    assert d.ops == [] and d.kernels == [] and any("saved before it had one" in n for n in d.notes)
    assert d.step_time.interval and all(c.points.interval is None for c in d.causes)  # no per-step ledger in A
    assert d.verdict == "no change"


def test_a_report_saved_before_the_unrecorded_category_compares(tmp_path):
    """A report saved before the breakdown had `unrecorded` (read back from its JSON) against one made now."""
    options = Options(measure=False)
    a = load_report(gpu_steps(tmp_path / "a.json"), options)
    data = to_json(a)
    del data["breakdown"]["unrecorded"], data["health"]
    for row in data["per_step"]:
        del row["unrecorded"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = load_report(tmp_path / "old.json", options)
    d = diff_reports(old, a)
    assert old.health is None and d.breakdown["unrecorded"].change == 0.0 and d.verdict == "no change"
