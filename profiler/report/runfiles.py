"""The files of a run folder that the TensorBoard dashboard reads, both sides of the contract: where they are
written, and how a log directory is listed.

    RUN/report.json                   the whole run, or the trace analysed with `analyze PATH --out RUN`
    RUN/report.timeline.json          its step timeline
    RUN/cycles/step_N.json            the profiler cycle that ended at training step N
    RUN/cycles/step_N.timeline.json   its step timeline

A server looks files up in the listing by the names a request gives; it never joins those names into a path.
"""

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from profiler.files import CYCLES, REPORT, TIMELINE, write_atomic
from profiler.report.document import write_reports
from profiler.report.model import Report, json_text
from profiler.trace.errors import TraceError

CYCLE_FILE = re.compile(r"^step_(\d+)\.json$")
SCHEMA_MARK = b'"mfu-report/1"'
MAX_DEPTH = 8  # folders below the log directory that are searched for runs


@dataclass(frozen=True, kw_only=True)
class View:
    """One report of a run: the whole run, or one profiler cycle."""

    id: str  # "run" or "step_N"
    label: str
    step: int | None  # the training step that closed the cycle
    report: Path
    timeline: Path | None


def write_run_report(folder: Path, report: Report, timeline: dict | None):
    """report.json / .md / .html and the step timeline of a whole run (or of an analysed trace). A report.json
    that this tool did not write is left alone: TraceError."""
    path = Path(folder) / REPORT
    if path.exists() and not _is_report(path):
        raise TraceError(f"{path} exists and is not an mfu-report: not overwritten (choose another folder)")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_reports(report, path, path.with_suffix(".md"), path.with_suffix(".html"))
    _write_timeline(timeline_of(path), timeline)


def write_cycle_report(folder: Path, step: int, report: Report, timeline: dict | None):
    """The report and step timeline of the profiler cycle that ended at `step`."""
    path = folder / CYCLES / f"step_{step}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json_text(report))
    _write_timeline(timeline_of(path), timeline)


def timeline_of(report: Path) -> Path:
    return report.with_name(report.name.removesuffix(".json") + TIMELINE)


def _write_timeline(path: Path, timeline: dict | None):
    """The timeline beside its report; an earlier one there is removed when this report has none."""
    if timeline:
        write_atomic(path, json.dumps(timeline))
    else:
        path.unlink(missing_ok=True)


def list_runs(logdir: Path) -> dict[str, list[View]]:
    """Every run folder under `logdir` (itself included) that holds reports: run name (its path relative to
    the log directory) → its views, cycles by step, then the whole run. Hidden folders and links are skipped."""
    logdir = Path(logdir)
    runs = {}
    for folder, dirs, _ in os.walk(logdir):
        depth = len(Path(folder).relative_to(logdir).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != CYCLES and depth < MAX_DEPTH
                         and not os.path.islink(os.path.join(folder, d)))
        views = _views(Path(folder))
        if views:
            runs[Path(folder).relative_to(logdir).as_posix() if depth else logdir.name or "."] = views
    return runs


def _views(folder: Path) -> list[View]:
    views = []
    cycles = folder / CYCLES
    if cycles.is_dir() and not cycles.is_symlink():
        for path in cycles.iterdir():
            match = CYCLE_FILE.match(path.name)
            if match and path.is_file() and not path.is_symlink():
                step = int(match.group(1))
                views.append(View(id=f"step_{step}", label=f"cycle ending at step {step}", step=step, report=path,
                                  timeline=_existing(timeline_of(path))))
    views.sort(key=lambda v: v.step or 0)  # cycle views only: each has its step
    whole = folder / REPORT
    if whole.is_file() and not whole.is_symlink() and _is_report(whole):
        views.append(View(id="run", label="whole run" if views else "report", step=None, report=whole,
                          timeline=_existing(timeline_of(whole))))
    return views


def _existing(path: Path) -> Path | None:
    return path if path.is_file() and not path.is_symlink() else None


def _is_report(path: Path) -> bool:
    """An mfu-report/1 JSON (a report.json of another tool is not one), judged by its first bytes."""
    try:
        with path.open("rb") as f:
            return SCHEMA_MARK in f.read(256)
    except OSError:
        return False
