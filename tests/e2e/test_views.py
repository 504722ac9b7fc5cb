"""The report where people look, checked as a user would: a real TensorBoard server over the run folder, the
HTML report in a headless browser, Markdown, and a diff of a run against itself."""

import json
import re
import subprocess
import sys

import pytest
from conftest import CHROMIUM, analyze, free_port, get_json, wait_for


def test_run_folder_files(tiny_run):
    out, result = tiny_run
    assert {"report.json", "report.md", "report.html", "summary.json", "config.json"} <= {p.name for p in out.iterdir()}
    assert list(out.glob("events.out.tfevents.*"))
    assert re.search(r"profiler cycle ending at step 6: .*; the step waited [\d.]+ s for it", result.stdout)
    assert (out / "report.md").read_text().startswith("# MFU report")


def test_tensorboard_serves_scalars_report_charts_and_the_trace(tiny_run):
    out, _ = tiny_run
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", f"--logdir={out.parent}", "--host=127.0.0.1",
                               f"--port={port}", "--load_fast=false"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/data/plugin"
    try:
        scalars = wait_for(lambda: get_json(f"{base}/scalars/tags"), lambda v: "tiny" in v)["tiny"]
        assert {"train/loss", "train/step_time_ms", "train/tokens_per_s", "train/mfu_pct", "mfu/analytic_pct",
                "breakdown_pct/matmul", "ledger_points/small_batch", "whole_run/mfu/analytic_pct"} <= set(scalars)
        loss = get_json(f"{base}/scalars/scalars?run=tiny&tag=train/loss")
        assert [point[1] for point in loss] == list(range(8))
        # the cycle's figures at the step that closed it, in percent like the ledger's points
        cycle = json.loads((out / "cycles" / "step_6.json").read_text())
        mfu = get_json(f"{base}/scalars/scalars?run=tiny&tag=mfu/analytic_pct")
        assert [p[1] for p in mfu] == [6] and mfu[0][2] == pytest.approx(100 * cycle["mfu"]["analytic"], rel=1e-6)
        share = get_json(f"{base}/scalars/scalars?run=tiny&tag=breakdown_pct/matmul")[0][2]
        assert share == pytest.approx(100 * cycle["breakdown"]["matmul"]["fraction"], rel=1e-6)
        # the whole run once, on its own series, not as one more point of the per-cycle one
        run = json.loads((out / "report.json").read_text())
        whole = get_json(f"{base}/scalars/scalars?run=tiny&tag=whole_run/mfu/analytic_pct")
        assert len(whole) == 1 and whole[0][2] == pytest.approx(100 * run["mfu"]["analytic"], rel=1e-6)
        text = get_json(f"{base}/text/tags")
        assert text["tiny"] == ["report/text_summary"]
        images = get_json(f"{base}/images/tags")["tiny"]
        assert {"charts/ledger", "charts/steps"} <= set(images)
        runs = wait_for(lambda: get_json(f"{base}/pytorch_profiler/runs"), lambda v: v["runs"] and not v["loading"])
        assert runs["runs"] == ["tiny"]
        steps = get_json(f"{base}/pytorch_profiler/overview?run=tiny&worker={worker(out)}&span=1")
        assert steps["steps"]["rows"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def worker(out):
    return next(out.glob("*.pt.trace.json")).name.split(".")[0]


@pytest.mark.skipif(not CHROMIUM, reason="Chromium is not installed (.ci/run installs Debian's chromium package)")
def test_html_report_renders_its_charts_in_a_browser(tiny_run, tmp_path):
    out, _ = tiny_run
    html = (out / "report.html").read_text()
    # self-contained, opens offline: no scripts, no stylesheets or images from elsewhere
    assert "<script" not in html and "<link" not in html and 'src="' not in html and 'href="http' not in html
    assert html.count("<svg") == 4 and 'id="chart-memory"' in html  # ledger, steps, roofline, memory
    shot = tmp_path / "page.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={shot}", "--window-size=1200,4000", f"file://{out / 'report.html'}"],
                   capture_output=True, timeout=120, check=True)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[:, :, :3]
    bars = (abs(pixels - [0x2b / 255, 0x6c / 255, 0xb0 / 255]) < 0.02).all(axis=2)  # the charts' blue
    assert bars.sum() > 2000, "no chart bars in the rendered page"


def test_markdown_and_html_from_the_cli(tiny_run, tmp_path):
    out, _ = tiny_run
    status, stdout, stderr = analyze("analyze", out, "--markdown", tmp_path / "r.md", "--html", tmp_path / "r.html",
                                     "--quiet")
    assert status == 0 and stdout == "", stderr
    md = (tmp_path / "r.md").read_text()
    for heading in ("## Summary", "## Breakdown of the step", "## Memory", "## MFU ledger", "## Top ops"):
        assert heading in md
    assert "| aten::mm | matmul |" in md
    html = (tmp_path / "r.html").read_text()
    assert html.count("<table>") == 3  # the breakdown, the MFU ledger and the top ops; one rank: no stragglers
    report = json.loads((out / "report.json").read_text())
    ledger = html[html.index("MFU ledger</h2>"):html.index("</table>", html.index("MFU ledger</h2>"))]
    assert ledger.count("<tr>") == len(report["ledger"]) + 1  # a row per cause, and the header


def test_diff_of_a_saved_report_and_its_run_folder(tiny_run, tmp_path):
    out, _ = tiny_run
    status, stdout, stderr = analyze("diff", out / "report.json", out, "--fail-if-slower=0")
    assert status == 0, stderr
    assert "no change beyond the noise: step" in stdout and "+0.0%" in stdout  # the same run on both sides
    assert "causes (points of MFU), largest change first:" in stdout
    status, _, stderr = analyze("compare", out, tmp_path / "missing")  # the old name still works
    assert status == 2 and stderr.startswith("error: ") and stderr.count("\n") == 1
