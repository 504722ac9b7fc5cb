"""A trace file's bytes in blocks of a megabyte, gzip decompressed on the way: the reader never holds the whole
file, only the block it is cutting into events."""

import gzip
import zlib
from collections.abc import Iterator

from profiler.trace.errors import TraceError

BLOCK = 1 << 20  # bytes read (or decompressed) at a time: some 2,000 events, decoded while in the cache


class Blocks:
    """Iterating gives the file's blocks in order, from byte `start` to `stop` of a plain file (its end by
    default); `cut_short` then says why the bytes ended early (a gzip stream without its end), or is empty;
    `size` is the offset reached in the decompressed bytes."""

    def __init__(self, path, opener, block: int = 0, start: int = 0, stop: int | None = None):
        self.path, self.opener, self.block = path, opener, block or BLOCK
        self.start, self.stop = start, stop
        self.cut_short = ""
        self.size = start
        self._file = None

    def __iter__(self) -> Iterator[bytes]:
        with self.opener(self.path) as f:
            gzipped = f.read(2) == b"\x1f\x8b"
            if not gzipped and str(self.path).endswith(".gz"):
                raise TraceError(f"{self.path}: named .gz but is not gzip data")
            if gzipped:
                f.seek(0)
                yield from self._gunzipped(gzip.GzipFile(fileobj=f, mode="rb"))
                return
            self._file = f
            f.seek(self.start)
            while data := f.read(self.block if self.stop is None else min(self.block, self.stop - self.size)):
                self.size += len(data)
                yield data

    def seek(self, offset: int):
        """Go on from this byte of a plain file (the blocks before it are being read elsewhere)."""
        assert self._file is not None, "only a plain file is read from an offset"
        self._file.seek(offset)
        self.size = offset

    def _gunzipped(self, source: gzip.GzipFile) -> Iterator[bytes]:
        """Blocks of the decompressed stream, gathered from reads of at most one compressed buffer each, so that
        a stream cut short loses only its last few kB."""
        pieces: list[bytes] = []
        held = 0
        while True:
            try:
                data = source.read1(self.block - held)
            except EOFError:  # the compressed stream ends before its trailer: a file still being written
                self.cut_short = "the gzip stream ends early"
                data = b""
            except (OSError, zlib.error) as e:
                raise TraceError(f"{self.path}: corrupt gzip data ({e})") from None
            pieces.append(data)
            held += len(data)
            if held >= self.block or not data:
                if held:
                    self.size += held
                    yield b"".join(pieces)
                if not data:
                    return
                pieces, held = [], 0
