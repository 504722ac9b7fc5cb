"""Who runs the per-file analysis: this machine's worker processes, or a Dask cluster. The same function runs on
either, file by file, and hands back its compact result; the engine is only a choice of executor.

On a cluster (dask.distributed, the optional `cluster` extra) the workers read the files where they are (local
paths on a shared file system, or fsspec URLs) and send back only the per-file results. Dask schedules, retries
a file whose worker died on another (up to its `distributed.scheduler.allowed-failures`), and moves the data; a
file that still fails, or whose workers kept dying, costs that file alone: its one-line reason stands in its
place, as a bad file's does on this machine.
"""

import multiprocessing
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from profiler.trace.errors import TraceError

CONNECT_TIMEOUT = "10s"  # an unreachable scheduler is an error after this long, not a hang
# [protocol://]host:port, or a cluster inside this process (inproc://...)
ADDRESS = re.compile(r"^([a-z+]+://)?(\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):\d+$|^inproc://\S+$")


# a worker's peak memory, by the reader's model (docs/benchmarks/speed-and-scale.md): the interpreter with the stages'
# code, and about 230 bytes per complete event (the reader's columns and the stages' arrays over them), which
# takes 310 to 790 bytes of JSON
WORKER_BASE_BYTES = 60e6
WORKER_BYTES_PER_JSON_BYTE = 0.8
GZIP_RATIO = 12  # a Kineto trace's JSON is some 8 to 15 times its gzip


def local_workers(files: Sequence, jobs: int) -> int:
    """As many worker processes as `jobs` allows and the files need, but no more than the memory free now holds
    with each at the peak of one of the largest files (a file's peak grows with its size)."""
    peaks = sorted((worker_peak(f) for f in files), reverse=True)
    free = available_memory()
    workers = max(1, min(jobs, len(files)))
    while workers > 1 and free is not None and sum(peaks[:workers]) > free:
        workers -= 1
    return workers


def worker_peak(location) -> float:
    """The memory a worker reaches on this file, by its size on disk (a URL's is not looked up: the base)."""
    try:
        size = os.path.getsize(location) if isinstance(location, Path) else 0
    except OSError:
        size = 0
    return WORKER_BASE_BYTES + WORKER_BYTES_PER_JSON_BYTE * size * (GZIP_RATIO if str(location).endswith(".gz") else 1)


def available_memory(root: Path = Path("/")) -> float | None:
    """Bytes this process may still take: the kernel's MemAvailable, or less where a cgroup's limit is nearer."""
    found = []
    try:
        meminfo = (root / "proc/meminfo").read_text()
        found.append(int(re.search(r"MemAvailable:\s+(\d+) kB", meminfo)[1]) * 1024)  # type: ignore[index]
    except (OSError, TypeError):
        pass
    try:
        limit = (root / "sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int((root / "sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return float(min(found)) if found else None


def run_here(function: Callable, items: Sequence, jobs: int, bar: tqdm) -> list:
    """function(*item) for each item, in `jobs` forked worker processes (they share the code and hand back
    only the results), or in this process when one job or no fork."""
    if jobs <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [_ticked(bar, function(*item)) for item in items]
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        return [_ticked(bar, r) for r in pool.map(function, *zip(*items))]


def run_on_cluster(function: Callable, items: Sequence, address: str, bar: tqdm) -> list:
    """function(*item) for each item on the Dask cluster whose scheduler is at `address`; an item whose task
    failed there gives '<its first field>: <why>' in its place."""
    try:
        from distributed import Client
    except ImportError:
        raise TraceError("--scheduler needs Dask: pip install -e '.[cluster]'") from None
    if not ADDRESS.match(address):  # checked first: a Client half-built from a bad address hangs at exit
        raise TraceError(f"{address}: not a Dask scheduler address (expected tcp://host:port)")
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as e:
        raise TraceError(f"cannot reach the Dask scheduler at {address}: {e}") from None
    try:
        futures = [client.submit(function, *item, pure=False) for item in items]
        out = []
        for item, future in zip(items, futures):  # in order: the bar moves as the first files come back
            try:
                out.append(future.result())
            except Exception as e:  # a worker that died (KilledWorker), or the task's own error
                out.append(f"{item[0]}: failed on the cluster ({type(e).__name__}: {e})")
            bar.update()
        return out
    finally:
        client.close()


def _ticked(bar: tqdm, result):
    bar.update()
    return result
