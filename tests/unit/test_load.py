"""Reading a trace: gzip in blocks (every member of it), and shapes decoded once per distinct text."""

import gzip

import numpy as np
import pytest
from synth import op, step, write

from profiler.trace.errors import TraceError
from profiler.trace.load import DimsArgs, ShapeArgs, load_trace, trace_files
from profiler.trace.location import as_location, open_binary
from profiler.trace.stream import Blocks


def test_a_gzip_of_several_members_is_read_whole(tmp_path):
    """Two gzip members, one after the other, decompress as one stream."""
    plain = write(tmp_path / "t.json", [step(1, 0, 100)] + [op(f"aten::op{i}", i, 1) for i in range(2000)])
    text = plain.read_bytes()
    half = len(text) // 2
    gz = tmp_path / "t.json.gz"
    gz.write_bytes(gzip.compress(text[:half]) + gzip.compress(text[half:]))
    assert b"".join(Blocks(gz, open_binary, block=1000)) == text
    assert len(load_trace(gz)) == len(load_trace(plain)) == 2001


def test_rows_with_the_same_shapes_share_one_decoded_value(tmp_path):
    mm = {"Input Dims": [[8, 16], [16, 32]], "Input type": ["float", "float"], "Concrete Inputs": ["", ""]}
    events = [op("aten::mm", 10 * i, 5, **mm, **{"External id": i}) for i in range(3)]  # args differ, shapes not
    events += [op("aten::relu", 40, 5, **{"Input Dims": "not a list"}), op("aten::add", 50, 5)]
    trace = load_trace(write(tmp_path / "t.json", events))
    shapes = trace.shapes(np.arange(5))
    assert shapes[0] is shapes[1] is shapes[2]
    assert shapes[0] == ShapeArgs(dims=[[8, 16], [16, 32]], types=["float", "float"], concrete=["", ""])
    assert shapes[3] == ShapeArgs() and shapes[4] == ShapeArgs()  # a field of the wrong type, none recorded
    assert [s.dims for s in trace.shapes(np.arange(5), DimsArgs)] == [[[8, 16], [16, 32]]] * 3 + [[], []]


def test_traces_behind_fsspec_urls_are_listed_and_read_as_local_ones(tmp_path):
    """memory:// and file:// stand for s3://, gs://, hdfs://: fsspec lists and opens them, gzip is streamed."""
    fsspec = pytest.importorskip("fsspec")
    plain = write(tmp_path / "rank0.pt.trace.json", [step(1, 0, 100)] + [op("aten::add", i, 1) for i in range(50)])
    text = plain.read_bytes()
    memory = fsspec.filesystem("memory")
    memory.pipe("/job/rank0.pt.trace.json.gz", gzip.compress(text))
    memory.pipe("/job/rank1.pt.trace.json", text)
    memory.pipe("/job/report.json", b"{}")  # a report we wrote: never a trace
    files = trace_files(as_location("memory://job"))
    assert files == ["memory:///job/rank0.pt.trace.json.gz", "memory:///job/rank1.pt.trace.json"]
    assert [len(load_trace(f)) for f in files] == [51, 51]
    assert trace_files(as_location(f"file://{tmp_path}")) == [f"file://{plain}"]
    assert len(load_trace(f"file://{plain}")) == 51
    with pytest.raises(TraceError, match="memory://job/none: no such file or folder"):
        trace_files("memory://job/none")
    with pytest.raises(TraceError, match="cannot read"):
        load_trace("memory://job/missing.json")
