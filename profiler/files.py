"""The files this project writes: atomically, so that a crash or another process writing the same file never
leaves a half-written one, and under names that reading a folder of traces knows to skip."""

import os
from pathlib import Path

# a run folder's reports and step timelines (report/runfiles.py writes them, the dashboard lists them)
REPORT = "report.json"
TIMELINE = ".timeline.json"  # a report's step timeline: report.timeline.json beside report.json
CYCLES = "cycles"


def written_here(path: Path) -> bool:
    """A report or step timeline that we write into run folders: never a trace to analyse."""
    return path.name == REPORT or path.name.endswith(TIMELINE) or path.parent.name == CYCLES


def write_atomic(path: Path, text: str):
    """Write to a private temporary file beside `path`, then rename it over `path` in one step."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
