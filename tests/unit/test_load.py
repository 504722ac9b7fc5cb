"""Reading a trace: gzip in chunks (whatever its trailer says), and shapes decoded once per distinct text."""

import gzip

import numpy as np
from synth import op, step, write

from profiler.trace.load import DimsArgs, ShapeArgs, load_trace, read_bytes


def test_a_gzip_of_several_members_is_read_whole(tmp_path):
    """The trailer gives the last member's size only: the buffer sized from it grows to hold the rest."""
    plain = write(tmp_path / "t.json", [step(1, 0, 100)] + [op(f"aten::op{i}", i, 1) for i in range(2000)])
    text = plain.read_bytes()
    half = len(text) // 2
    gz = tmp_path / "t.json.gz"
    gz.write_bytes(gzip.compress(text[:half]) + gzip.compress(text[half:]))
    assert read_bytes(gz) == text
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
