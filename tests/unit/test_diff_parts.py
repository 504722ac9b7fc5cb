"""The diff's parts on hand-made inputs: the bootstrap, the matching of ops, the units of the ledger."""

import numpy as np
import pytest

from profiler.diff.compare import MFU, STEP_TIME, in_unit
from profiler.diff.noise import change_interval, resampled_means
from profiler.diff.ops import op_changes
from profiler.report.model import OpShape
from profiler.settings import DIFF_RESAMPLES, OPS_IN_REPORT


def test_resampled_means_are_seeded_and_need_two_steps():
    values = np.array([[10.0, 1.0], [12.0, 1.0], [14.0, 1.0]])
    means = resampled_means(values, seed=0)
    assert means.shape == (DIFF_RESAMPLES, 2)
    assert np.array_equal(means, resampled_means(values, seed=0))
    assert means[:, 0].min() >= 10.0 and means[:, 0].max() <= 14.0 and (means[:, 1] == 1.0).all()
    assert means[:, 0].mean() == pytest.approx(12.0, abs=0.05)
    assert resampled_means(values[:1], seed=0) is None


def test_an_interval_is_the_change_plus_the_spread_of_the_resampled_changes():
    steady = np.full(DIFF_RESAMPLES, 10.0)  # A's steps all alike: no spread on that side
    b = np.linspace(11.0, 13.0, DIFF_RESAMPLES)  # B's resampled means, centred on 12
    low, high = change_interval(2.0, steady, b, 10.0, 12.0)
    assert (low, high) == pytest.approx((2.0 - 0.95, 2.0 + 0.95), abs=0.01)  # 95% of a uniform ±1
    low_pct, high_pct = change_interval(0.2, steady, b, 10.0, 12.0, relative=True)
    assert (low_pct, high_pct) == pytest.approx((0.2 - 0.095, 0.2 + 0.095), abs=0.001)


def shaped(name, shapes, ms, count=1.0):
    return OpShape(name=name, shapes=shapes, category="matmul", count=count, ms=ms)


def test_ops_are_matched_by_name_and_shapes():
    a = [shaped("aten::mm", "[8,1024]x[1024,4096]", 3.0), shaped("aten::mm", "[8,64]x[64,64]", 1.0),
         shaped("aten::add", "[8]", 0.5), shaped("aten::relu", "[8]", 0.1)]
    b = [shaped("aten::mm", "[32,1024]x[1024,4096]", 9.0), shaped("aten::mm", "[8,64]x[64,64]", 1.0),
         shaped("aten::add", "[8]", 0.7, count=2.0), shaped("aten::gelu", "[8]", 0.3)]
    changes, left_out = op_changes(a, b)
    assert left_out == 0
    assert [(c.name, c.status, c.shapes_a, c.shapes, c.change_ms) for c in changes] == [
        ("aten::mm", "reshaped", "[8,1024]x[1024,4096]", "[32,1024]x[1024,4096]", 6.0),
        ("aten::gelu", "new", None, "[8]", 0.3),
        ("aten::add", "changed", None, "[8]", pytest.approx(0.2)),
        ("aten::relu", "removed", None, "[8]", -0.1)]  # the unchanged mm [8,64]x[64,64] is not listed
    assert changes[2].calls_a == 1.0 and changes[2].calls_b == 2.0


def test_an_op_missing_from_a_cut_table_is_not_called_new():
    a = [shaped(f"op{i}", "", 1.0) for i in range(OPS_IN_REPORT)]  # A's table is full: cut at its longest rows
    changes, left_out = op_changes(a, a[1:])  # B's is not: op0 is gone from B
    assert ([(c.name, c.status) for c in changes], left_out) == ([("op0", "removed")], 0)
    changes, left_out = op_changes(a, [*a[1:], shaped("tiny", "", 0.5)])  # both cut: either may be below a cut
    assert (changes, left_out) == ([], 2)


def test_an_mfu_ledger_in_points_of_the_step_time():
    mfu_ledger = {"io": 5.0, "non_fused": 10.0, "matmul_efficiency": 40.0, "small_batch": 15.0}  # MFU is 30%
    assert in_unit(mfu_ledger, MFU, False) == mfu_ledger
    assert in_unit(mfu_ledger, STEP_TIME, False) == {"io": 5.0, "non_fused": 10.0, "small_batch": 15.0, "useful": 70.0}
    time_ledger = {"io": 5.0, "useful": 95.0}
    assert in_unit(time_ledger, STEP_TIME, True) == time_ledger
