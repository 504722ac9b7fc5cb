import ast
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import typing
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_TRACES = ROOT.parent / "shared" / "traces"
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Prepared data and CPU peak measurements go to a per-session cache, not the user's home."""
    os.environ["MFU_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


def invariants_hold(report: dict, ledger_required: bool = True):
    """docs/DESIGN.md's invariants on a report's JSON: shares add up to 1; the ledger, of MFU or of the step time,
    adds up with no cause below 0 and no what-if past the whole."""
    assert sum(b["fraction"] for b in report["breakdown"].values()) == pytest.approx(1, abs=1e-6)
    mfu = report["mfu"]["analytic"] or report["mfu"]["counted"]
    assert report["ledger"] or not ledger_required  # every trace gets a ledger: of MFU, or of the step time
    if report.get("ledger_unit") == "step_time":
        assert sum(e["points"] for e in report["ledger"]) == pytest.approx(100, abs=0.01)
        step = report["step_time_ms"]["mean"]
        assert all(e["points"] >= -1e-9 and (e["what_if_step_ms"] is None or 0 < e["what_if_step_ms"] <= step + 1e-9)
                   for e in report["ledger"])
    elif report["ledger"]:
        assert sum(e["points"] for e in report["ledger"]) == pytest.approx(100 - 100 * mfu, abs=0.01)
        assert all(e["points"] >= -1e-9 and e["what_if_mfu"] <= 1 + 1e-9 for e in report["ledger"])
    for part in [report, *report.get("per_rank", [])]:
        for bottleneck in part["bottlenecks"]:
            evidence_is_its_facts(bottleneck)
            facts_are_their_type(bottleneck)
    warnings_are_their_numbers(report)


JOB_FACTS = {"rank", "waited_for"}  # what a job adds to any cause's facts (mfu/job.py)


def facts_types(cause: str) -> tuple[type, ...]:
    """The TypedDict(s) a cause's rule declares its facts to be (a union: any one of them)."""
    from profiler.diagnosis.causes import CAUSES

    (facts,) = typing.get_args(typing.get_type_hints(CAUSES[cause].rule)["return"])
    return typing.get_args(facts) or (facts,)


def facts_are_their_type(bottleneck: dict):
    """A bottleneck's facts hold every key its cause's TypedDict requires and none it does not declare: the JSON
    is what mypy checked."""
    keys = set(bottleneck["facts"]) - JOB_FACTS
    assert any(t.__required_keys__ <= keys <= t.__required_keys__ | t.__optional_keys__
               for t in facts_types(bottleneck["cause"])), (bottleneck["cause"], sorted(keys))


NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![A-Za-wyz0-9_])")  # '4x', 'x1.32' count
FORMATS = (".0f", ".1f", ".2f", ".3f", ".3g", "g", ",.0f", ",.1f")


def _sentence_nodes(path: Path, whole: bool) -> list[ast.AST]:
    """The parts of a module that word sentences: all of it, or its `*_words` functions and `evidence_sentence`
    (its rule and fix sentences hold numbers of their own, which an evidence sentence must not quote)."""
    tree = ast.parse(path.read_text())
    if whole:
        return [tree]
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
            and (n.name == "evidence_sentence" or n.name.endswith("_words"))]


@functools.cache
def _sentence_constants(module: str = "diagnosis") -> frozenset[str]:
    """Numbers that the wording itself holds ('single-process (num_workers=0)'): in the string literals of the
    evidence sentences (profiler/diagnosis) or of the warnings (report/notes.py), format specifications aside."""
    if module == "notes":
        roots = _sentence_nodes(ROOT / "profiler" / "report" / "notes.py", whole=True)
    else:
        folder = ROOT / "profiler" / "diagnosis"
        roots = [n for path in sorted(folder.glob("*.py")) for n in _sentence_nodes(path, path.name == "words.py")]
    nodes = [n for root in roots for n in ast.walk(root)]
    specs = {id(n.format_spec) for n in nodes if isinstance(n, ast.FormattedValue) and n.format_spec}
    inside_specs = {id(c) for n in nodes if id(n) in specs for c in ast.walk(n)}
    return frozenset(m.group() for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)
                     and id(n) not in inside_specs for m in NUMBER.finditer(n.value))


def _fact_texts(value) -> set[str]:
    if isinstance(value, bool) or value is None:
        return set()
    if isinstance(value, (int, float)):  # as the sentence's numbers read it: '8.26e+03' is 8.26 and 03
        texts = {format(value, spec) for spec in FORMATS} | ({str(value)} if isinstance(value, int) else set())
        return {m.group() for t in texts for m in NUMBER.finditer(t)}
    if isinstance(value, str):
        return {m.group() for m in NUMBER.finditer(value)}
    items = value.values() if isinstance(value, dict) else value
    return set().union(*map(_fact_texts, items)) if items else set()


def evidence_is_its_facts(bottleneck: dict):
    """Every number that a bottleneck's evidence quotes is one of its facts, as the sentence formats it."""
    allowed = _fact_texts(bottleneck["facts"]) | _sentence_constants()
    quoted = [m.group() for m in NUMBER.finditer(bottleneck["evidence"])]
    assert [q for q in quoted if q not in allowed] == [], bottleneck["evidence"]


def warnings_are_their_numbers(report: dict):
    """The warnings are their data, one for one, in order, and each quotes only its own numbers (and the ranks
    it names)."""
    assert len(report["warnings"]) == len(report["warnings_data"])
    for text, data in zip(report["warnings"], report["warnings_data"]):
        allowed = _fact_texts(data["numbers"]) | _fact_texts(data.get("ranks", "")) | _sentence_constants("notes")
        assert [q for q in (m.group() for m in NUMBER.finditer(text)) if q not in allowed] == [], text


def note(report: dict, code: str) -> dict | None:
    """The numbers of the report's first warning of this code, or None when it has none."""
    return next((w["numbers"] for w in report["warnings_data"] if w["code"] == code), None)


def shared_trace(name: str) -> Path:
    folder = SHARED_TRACES / name
    if not folder.is_dir():
        pytest.skip(f"shared trace folder {folder} is absent (it lives beside the repository, in ../shared)")
    return next(p for p in sorted(folder.iterdir()) if ".json" in p.name)


SCRIPT = ROOT / "scripts" / "profile_run.py"
# n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=4: steps 3, 4 and 5 are recorded
TINY = ["--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4", "--max_iters=8",
        "--skip_first=1", "--wait=1", "--warmup=1", "--active=3", "--repeat=1", "--log_interval=1"]


def run_script(*args, timeout=300, script=SCRIPT):
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A short CPU run of scripts/profile_run.py: (run folder, completed process)."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = run_script(*TINY, f"--out={out}")
    assert result.returncode == 0, result.stderr
    return out, result


def analyze(*args):
    """`python -m profiler ...` as a user runs it: (exit status, stdout, stderr)."""
    result = subprocess.run([sys.executable, "-m", "profiler", *map(str, args)], capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    return result.returncode, result.stdout, result.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def wait_for(fetch, ready, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fetch()
            if ready(value):
                return value
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"TensorBoard did not serve it within {timeout} s")
        time.sleep(1)
