"""The MFU tab of TensorBoard: a plugin registered through the `tensorboard_plugins` entry point.

It serves the reports and step timelines that runs wrote into their folders (profiler.report.runfiles), the diff
of two of them, and its own script and style sheet, nothing from the network. A request names a run and a view;
both are looked up in the listing of the log directory, never joined into a path, so `../` or an absolute path
finds nothing.
TensorBoard binds to 127.0.0.1 unless started with --bind_all.
"""

import json
from importlib import resources

import msgspec
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from profiler.diff.compare import diff_json, diff_reports
from profiler.report.model import Report
from profiler.report.runfiles import View, list_runs

STATIC = {"index.js": "text/javascript", "charts.js": "text/javascript", "timeline.js": "text/javascript",
          "dashboard.css": "text/css"}


class MfuPlugin(base_plugin.TBPlugin):
    plugin_name = "mfu"

    def __init__(self, context):
        self.logdir = context.logdir or ""

    def is_active(self) -> bool:
        return bool(self.logdir) and bool(list_runs(self.logdir))

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="MFU")

    def get_plugin_apps(self):
        apps = {f"/{name}": self.static_file for name in STATIC}
        apps.update({"/runs": self.runs, "/report": self.report, "/timeline": self.timeline, "/trend": self.trend,
                     "/diff": self.diff})
        return apps

    @wrappers.Request.application
    def static_file(self, request):
        name = request.path.rsplit("/", 1)[-1]
        body = resources.files(__package__).joinpath("static").joinpath(name).read_bytes()
        return http_util.Respond(request, body, STATIC[name])

    @wrappers.Request.application
    def runs(self, request):
        """Each run with its views: [{run, views: [{id, label, step, timeline}]}]."""
        listing = [{"run": run, "views": [{"id": v.id, "label": v.label, "step": v.step,
                                           "timeline": v.timeline is not None} for v in views]}
                   for run, views in (list_runs(self.logdir) if self.logdir else {}).items()]
        return _json(request, listing)

    @wrappers.Request.application
    def report(self, request):
        view = self._view(request)
        return _file(request, view.report) if view else _not_found(request)

    @wrappers.Request.application
    def timeline(self, request):
        view = self._view(request)
        return _file(request, view.timeline) if view and view.timeline else _not_found(request)

    @wrappers.Request.application
    def trend(self, request):
        """MFU (analytic, else counted: the one the ledger adds up to) and each ledger cause per profiler cycle of
        a run, in step order."""
        views = self._views(request.args.get("run", ""))
        if views is None:
            return _not_found(request)
        cycles = []
        for v in (v for v in views if v.step is not None):
            report = _report(v.report)
            if report:
                cycles.append({"step": v.step, "mfu": report.ledger_mfu,
                               "ledger": {e.cause: e.points for e in report.ledger}})
        return _json(request, cycles)

    @wrappers.Request.application
    def diff(self, request):
        """The second pane's report (compare, compare_view) against the first's (run, view): profiler.diff's
        mfu-diff/1, as `python -m profiler diff` computes it."""
        a, b = self._view(request), self._view(request, "compare", "compare_view")
        reports = [_report(v.report) if v else None for v in (a, b)]
        if reports[0] is None or reports[1] is None:
            return _not_found(request)
        return http_util.Respond(request, diff_json(diff_reports(reports[0], reports[1])), "application/json")

    def _views(self, run: str) -> list[View] | None:
        return list_runs(self.logdir).get(run) if self.logdir else None

    def _view(self, request, run: str = "run", view: str = "view") -> View | None:
        views = self._views(request.args.get(run, "")) or []
        return next((v for v in views if v.id == request.args.get(view)), None)


def _report(path) -> Report | None:
    """A listed report, or None when it cannot be read as one (being rewritten, say)."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=Report)
    except (OSError, msgspec.DecodeError):
        return None


def _read(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _file(request, path):
    """A listed JSON file as it is on disk, or an error when it cannot be read (being rewritten, say)."""
    value = _read(path)
    if value is None:
        return http_util.Respond(request, json.dumps({"error": f"cannot read {path.name}"}), "application/json",
                                 code=500)
    return _json(request, value)


def _json(request, value):
    return http_util.Respond(request, json.dumps(value), "application/json")


def _not_found(request):
    return http_util.Respond(request, json.dumps({"error": "no such run or view"}), "application/json", code=404)
