"""Who runs the per-file analysis: this machine's worker processes, or a Dask cluster. The same function runs on
either, file by file, and hands back its compact result; the engine is only a choice of executor.

On a cluster (dask.distributed, the optional `cluster` extra) the workers read the files where they are (local
paths on a shared file system, or fsspec URLs) and send back only the per-file results. Dask schedules, retries
a file whose worker died on another (up to its `distributed.scheduler.allowed-failures`), and moves the data; a
file that still fails, or whose workers kept dying, costs that file alone: its one-line reason stands in its
place, as a bad file's does on this machine.
"""

import multiprocessing
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from tqdm import tqdm

from profiler.trace.errors import TraceError

CONNECT_TIMEOUT = "10s"  # an unreachable scheduler is an error after this long, not a hang
# [protocol://]host:port, or a cluster inside this process (inproc://...)
ADDRESS = re.compile(r"^([a-z+]+://)?(\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):\d+$|^inproc://\S+$")


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
