"""The MFU tab: its routes through TensorBoard's own application, and the page in headless Chromium served by a
real TensorBoard on 127.0.0.1, with every request the page makes recorded."""

import json
import os
import re
import shutil
import subprocess
import sys
from html import escape as html_escape
from pathlib import Path

import pytest
from conftest import CHROMIUM, ROOT, analyze, free_port, get_json, wait_for
from synth import gpu_trace, no_shapes_gpu_window, write
from werkzeug.test import Client

from profiler.report.runfiles import list_runs

sys.path.insert(0, str(ROOT / "scripts"))
from devtools import Browser, page_requests  # noqa: E402

H200_TRACE = ROOT / "tests" / "fixtures" / "h200_gpt2_small_compiled.pt.trace.json.gz"


@pytest.fixture(scope="module")
def logdir(tiny_run, tmp_path_factory):
    """A log directory with the default-config training run (one profiler cycle, at step 6, and the whole run),
    a foreign GPU trace, a synthetic one whose model FLOPs are unknown and one with no shapes at all (a time
    ledger), written with `analyze --out`."""
    root = tmp_path_factory.mktemp("logdir")
    shutil.copytree(tiny_run[0], root / "tiny")
    unknown_model = gpu_trace(tmp_path_factory.mktemp("synthetic"))
    no_shapes = write(tmp_path_factory.mktemp("no_shapes") / "t4.json", no_shapes_gpu_window(), device="Tesla T4")
    for trace, name in ((H200_TRACE, "trace_h200"), (unknown_model, "trace_unknown_model"),
                        (no_shapes, "trace_no_shapes")):
        status, _, stderr = analyze("analyze", trace, "--out", root / name, "--quiet")
        assert status == 0, stderr
    return root


@pytest.fixture(scope="module")
def client(logdir):
    return tensorboard_client(logdir)


def tensorboard_client(logdir: Path) -> Client:
    """TensorBoard's WSGI application as `tensorboard --logdir` builds it, with the plugins installed."""
    from tensorboard import default, program

    apps = []

    class Keep(program.TensorBoardServer):
        def __init__(self, app, flags):
            apps.append(app)

        def serve_forever(self):
            pass

        def get_url(self):
            return ""

    board = program.TensorBoard(default.get_plugins(), server_class=Keep)
    board.configure(argv=[None, f"--logdir={logdir}", "--load_fast=false"])
    board.launch()
    return Client(apps[0])


def get(client, path, **params):
    response = client.get(f"/data/plugin/mfu/{path}", query_string=params)
    return response.status_code, response.get_json() if response.mimetype == "application/json" else response.data


def test_the_tab_is_listed_and_loads_from_the_entry_point(client):
    listing = client.get("/data/plugins_listing").get_json()["mfu"]
    assert listing["enabled"] and listing["tab_name"] == "MFU"
    assert listing["loading_mechanism"] == {"type": "IFRAME", "module_path": "/data/plugin/mfu/index.js"}
    assert client.get("/data/plugin_entry.html?name=mfu").status_code == 200
    for name in ("index.js", "charts.js", "timeline.js", "dashboard.css"):
        status, body = get(client, name)
        assert status == 200 and body
        # nothing from elsewhere (the SVG namespace is a name, never fetched)
        assert not re.search(rb"https?://(?!www\.w3\.org/2000/svg)", body)


def test_runs_reports_timelines_and_the_trend(client, logdir):
    status, runs = get(client, "runs")
    assert status == 200
    assert runs == [{"run": "tiny", "views": [
                        {"id": "step_6", "label": "cycle ending at step 6", "step": 6, "timeline": True},
                        {"id": "run", "label": "whole run", "step": None, "timeline": True}]},
                    {"run": "trace_h200", "views": [{"id": "run", "label": "report", "step": None, "timeline": True}]},
                    {"run": "trace_no_shapes",
                     "views": [{"id": "run", "label": "report", "step": None, "timeline": True}]},
                    {"run": "trace_unknown_model",
                     "views": [{"id": "run", "label": "report", "step": None, "timeline": True}]}]
    whole = json.loads((logdir / "tiny" / "report.json").read_text())
    assert get(client, "report", run="tiny", view="run") == (200, whole)
    cycle = json.loads((logdir / "tiny" / "cycles" / "step_6.json").read_text())
    assert get(client, "report", run="tiny", view="step_6") == (200, cycle)
    status, trend = get(client, "trend", run="tiny")
    assert status == 200 and trend == [{"step": 6, "mfu": cycle["mfu"]["analytic"],
                                        "ledger": {e["cause"]: e["points"] for e in cycle["ledger"]}}]
    status, timeline = get(client, "timeline", run="trace_h200", view="run")
    assert status == 200 and timeline["schema"] == "mfu-timeline/1"
    assert timeline["lanes"][-1].startswith("stream") and timeline["lanes"][0].startswith("host thread")


@pytest.mark.parametrize("run, view", [("../tiny", "run"), ("tiny/..", "run"), ("/etc", "run"), ("tiny", "../report"),
                                       ("tiny", "cycles/step_6"), ("tiny", "/etc/passwd"), ("", "run"), ("tiny", "")])
def test_names_from_a_request_are_looked_up_never_joined(client, run, view):
    assert get(client, "report", run=run, view=view)[0] == 404
    assert get(client, "timeline", run=run, view=view)[0] == 404
    assert get(client, "diff", run=run, view=view, compare="tiny", compare_view="run")[0] == 404
    assert get(client, "diff", run="tiny", view="run", compare=run, compare_view=view)[0] == 404


def test_the_diff_of_two_panes(client):
    status, d = get(client, "diff", run="tiny", view="run", compare="trace_h200", compare_view="run")
    assert status == 200 and d["schema"] == "mfu-diff/1" and d["unit"] == "step_time" and d["mfu"] is None
    assert d["notes"][0].startswith("the devices differ (")  # a CPU run against an H200: step time, not MFU
    assert d["step_time"]["interval"] and d["verdict"] in ("faster", "slower", "no change")
    assert d["setup"][0]["key"] == "device" and "cpu" in d["setup"][0]["a"]
    assert d["setup"][0]["b"] == "cuda"  # the trace names no device, its kind says it
    status, same = get(client, "diff", run="tiny", view="run", compare="tiny", compare_view="run")
    assert status == 200 and same["verdict"] == "no change" and same["ops"] == [] and same["setup"] == []


def test_absolute_paths_and_other_files_are_refused(client, logdir):
    assert get(client, "report", run=str(logdir / "tiny"), view="run")[0] == 404
    assert get(client, "trend", run=str(logdir / "tiny"))[0] == 404
    assert client.get("/data/plugin/mfu/../../../etc/passwd").status_code == 404
    assert client.get("/data/plugin/mfu/plugin.py").status_code == 404


def test_a_report_being_rewritten_is_an_error_not_a_crash(tmp_path, logdir):
    (tmp_path / "run" / "cycles").mkdir(parents=True)
    (tmp_path / "run" / "cycles" / "step_9.json").write_text('{"schema": "mfu-report/1", "mfu": {')  # cut short
    client = tensorboard_client(tmp_path)
    status, body = get(client, "report", run="run", view="step_9")
    assert status == 500 and body == {"error": "cannot read step_9.json"}
    assert get(client, "trend", run="run") == (200, [])


def test_the_listing_skips_links_hidden_folders_and_other_tools_reports(tmp_path, logdir):
    (tmp_path / "linked").symlink_to(logdir / "tiny")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "report.json").write_text((logdir / "tiny" / "report.json").read_text())
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "report.json").write_text('{"accuracy": 0.9}')
    assert list_runs(tmp_path) == {}
    assert list(list_runs(logdir)) == ["tiny", "trace_h200", "trace_no_shapes", "trace_unknown_model"]


def test_analyze_out_writes_a_run_folder_and_keeps_what_it_did_not_write(tmp_path):
    status, stdout, _ = analyze("analyze", H200_TRACE, "--out", tmp_path / "h200")
    assert status == 0 and f"tensorboard --logdir={tmp_path / 'h200'}" in stdout
    assert {p.name for p in (tmp_path / "h200").iterdir()} == {"report.json", "report.md", "report.html",
                                                               "report.timeline.json"}
    status, _, _ = analyze("analyze", H200_TRACE, "--out", tmp_path / "h200", "--quiet")
    assert status == 0  # its own report is replaced
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "report.json").write_text('{"accuracy": 0.9}')
    status, stdout, stderr = analyze("analyze", H200_TRACE, "--out", tmp_path / "other")
    assert status == 2 and stderr.startswith("error: ") and "not overwritten" in stderr
    assert len(stderr.splitlines()) == 1
    assert (tmp_path / "other" / "report.json").read_text() == '{"accuracy": 0.9}'


# hover over the middle of aten::mm (35 µs into the step, the lane's second row), then one wheel step in at the
# middle of the plot (the timeline's gutter is 160 px, its header 18 px, a row 16 px)
HOVER_AND_ZOOM = """(async () => {
  const c = document.querySelector('canvas.timeline'), r = c.getBoundingClientRect(), before = c.dataset.view;
  const frame = () => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  const x = r.left + 160 + (35 / 200) * (r.width - 160), y = r.top + 18 + 16 + 8;
  c.dispatchEvent(new MouseEvent('mousemove', {clientX: x, clientY: y, bubbles: true}));
  const tip = document.querySelector('.tip').innerText;
  c.dispatchEvent(new WheelEvent('wheel', {deltaY: -100, clientX: r.left + 160 + (r.width - 160) / 2, clientY: y,
                                          bubbles: true, cancelable: true}));
  await frame();
  return [tip, before, c.dataset.view];
})()"""


@pytest.mark.skipif(not CHROMIUM, reason="Chromium is not installed (.ci/run installs Debian's chromium package)")
def test_the_tab_in_a_browser_draws_the_run_and_asks_nothing_of_the_network(logdir, tmp_path):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", f"--logdir={logdir}", "--host=127.0.0.1",
                               f"--port={port}", "--load_fast=false"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    origin = f"http://127.0.0.1:{port}"
    shots = Path(os.environ.get("MFU_SCREENSHOT_DIR", tmp_path))
    drawn = "querySelectorAll('canvas.timeline[data-drawn]').length"
    try:
        wait_for(lambda: get_json(f"{origin}/data/plugins_listing"), lambda v: v.get("mfu", {}).get("enabled"))
        with Browser(CHROMIUM, tmp_path / "profile", height=2600, net_log=tmp_path / "net.json") as browser:
            # the whole TensorBoard, opened at the MFU tab (its frame), as a user sees it
            board = browser.open(f"{origin}/#mfu")
            browser.wait_for(board, f"document.querySelector('iframe')?.contentDocument?.{drawn}")
            browser.screenshot(board, shots / "dashboard_tensorboard.png")
            # the tab's own page, comparing the run with the GPU trace: what it drew
            page = browser.open(f"{origin}/data/plugin_entry.html?name=mfu&run=tiny&view=run&compare=trace_h200"
                                "&compare_view=run")
            browser.wait_for(page, f"document.{drawn} == 2 && !!document.querySelector('div.diff table.causes')")
            html = browser.evaluate(page, "document.documentElement.outerHTML")
            browser.screenshot(page, shots / "dashboard_compare.png")
            # a trace whose model FLOPs are unknown: the counts stand in, and the ledger adds up to that MFU
            page = browser.open(f"{origin}/data/plugin_entry.html?name=mfu&run=trace_unknown_model&view=run")
            browser.wait_for(page, f"document.{drawn} == 1")
            counted = browser.evaluate(page, "[document.querySelectorAll('svg.ledger rect.bar').length, "
                                             "document.querySelector('svg.ledger').textContent]")
            # its step timeline (200 µs; aten::mm at 10-60 µs, one below the step on the host thread): hover, zoom
            hovered = browser.evaluate(page, HOVER_AND_ZOOM)
            # a trace with no shapes: the time ledger, from the step down to the useful work, and step what-ifs
            page = browser.open(f"{origin}/data/plugin_entry.html?name=mfu&run=trace_no_shapes&view=run")
            browser.wait_for(page, f"document.{drawn} == 1")
            time_ledger = browser.evaluate(page, "[document.querySelectorAll('svg.ledger rect.bar').length, "
                                                 "document.querySelector('svg.ledger').textContent, "
                                                 "document.querySelector('section h3').textContent, "
                                                 "document.querySelector('ol.diagnosis li').textContent, "
                                                 "document.querySelector('div.health').textContent]")
    finally:
        server.terminate()
        server.wait(timeout=30)
    requests = page_requests(tmp_path / "net.json")
    assert f"{origin}/data/plugin/mfu/runs" in requests
    assert f"{origin}/data/plugin/mfu/timeline?run=tiny&view=run" in requests
    assert [u for u in requests if not u.startswith(origin + "/")] == []
    unknown = json.loads((logdir / "trace_unknown_model" / "report.json").read_text())
    # no model FLOPs given: the counted forward stands in (no backward ran), named, and the chart ends at MFU
    assert unknown["mfu"]["analytic"] == unknown["mfu"]["counted"] > 0
    assert unknown["mfu"]["analytic_from"] == "the forward's counted FLOPs (no backward ran)"
    assert counted[0] == len(unknown["ledger"]) == 8 and "MFU" in counted[1]
    no_shapes = json.loads((logdir / "trace_no_shapes" / "report.json").read_text())
    bars, chart_text, title, principal, health = time_ledger
    # the trace's health above the figures: what it lacks, with the argument that records it
    assert health.startswith("Trace health") and "no input shapes: no FLOPs counted" in health
    assert "(record with record_shapes=True)" in health
    assert bars == len(no_shapes["ledger"]) - 1 and title.startswith("Time ledger")  # useful ends it, not a bar
    assert "step" in chart_text and "useful" in chart_text and "points of the step time" in chart_text
    first = no_shapes["bottlenecks"][0]
    assert principal.startswith(f"precision: {first['points']:.1f} points")
    assert f"(x{first['speedup']:.2f}) if removed" in principal
    tip, view_before, view_after = hovered
    assert tip.splitlines() == ["aten::mm", "matmul, 50.0 µs, at 0.010 ms", "shapes [[64, 128], [128, 256]]",
                                "0.004 GFLOP, 0.084 TFLOP/s"]  # 2·64·128·256 FLOP in 50 µs
    assert (view_before, view_after) == ("0.0-200.0", "20.0-180.0")  # one wheel step in at the middle: 1/1.25
    changes = re.search(r'<div class="diff">(.*?)</section>', html, re.S).group(1)  # B (the H200) against A
    # A is the tiny CPU run, whose step the machine's load sets (5 to 30 ms here, 212 ms under load): the sign and
    # the verdict against the H200's 35.94 ms step are whatever the run gave; test_diff holds the verdicts to
    # synthetic steps
    assert re.search(r"<h2>What changed, B against A: [^<]+</h2>", changes) and "the devices differ (" in changes
    assert re.search(r"step \d+\.\d\d → 35\.94 ms \([+-]\d+\.\d%, \[[+-]\d+\.\d, [+-]\d+\.\d\]%\) at 95%", changes)
    assert changes.count("<tr>") == 1 + 6 and "points of the step time" in changes
    panes = html.split('<div class="pane">')[1:]
    assert [re.search(r"<h2>(.*?)</h2>", p).group(1) for p in panes] == ["tiny: whole run", "trace_h200: report"]
    for pane, folder in zip(panes, ("tiny", "trace_h200")):
        report = json.loads((logdir / folder / "report.json").read_text())
        ledger = re.search(r'<svg[^>]*class="ledger".*?</svg>', pane, re.S).group(0)
        assert all(f">{e['cause']}<" in ledger for e in report["ledger"])
        assert ledger.count('class="bar"') == len(report["ledger"])
        steps = re.search(r'<svg[^>]*class="steps".*?</svg>', pane, re.S).group(0)
        assert steps.count('class="step-bar"') == sum(1 for s in report["per_step"] for c in report["breakdown"]
                                                       if s[c] > 0)
        assert pane.count("<li>") == len(report["bottlenecks"]) > 0
        # the roofline: each top op with counted FLOPs a point, each other op with known bytes a bar, named on hover
        roof = re.search(r'<svg[^>]*class="roofline".*?</svg>', pane, re.S).group(0)
        ops = [op for op in report["top_ops"] if op["roofline"]]
        points = [op for op in ops if op["roofline"]["achieved_tflops"]][:10]
        assert roof.count('class="roofline-point"') == len(points) > 0
        bars = [op for op in ops if not op["roofline"]["achieved_tflops"]][:10]
        assert roof.count('class="roofline-bar"') == len(bars)
        assert f"<title>{html_escape(points[0]['name'])}: " in roof
        # the median step's memory: our CPU run's on top of its model states; the GPU trace recorded none
        if report["memory"]:
            memory = re.search(r'<svg[^>]*class="memory".*?</svg>', pane, re.S).group(0)
            assert memory.count('class="series"') == 1 and "states + allocated" in memory
        else:
            assert "The trace records no memory: record with profile_memory=True." in pane
        canvas = re.search(r'<canvas class="timeline" data-spans="(\d+)" [^>]*data-drawn="(\d+)"', pane)
        assert canvas and int(canvas.group(1)) > 1000 and int(canvas.group(2)) > 100
    import matplotlib.image

    pixels = matplotlib.image.imread(shots / "dashboard_compare.png")[:, :, :3]
    matmul = (abs(pixels - [0x2b / 255, 0x6c / 255, 0xb0 / 255]) < 0.02).all(axis=2)
    host = (abs(pixels - [0xed / 255, 0x89 / 255, 0x36 / 255]) < 0.02).all(axis=2)
    assert matmul.sum() > 2000 and host.sum() > 2000, "the charts or the timelines are blank"
