import numpy as np

from profiler.trace.intervals import Forest, coverage, exclusive_coverage, merge

a = np.array


def test_merge_and_coverage():
    s, e = merge(a([5.0, 0.0, 2.0, 10.0]), a([7.0, 3.0, 4.0, 10.0]))  # [0,4] [5,7]; [10,10] is empty
    assert s.tolist() == [0, 5] and e.tolist() == [4, 7]
    assert coverage(s, e, a([0.0, 3.0, 6.0]), a([10.0, 5.5, 6.5])).tolist() == [6.0, 1.5, 0.5]


def test_exclusive_coverage_gives_each_moment_to_the_first_level():
    levels = [(a([2.0]), a([4.0])), (a([0.0, 3.0]), a([3.0, 8.0]))]
    out = exclusive_coverage(levels, a([0.0, 5.0]), a([10.0, 6.0]))
    assert out[:, 0].tolist() == [2.0, 6.0, 2.0]  # level 0, level 1 (8 minus the 2 of level 0), uncovered
    assert out[:, 1].tolist() == [0.0, 1.0, 0.0]
    assert out.sum(axis=0).tolist() == [10.0, 1.0]


def test_forest_finds_innermost_enclosing_span_per_thread():
    # thread 0: A [0,10] ⊃ B [1,5] ⊃ C [2,3]; D [6,9] in A; thread 1: E [0,10]
    starts, ends = a([0.0, 1, 2, 6, 0]), a([10.0, 5, 3, 9, 10])
    threads = a([0, 0, 0, 0, 1])
    f = Forest(starts, ends, threads)
    assert f.parents().tolist() == [-1, 0, 1, 0, -1]
    hits = f.enclosing(a([2.5, 4.0, 5.5, 7.0, 11.0, 2.5]), a([0, 0, 0, 0, 0, 1]))
    assert hits.tolist() == [2, 1, 0, 3, -1, 4]
    assert [sorted(level.tolist()) for level in f.levels()] == [[0, 4], [1, 3], [2]]
