"""A large plain trace file read by several processes at once: forked readers decode its first events, each a
range of the file, while this process reads the last range, and their columns are joined in the file's order.

The ranges are cut where an event seems to end (scan.py's guess), and the decoding proves each cut: a range
that starts between two events and decodes whole, as events alone, ends between two events too, so the next
range starts right; a wrong cut leaves a string or brackets open, which no decoder accepts. Where any range
fails, or held events of the wrong type (whose warning must say where they are in the whole file), the file is
read again in one pass."""

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from profiler.trace.columns import Reading
from profiler.trace.errors import TraceError
from profiler.trace.location import open_binary
from profiler.trace.scan import Walk, first_cut
from profiler.trace.stream import Blocks

MIN_RANGE_BYTES = 32 << 20  # a smaller range costs its process more than it saves
WINDOW = 1 << 20  # bytes read at a cut's offset to find where an event ends


def ranges_for(path, readers: int) -> "Ranges | None":
    """The ranges of a local file for `readers` processes, or None where one reads it (trace/load.py)."""
    return Ranges(path, readers) if readers > 1 and isinstance(path, Path) else None


class Ranges:
    """The Walk's `split`: the first ranges handed to other processes, the offset of the last one returned."""

    def __init__(self, path: Path, readers: int):
        self.path, self.readers = path, readers
        self.futures: list[Future] = []
        self.pool: ProcessPoolExecutor | None = None

    def split(self, start: int) -> int | None:
        with open(self.path, "rb") as f:
            if f.read(2) == b"\x1f\x8b":  # a gzip stream is read from its start, in one pass
                return None
        size = os.path.getsize(self.path)
        count = min(self.readers, (size - start) // MIN_RANGE_BYTES)
        if count < 2 or "fork" not in multiprocessing.get_all_start_methods():
            return None
        cuts = [start] + [cut for k in range(1, count) if (cut := self._cut(start + (size - start) * k // count))]
        if len(cuts) < 2:
            return None
        self.pool = ProcessPoolExecutor(len(cuts) - 1, mp_context=multiprocessing.get_context("fork"))
        # each range without the comma that ends it
        self.futures = [self.pool.submit(read_range, self.path, lo, hi - 1) for lo, hi in zip(cuts, cuts[1:])]
        return cuts[-1]

    def _cut(self, offset: int) -> int | None:
        """The offset just after the first event's closing comma past `offset`, or None where none is near."""
        with open(self.path, "rb") as f:
            f.seek(offset)
            comma = first_cut(f.read(WINDOW))
        return None if comma < 0 else offset + comma + 1

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def readings(self) -> list[Reading] | None:
        """The other processes' readings, in the file's order; None where one failed (its bytes, or the process
        itself: out of memory, killed) or found wrong types."""
        if self.pool is None:
            return []
        try:
            readings = [future.result() for future in self.futures]
        except Exception:  # noqa: BLE001 - whatever stopped a reader, the file is read again in one pass
            return None
        finally:
            self.pool.shutdown()
        return None if any(r is None or r.dropped for r in readings) else readings


def read_range(path: Path, start: int, stop: int) -> Reading | None:
    """The events between two cuts, decoded into columns (in a forked reader); None where the bytes are not
    whole events from end to end."""
    reading = Reading(path=path)
    walk = Walk(Blocks(path, open_binary, start=start, stop=stop), set(), reading, path)
    try:
        if walk.elements() or not walk.tail_whole:  # the array cannot end inside a range
            return None
    except (TraceError, RecursionError):
        return None
    reading.columns.events.done()
    reading.columns.memory.done()
    return reading
