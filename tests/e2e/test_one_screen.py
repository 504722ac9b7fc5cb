"""The report that fits one screen: at most 60 lines by default on every shared trace, everything with -v, one
cause in full with --explain."""

import re

import pytest
from conftest import SHARED_TRACES, analyze

from profiler.pipeline import load_report
from profiler.report.terminal import ONE_SCREEN, explain, for_terminal
from profiler.settings import Options


class Plain:
    def isatty(self):
        return False


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.fixture(scope="module")
def reports():
    if not SHARED_TRACES.exists():
        pytest.skip("../shared/traces is absent")
    return {d.name: load_report(d, Options(jobs=2, measure=False)) for d in sorted(SHARED_TRACES.iterdir())
            if d.is_dir()}


def test_one_screen_by_default_everything_with_verbose(reports):
    for name, report in reports.items():
        short, full = for_terminal(report, Plain()), flat(for_terminal(report, Plain(), verbose=True))
        assert len(short.splitlines()) <= ONE_SCREEN, name
        assert max(len(line) for line in short.splitlines()[1:]) <= 80, name  # the first names the file
        assert report.bottlenecks, name  # each cause has its line, and its fix (or try:) the next
        for i, b in enumerate(report.bottlenecks, 1):
            assert f"{i}. {b.cause}: {b.points:.1f} points" in short, name
            assert flat(b.evidence) in full and flat(b.fix) in full, (name, b.cause)  # -v: every fact, worded
        assert all(flat(w) in full for w in report.warnings), name


def test_explain_gives_one_cause_in_full(reports, tmp_path):
    report = reports["tbplugin_resnet50_nw0"]
    for b in report.bottlenecks:
        text = explain(report, b.cause)
        assert flat(b.evidence) in flat(text) and flat(b.fix) in flat(text)
        assert all(f"{k} = " in text for k in b.facts)
    status, stdout, stderr = analyze("analyze", SHARED_TRACES / "tbplugin_tiny_gpu", "--explain", "small_batch")
    assert status == 0 and stdout.startswith("small_batch: ")
    status, _, stderr = analyze("analyze", SHARED_TRACES / "tbplugin_tiny_gpu", "--explain", "nonsense")
    assert status == 2 and stderr.startswith("error: --explain nonsense: not among this report's causes")
