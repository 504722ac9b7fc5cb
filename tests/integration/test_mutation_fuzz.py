"""Structural mutations of real traces, several at once: every one gives a report that keeps the invariants (no
NaN, shares that add up, no negative cause), or one clear error line.

The sources are the shared traces of other programs (../shared/traces) and one cycle of our H200 run. A
mutation drops or retypes fields, duplicates or shuffles events, makes durations negative or zero, shifts
timestamps by 1e15, gives events an unknown `ph`, or keeps one category alone (the device's events, say).
Seeded (derandomize) and bounded: MUTATION_EXAMPLES runs in CI; run it long once with
`MUTATION_EXAMPLES=2000 python -m pytest tests/integration/test_mutation_fuzz.py`.
"""

import functools
import gzip
import json
import os
import random
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT, SHARED_TRACES, invariants_hold
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler.pipeline import analyze_path
from profiler.settings import Options
from profiler.trace.errors import TraceError

MUTATION_EXAMPLES = int(os.environ.get("MUTATION_EXAMPLES", "40"))
SOURCES = ["mi210_gpu_only", "4090_neuralpde_fp64_sparse_fwd", "tbplugin_tiny_gpu", "t4_resnet50_fp32_train_step",
           "dlrm_v100_8rank", "2x4090_tp_llama_fwd_2ranks"]  # the small ones: each mutation reads one file
FIXTURE = ROOT / "tests" / "fixtures" / "h200_gpt_bf16_compiled.pt.trace.json.gz"
FIELDS = ["ph", "cat", "name", "pid", "tid", "ts", "dur", "args"]
ODD_VALUES = [None, True, -1, 0, 10**18, 1.5e300, "", "x", [], {}, [1, 2]]


@functools.cache
def source(name: str) -> dict:
    path = FIXTURE if name == "fixture" else next(p for p in sorted((SHARED_TRACES / name).iterdir())
                                                  if ".json" in p.name)
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if path.name.endswith(".gz") else raw)


def available() -> list[str]:
    return ["fixture"] + [s for s in SOURCES if (SHARED_TRACES / s).is_dir()]


def mutate(events: list, kind: str, share: float, rng: random.Random) -> list:
    """The events after one mutation of `kind`, applied to about `share` of them."""
    picked = [e for e in events if rng.random() < share]
    if kind == "drop_field":
        for e in picked:
            e.pop(rng.choice(FIELDS), None)
    elif kind == "retype_field":
        for e in picked:
            e[rng.choice(FIELDS)] = rng.choice(ODD_VALUES)
    elif kind == "duplicate":
        events = events + [dict(e) for e in picked]
    elif kind == "shuffle":
        rng.shuffle(events)
    elif kind == "negative_duration":
        for e in picked:
            e["dur"] = -abs(e.get("dur", 1) if isinstance(e.get("dur"), (int, float)) else 1)
    elif kind == "zero_duration":
        for e in picked:
            e["dur"] = 0
    elif kind == "shift_time":
        for e in picked:
            e["ts"] = (e["ts"] if isinstance(e.get("ts"), (int, float)) else 0) + 1e15
    elif kind == "unknown_ph":
        for e in picked:
            e["ph"] = rng.choice(["Q", "", "x", "XX"])
    elif kind == "one_category":
        cats = sorted({str(e.get("cat")) for e in events})
        keep = rng.choice(cats) if cats else ""
        events = [e for e in events if str(e.get("cat")) == keep]
    elif kind == "device_only":
        events = [e for e in events if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
    return events


KINDS = ["drop_field", "retype_field", "duplicate", "shuffle", "negative_duration", "zero_duration", "shift_time",
         "unknown_ph", "one_category", "device_only"]


@settings(max_examples=MUTATION_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(name=st.sampled_from(available()),
       mutations=st.lists(st.tuples(st.sampled_from(KINDS), st.floats(0.0, 1.0)), min_size=1, max_size=4),
       seed=st.integers(0, 2**32 - 1))
def test_a_mutated_trace_gives_a_sound_report_or_one_clear_line(name, mutations, seed):
    trace = dict(source(name))
    events = [dict(e) for e in trace["traceEvents"] if isinstance(e, dict)]
    rng = random.Random(seed)
    for kind, share in mutations:
        events = mutate(events, kind, share, rng)
    trace["traceEvents"] = events
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mutated.pt.trace.json"
        path.write_text(json.dumps(trace))
        try:
            report = analyze_path(path, Options(peak_flops=1e12))
        except TraceError as e:
            assert str(e) and str(e).count("\n") < 3, str(e)
            return
    json.dumps(report, allow_nan=False)  # a NaN or an infinity anywhere would raise here
    assert report["step_time_ms"]["mean"] > 0
    assert all(b["ms"] >= -1e-9 and 0 <= b["fraction"] <= 1 + 1e-9 for b in report["breakdown"].values())
    invariants_hold(report, ledger_required=False)


def test_the_fuzzer_reaches_the_shared_traces():
    if not SHARED_TRACES.is_dir():
        pytest.skip("../shared/traces is absent")
    assert len(available()) == 1 + len(SOURCES)
    assert all(source(n)["traceEvents"] for n in available())
