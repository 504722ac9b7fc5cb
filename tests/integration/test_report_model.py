"""The typed report: a report made now and the same report read back from disk are one value of one type, and
every writer renders both alike."""

import json

import msgspec
import pytest
from synth import kernel, launch, op, step, write

from profiler.diff.compare import diff_reports
from profiler.pipeline import analyze_path, load_report
from profiler.report import model
from profiler.report.document import markdown, write_reports
from profiler.report.model import Report, to_json
from profiler.report.schema import saved_report
from profiler.report.terminal import summary
from profiler.settings import Options
from profiler.trace.classify import CATEGORIES
from profiler.trace.errors import TraceError

MM = {"Input Dims": [[64, 64], [64, 64]], "Input type": ["c10::BFloat16", "c10::BFloat16"]}


def two_rank_job(tmp_path):
    for rank, kernel_us in ((0, 400), (1, 800)):
        events = [step(1, 0, 1000), op("aten::mm", 0, 100, **MM), launch(10, 5, 1),
                  kernel("nvjet_tst", 100, kernel_us, 1)]
        write(tmp_path / f"rank{rank}.pt.trace.json", events, distributedInfo={"rank": rank, "world_size": 2})
    return tmp_path


def test_a_report_read_back_is_the_report_written(tmp_path):
    report = load_report(two_rank_job(tmp_path), Options())
    assert isinstance(report, Report) and len(report.per_rank) == 2 and report.job_aggregation
    (tmp_path / "out").mkdir()
    write_reports(report, tmp_path / "out" / "report.json", None, None)
    back = saved_report(tmp_path / "out" / "report.json")
    assert back == report
    assert markdown(back) == markdown(report) and summary(back) == summary(report)
    same = diff_reports(report, back)  # every figure the same; one step per side: no interval
    assert same.step_time.change == 0 and all(c.points.change == 0 for c in same.causes) and same.causes
    assert (same.ops, same.setup, same.verdict) == ([], [], "no interval")
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    # a reader knows it by its opening
    assert list(data)[:5] == ["schema", "source", "device", "health", "job_aggregation"]
    assert data == to_json(report) == analyze_path(tmp_path, Options())


def test_fields_left_out_where_they_do_not_apply():
    """A ledger of MFU points has no what-ifs of a step time and no ledger_unit; a single trace no per_rank."""
    data = to_json(msgspec.convert({
        "source": {"paths": ["t.json"], "ranks": [0], "steps": [1]},
        "device": {"name": None, "kind": "cpu", "dtype": None, "peak_flops": None, "peak_flops_run": None,
                   "peak_source": None},
        "step_time_ms": {"mean": 1.0, "min": 1.0, "max": 1.0}, "device_utilization": None,
        "mfu": {"analytic": None, "counted": None, "flops_per_step": {"analytic": None, "counted": 0.0}},
        "breakdown": {}, "ledger": [{"cause": "io", "points": 1.0, "ms": 0.01, "what_if_mfu": 0.5}],
        "bottlenecks": [], "top_ops": []}, Report))
    assert "ledger_unit" not in data and "per_rank" not in data and "stragglers" not in data
    assert data["ledger"] == [{"cause": "io", "points": 1.0, "ms": 0.01, "what_if_mfu": 0.5, "interval": None}]
    assert data["schema"] == "mfu-report/1" and data["warnings_data"] == []


def test_a_step_row_has_every_category_in_order():
    assert model.StepRow.__struct_fields__ == ("step", "ms", *CATEGORIES, "ledger")


def test_a_file_that_names_the_schema_and_breaks_it_is_one_clear_error(tmp_path):
    path = tmp_path / "report.json"
    path.write_text('{"schema": "mfu-report/1", "source": {"paths": 3}}')
    with pytest.raises(TraceError, match="names mfu-report/1 but does not follow it"):
        saved_report(path)


def test_a_figure_that_is_not_finite_is_null_in_the_json_and_named_in_a_warning(tmp_path):
    from dataclasses import replace

    from profiler.mfu.records import Share
    from profiler.pipeline import analyze_job
    from profiler.report.model import json_text
    from profiler.report.schema import report_of

    result = analyze_job(two_rank_job(tmp_path), Options())
    broken = {**result.figures.breakdown, "memory": Share(float("nan"), 0.0)}
    report = report_of(replace(result, figures=replace(result.figures, breakdown=broken)))
    assert report.warnings_data[-1].code == "non_finite_figures"
    assert report.warnings_data[-1].numbers == {"figures": ["breakdown.memory.ms"], "count": 1}
    data = json.loads(json_text(report))  # the writer refuses NaN: this would raise if one were left
    assert data["breakdown"]["memory"]["ms"] is None and "breakdown.memory.ms" in data["warnings"][-1]


def test_figures_that_break_an_invariant_print_no_mfu_and_say_why(tmp_path, monkeypatch):
    """pipeline.checked: where a rank's figures break an invariant (injected here), MFU, the ledger and the
    diagnosis are left empty and a warning names what broke."""
    from synth import gpu_steps

    from profiler import pipeline

    monkeypatch.setattr(pipeline, "violations", lambda figures: ["an injected break"])
    report = analyze_path(gpu_steps(tmp_path / "t.json"), Options(measure=False))
    assert report["mfu"]["analytic"] is None and report["ledger"] == [] and report["bottlenecks"] == []
    assert {"code": "inconsistent_report", "numbers": {"broken": ["an injected break"]}} in report["warnings_data"]
