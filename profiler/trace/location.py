"""Where traces are: a local path, or an fsspec URL (s3://, gs://, hdfs://, file://, memory://, ...) that the
process reading it (a worker, on a cluster) opens where it is. fsspec is imported only for URLs: it comes with
the optional `cluster` extra (and with most cloud SDKs)."""

import re
from pathlib import Path
from typing import IO

from profiler.files import written_here
from profiler.trace.errors import TraceError

Location = Path | str  # a local path, or a URL kept as text (a Path would fold its "//")
URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_url(location: Location) -> bool:
    return isinstance(location, str) and bool(URL.match(location))


def as_location(text: str) -> Location:
    """A command line's PATH: a URL as it is, anything else a local path."""
    return text if URL.match(text) else Path(text)


def _filesystem(url: str):
    try:
        import fsspec
    except ImportError:
        raise TraceError(f"{url}: reading URLs needs fsspec (pip install -e '.[cluster]')") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:  # a protocol whose package is not installed (s3fs, gcsfs, ...)
        raise TraceError(f"{url}: {e}") from None


def open_binary(location: Location) -> IO[bytes]:
    """The file, open for reading bytes (seekable: gzip's trailer is read first)."""
    if not is_url(location):
        return Path(location).open("rb")
    fs, path = _filesystem(str(location))
    return fs.open(path, "rb")


def file_name(location: Location) -> str:
    """The last component of a path or a URL's path."""
    return Path(str(location).rstrip("/")).name


def url_trace_files(url: str) -> list[str]:
    """A URL's trace file, or its folder's profiler traces (*.pt.trace.json[.gz], else any *.json[.gz]), sorted,
    as URLs of the same protocol."""
    fs, path = _filesystem(url)
    try:
        if fs.isfile(path):
            return [url]
        if not fs.isdir(path):
            raise TraceError(f"{url}: no such file or folder")
        for patterns in (("*.pt.trace.json", "*.pt.trace.json.gz"), ("*.json", "*.json.gz")):
            found = sorted({p for pattern in patterns for p in fs.glob(f"{path.rstrip('/')}/**/{pattern}")
                            if not written_here(Path(p))})
            if found:
                return [fs.unstrip_protocol(p) for p in found]
    except OSError as e:
        raise TraceError(f"{url}: cannot list ({e})") from None
    raise TraceError(f"{url}: no trace files (*.json, *.json.gz) in this folder")
