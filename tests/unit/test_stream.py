"""Reading a trace block by block: the cuts between chunks of events land between events whatever the blocks'
size and whatever the events hold (brackets and separators in strings and args); a file cut anywhere reads as
its whole events before the cut, or gives one clear error."""

import gzip
import json
import os

import numpy as np
import pytest
from synth import kernel, launch, op, step, write

from profiler.trace import stream
from profiler.trace.errors import TraceError
from profiler.trace.load import load_trace
from profiler.trace.scan import outline

TRICKY_NAME = 'aten::weird}, {"ph": "X"] \\"quoted\\" \\\\'
NESTED_ARGS = {"list": [{"a": 1}, {"b": [2, {"c": "}, {"}]}], "Input Dims": [[4, 4]], "Input type": ["float"]}


def tricky_events(n: int = 60) -> list:
    """Events whose names and args hold what a careless cut would split: `}, {` in strings and nested dicts,
    escaped quotes and backslashes."""
    events = [step(1, 0, 10_000)]
    for i in range(n):
        events += [op(TRICKY_NAME if i % 7 == 0 else f"aten::op{i % 5}", 10 + 100 * i, 50, **NESTED_ARGS),
                   launch(20 + 100 * i, 5, i), kernel(f"k{i % 3}", 30 + 100 * i, 40, i)]
    return events + [{"ph": "i", "name": "[memory]", "pid": 1, "tid": 1, "ts": 5, "args": {"Bytes": 64,
                      "Total Allocated": 64, "Total Reserved": 128, "Device Type": 1, "Device Id": 0}}]


def columns(trace) -> dict:
    return {"names": trace.names_of(np.arange(len(trace))), "start": trace.start.tolist(), "end": trace.end.tolist(),
            "correlation": trace.correlation.tolist(), "shapes": [s.dims for s in trace.shapes(np.arange(len(trace)))],
            "memory": trace.memory.allocated.tolist(), "devices": trace.device_names}


@pytest.mark.parametrize("indent", [None, 2])
def test_the_same_columns_whatever_the_block_size(tmp_path, monkeypatch, indent):
    path = tmp_path / "t.json"
    trace = {"schemaVersion": 1, "traceEvents": tricky_events(),
             "deviceProperties": [{"id": 0, "name": "NVIDIA H100 80GB HBM3"}], "traceName": "x"}  # after the events
    path.write_text(json.dumps(trace, indent=indent))
    whole = columns(load_trace(path))
    assert whole["names"].count(TRICKY_NAME) == 9 and whole["devices"] == ["NVIDIA H100 80GB HBM3"]
    assert whole["shapes"][1] == [[4, 4]] and whole["memory"] == [64]
    for block in (5, 64, 333, 4096):
        monkeypatch.setattr(stream, "BLOCK", block)
        assert columns(load_trace(path)) == whole, block
    gz = tmp_path / "t.json.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert columns(load_trace(gz)) == whole


def test_outline_skips_strings_and_nesting():
    text = b'{"a": "x,}\\"]", "b": [1, {"c": ","}]}, 7, "\\\\", [8]] tail, ]'
    commas, close = outline(text, 0, len(text))
    assert [text[c + 1:c + 3] for c in commas] == [b" 7", b' "', b" ["] and text[close + 1:] == b" tail, ]"
    assert outline(b'{"open": "no end, ]', 0, 19) == (pytest.approx([]), -1)


def test_a_file_cut_anywhere_reads_its_events_before_the_cut(tmp_path):
    """Every prefix of a small trace: the events read are the first ones of the whole file, with a warning; or
    the cut came before the events and the error says so in one line."""
    full_path = write(tmp_path / "full.json", tricky_events(6), device=None)
    text = full_path.read_bytes()
    full = load_trace(full_path)
    names = full.names_of(np.arange(len(full)))
    cut = tmp_path / "cut.json"
    reports = errors = 0
    for at in range(1, len(text) - 1, 3):
        cut.write_bytes(text[:at])
        try:
            trace = load_trace(cut)
        except TraceError as e:  # before the events, or a cut that looks like damage (an event's args cut)
            assert "\n" not in str(e) and any(why in str(e) for why in ("traceEvents", "complete", "never closed"))
            errors += 1
            continue
        read = trace.names_of(np.arange(len(trace)))
        assert read == names[:len(read)] and trace.start.tolist() == (full.start[:len(read)] + full.origin_us
                                                                      - trace.origin_us).tolist()
        assert [w.code for w in trace.warnings] == ["file_cut_short"]
        reports += 1
    assert reports > 0.9 * (reports + errors)


def test_wrong_types_far_into_the_file_are_placed_in_it(tmp_path, monkeypatch):
    """An event with a field of the wrong type is dropped and named by its index in the whole file; args of
    the wrong type lose only their part (the kernel keeps its time, not its correlation)."""
    monkeypatch.setattr(stream, "BLOCK", 256)
    events = [step(1, 0, 10_000)] + [op(f"aten::op{i}", 10 + i, 1) for i in range(80)]
    events[57]["ts"] = "soon"
    events[70] = kernel("k", 100, 5, "not a number")
    trace = load_trace(write(tmp_path / "t.json", events))
    (note,) = trace.warnings
    assert note.numbers == {"events": 1, "first_error": "Expected `float`, got `str` - at `$.traceEvents[57].ts`"}
    assert len(trace) == 80 and trace.correlation[trace.names.index("k") == trace.name].tolist() == [-1]


@pytest.mark.parametrize("text, message", [
    (b"", "empty file"), (b"  \n ", "empty file"), (b"nonsense", "not valid JSON"),
    (b"[1, 2]", "not a Kineto trace (none of its 2 events is an object"),
    (b'{"traceEvents": {"ph": "X"}}', "traceEvents is not a list"),
    (b'{"schemaVersion": 1, "devicePro', "not a Kineto trace (no object with traceEvents) (the file ends inside"),
    (b'{"traceEvents": [{"ph": "X", "ts": 1, "dur": 1},, {}]}', "not valid JSON"),
    (b'{"traceEvents": [], "deviceProperties": 5}', "not a Kineto trace (Expected `array`, got `int`"),
    (b'{"traceEvents": [{"ph": "X", "name": "a", "ts": 1, "dur": 1}]} trailing', "more data after"),
])
def test_bad_files_give_one_line(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_bytes(text)
    with pytest.raises(TraceError) as raised:
        load_trace(path)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_the_local_pool_takes_as_many_workers_as_the_free_memory_holds(tmp_path, monkeypatch):
    """Workers are forked by cores and files, and fewer where the free memory would not hold each at the peak
    of one of the largest files: 60 MB and 0.8 bytes per byte of JSON (a gzip's size times 12) each."""
    from profiler import executors

    files = []
    for i, size in enumerate([100e6, 100e6, 50e6, 10e6]):
        path = tmp_path / (f"rank{i}.json" if i else "rank0.json.gz")
        with open(path, "wb") as f:
            f.truncate(int(size / 12 if i == 0 else size))  # sparse: no disk used
        files.append(path)
    peaks = [executors.worker_peak(f) for f in files]
    assert peaks == pytest.approx([140e6, 140e6, 100e6, 68e6], rel=1e-6)
    for free, expected in ((None, 4), (1e9, 4), (400e6, 3), (379e6, 2), (279e6, 1), (10e6, 1)):
        monkeypatch.setattr(executors, "available_memory", lambda free=free: free)
        assert executors.local_workers(files, jobs=8) == expected, free
    monkeypatch.setattr(executors, "available_memory", lambda: None)
    assert executors.local_workers(files, jobs=2) == 2 and executors.local_workers(files[:1], jobs=8) == 1


def test_free_memory_is_the_nearer_of_the_machine_and_its_cgroup(tmp_path):
    from profiler.executors import available_memory

    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/meminfo").write_text("MemTotal: 24000000 kB\nMemAvailable: 20000000 kB\n")
    assert available_memory(tmp_path) == 20000000 * 1024
    (tmp_path / "sys/fs/cgroup").mkdir(parents=True)
    (tmp_path / "sys/fs/cgroup/memory.max").write_text("8000000000\n")
    (tmp_path / "sys/fs/cgroup/memory.current").write_text("3000000000\n")
    assert available_memory(tmp_path) == 5e9
    (tmp_path / "sys/fs/cgroup/memory.max").write_text("max\n")
    assert available_memory(tmp_path) == 20000000 * 1024


@pytest.mark.parametrize("readers", [2, 3, 5])
def test_several_readers_give_the_columns_of_one(tmp_path, monkeypatch, readers):
    """Ranges of a plain file read by forked processes, cut where an event seems to end: even where a cut
    lands in a name or in nested args (the decoding proves it wrong and the file is read in one pass), and
    with wrong types in a range (their index in the whole file is what the warning gives), the columns and
    warnings are those of one reader."""
    from profiler.trace import split

    monkeypatch.setattr(split, "MIN_RANGE_BYTES", 2000)
    monkeypatch.setattr(split, "WINDOW", 300)
    monkeypatch.setattr(stream, "BLOCK", 700)
    events = tricky_events(200)
    events[400]["dur"] = "long"
    path = write(tmp_path / "t.json", events)
    one = load_trace(path)
    assert [w.numbers["first_error"] for w in one.warnings] == ["Expected `float`, got `str` - at "
                                                               "`$.traceEvents[400].dur`"]
    many = load_trace(path, split.ranges_for(path, readers))
    assert columns(many) == columns(one) and many.warnings == one.warnings
    del events[400]
    clean = write(tmp_path / "clean.json", events)
    assert columns(load_trace(clean, split.ranges_for(clean, readers))) == columns(load_trace(clean))
    plain = write(tmp_path / "plain.json", [step(1, 0, 10_000)] + [op(f"aten::op{i % 9}", i, 1) for i in range(900)])
    ranges = split.Ranges(plain, readers)  # where every cut is right, the ranges are read apart, in one pass
    resume = ranges.split(plain.read_bytes().index(b'"traceEvents": [') + 16)
    readings = ranges.readings()
    assert resume and len(readings) == readers - 1 and all(r.elements > 50 and not r.dropped for r in readings)


def _reader_that_dies(path, start, stop):
    """A range reader whose process is killed (the OOM killer, a signal): its pool breaks."""
    os._exit(1)


def _reader_out_of_memory(path, start, stop):
    raise MemoryError


@pytest.mark.parametrize("failure", [_reader_that_dies, _reader_out_of_memory])
def test_a_reader_that_fails_costs_a_second_pass_only(tmp_path, monkeypatch, failure):
    from profiler.trace import split

    monkeypatch.setattr(split, "MIN_RANGE_BYTES", 2000)
    plain = write(tmp_path / "plain.json", [step(1, 0, 10_000)] + [op(f"aten::op{i % 9}", i, 1) for i in range(900)])
    one = load_trace(plain)
    monkeypatch.setattr(split, "read_range", failure)  # the forked readers inherit it
    assert columns(load_trace(plain, split.ranges_for(plain, 3))) == columns(one)


MEASURE_LOAD = """
import sys
from pathlib import Path
from profiler.trace.load import load_trace

def kb(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field + ":"))

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak resident set restarts from now
before = kb("VmRSS")
trace = load_trace(Path(sys.argv[1]))
print(len(trace), (kb("VmHWM") - before) * 1024)
"""


def test_reading_holds_the_columns_not_the_file(tmp_path):
    """The reader's peak is its columns (56 bytes a complete event) and a few MB of chunks, whatever the size of
    the file: a 19 MB trace of 60,000 ops adds at most 3.4 + 12 MB while it is read (the whole-file reader held
    2.3x the file)."""
    import subprocess
    import sys

    shapes = {"Input Dims": [[64, 128], [128, 256]], "Input type": ["float", "float"], "Concrete Inputs": ["", ""]}
    events = [step(1, 0, 10_000_000)] + [op(f"aten::op{i % 50}", 10 + i * 100, 50, **shapes, **{
        "External id": i, "Record function id": i, "Sequence number": i, "Fwd thread id": 0}) for i in range(60_000)]
    path = write(tmp_path / "t.json", events)
    size = path.stat().st_size
    assert 15e6 < size < 25e6
    out = subprocess.run([sys.executable, "-c", MEASURE_LOAD, str(path)], capture_output=True, text=True, check=True)
    rows, added = map(int, out.stdout.split())
    assert rows == 60_001
    assert added < 56 * rows + 12e6 < size
