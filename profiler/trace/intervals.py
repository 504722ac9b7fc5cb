"""Vectorized interval arithmetic over numpy arrays: unions, coverage of windows, and nesting trees.

Every stage of the analysis asks the same two questions of a timeline, "how much of this window is covered"
and "which span encloses this instant", for up to millions of events; these functions answer them in
O(n log n) without a Python loop per event.
"""

import numpy as np


def merge(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of intervals as sorted, disjoint intervals."""
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    if not len(starts):
        return starts, ends
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], np.maximum.accumulate(ends[order])
    new_run = np.empty(len(starts), dtype=bool)
    new_run[0] = True
    new_run[1:] = starts[1:] > ends[:-1]
    first = np.flatnonzero(new_run)
    last = np.append(first[1:] - 1, len(starts) - 1)
    return starts[first], ends[last]


def coverage(merged_starts: np.ndarray, merged_ends: np.ndarray, w0: np.ndarray, w1: np.ndarray) -> np.ndarray:
    """How much of each window [w0, w1] the merged (disjoint, sorted) intervals cover."""
    return _covered_before(merged_starts, merged_ends, w1) - _covered_before(merged_starts, merged_ends, w0)


def _covered_before(s: np.ndarray, e: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    if not len(s):
        return np.zeros_like(t)
    cum_before = np.concatenate(([0.0], np.cumsum(e - s)))
    i = np.searchsorted(s, t, side="right") - 1
    inside = np.where(i >= 0, np.clip(t - s[np.maximum(i, 0)], 0, (e - s)[np.maximum(i, 0)]), 0.0)
    return cum_before[np.maximum(i, 0)] * (i >= 0) + inside


def exclusive_coverage(levels: list[tuple[np.ndarray, np.ndarray]], w0: np.ndarray, w1: np.ndarray) -> np.ndarray:
    """Time of each window owned by each priority level: a moment belongs to the first level covering it.

    Returns an array (len(levels) + 1, n_windows); the last row is the time no level covers.
    """
    out = np.zeros((len(levels) + 1, len(w0)))
    covered_so_far = np.zeros(len(w0))
    all_s, all_e = np.empty(0), np.empty(0)
    for k, (s, e) in enumerate(levels):
        all_s, all_e = merge(np.concatenate((all_s, s)), np.concatenate((all_e, e)))
        # a union with more spans covers no less: the max keeps float rounding from making a level negative
        covered = np.maximum(coverage(all_s, all_e, w0, w1), covered_so_far)
        out[k] = covered - covered_so_far
        covered_so_far = covered
    out[-1] = np.maximum((w1 - w0) - covered_so_far, 0.0)
    return out


class Forest:
    """The nesting of spans on threads (each span inside at most one parent on its own thread).

    Spans are ordered by (thread, start, longest first); `order` maps that order back to the caller's
    indices. Zero-length spans are left out: they contain nothing.
    """

    def __init__(self, starts: np.ndarray, ends: np.ndarray, threads: np.ndarray):
        span = max(float(ends.max() - starts.min()) if len(starts) else 0.0, 1.0) * 2
        base = float(starts.min()) if len(starts) else 0.0
        keep = np.flatnonzero(ends > starts)
        offset = threads[keep].astype(np.float64) * span - base  # threads laid end to end on one axis
        s, e = starts[keep] + offset, ends[keep] + offset
        order = np.lexsort((-e, s))
        self.order, self.offset = keep[order], offset[order]
        self.starts, self.ends, self.span, self.base, self.n = s[order], e[order], span, base, len(starts)
        # depth: spans open at my start = spans started before me minus spans ended by then
        sorted_ends = np.sort(self.ends)
        depth = np.arange(len(self.starts)) - np.searchsorted(sorted_ends, self.starts, side="right")
        self.depth = np.maximum(depth, 0)
        self.parent = np.full(len(self.starts), -1)
        for d in range(1, int(self.depth.max()) + 1 if len(self.depth) else 0):
            above, here = np.flatnonzero(self.depth == d - 1), np.flatnonzero(self.depth == d)
            j = np.searchsorted(above, here) - 1
            self.parent[here] = np.where(j >= 0, above[np.maximum(j, 0)], -1)

    def enclosing(self, times: np.ndarray, threads: np.ndarray) -> np.ndarray:
        """For each instant on a thread, the caller's index of the innermost span containing it, or -1."""
        if not len(self.starts):
            return np.full(len(times), -1)
        k = self._innermost(np.asarray(times, dtype=np.float64) + threads.astype(np.float64) * self.span - self.base)
        return np.where(k >= 0, self.order[np.maximum(k, 0)], -1)

    def segments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The threads' timelines cut where any span starts or ends: (start, end, innermost span) per piece
        covered by a span, the span as the caller's index. Each instant of a thread is in one piece."""
        cuts = np.unique(np.concatenate((self.starts, self.ends)))
        if len(cuts) < 2:
            return np.empty(0), np.empty(0), np.empty(0, dtype=np.int64)
        k = self._innermost((cuts[:-1] + cuts[1:]) / 2)
        covered = k >= 0
        k = k[covered]
        return cuts[:-1][covered] - self.offset[k], cuts[1:][covered] - self.offset[k], self.order[k]

    def _innermost(self, t: np.ndarray) -> np.ndarray:
        """Sorted index of the innermost span holding each instant of the one time axis, or -1."""
        k = np.searchsorted(self.starts, t, side="right") - 1
        for _ in range(int(self.depth.max()) + 2):
            open_ = k >= 0
            miss = open_ & (self.ends[np.maximum(k, 0)] < t)
            if not miss.any():
                break
            k[miss] = self.parent[k[miss]]
        return k

    def parents(self) -> np.ndarray:
        """Parent of each span in the caller's indexing (-1 for roots and for left-out spans)."""
        out = np.full(self.n, -1)
        out[self.order] = np.where(self.parent >= 0, self.order[np.maximum(self.parent, 0)], -1)
        return out

    def levels(self) -> list[np.ndarray]:
        """Caller's indices grouped by depth, roots first: each group's parents are in earlier groups."""
        if not len(self.depth):
            return []
        return [self.order[self.depth == d] for d in range(int(self.depth.max()) + 1)]


def short_gaps(merged_starts: np.ndarray, merged_ends: np.ndarray, w0: np.ndarray, w1: np.ndarray,
               max_gap: float) -> np.ndarray:
    """Per window, the total length of its uncovered stretches that are shorter than max_gap."""
    out = np.zeros(len(w0))
    for j, (a, b) in enumerate(zip(w0, w1)):
        lo, hi = np.searchsorted(merged_ends, a, side="right"), np.searchsorted(merged_starts, b)
        gap_starts = np.concatenate(([a], np.clip(merged_ends[lo:hi], a, b)))
        gap_ends = np.concatenate((np.clip(merged_starts[lo:hi], a, b), [b]))
        gaps = gap_ends - gap_starts
        out[j] = gaps[(gaps > 0) & (gaps < max_gap)].sum()
    return out
