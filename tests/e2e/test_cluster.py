"""A job's traces analysed on a Dask cluster (distributed.LocalCluster here): the same report as the local pool,
files read where they are (fsspec URLs), a file whose worker dies costs that file only, and an unreachable
scheduler is one line and exit status 2."""

import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import shared_trace

from profiler import __main__ as cli
from profiler import executors, pipeline
from profiler.pipeline import analyze_path
from profiler.settings import Options

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
fsspec = pytest.importorskip("fsspec")


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes of two threads each, on 127.0.0.1; a file's task is not retried after its worker
    dies."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1",
                                      dashboard_address=":0") as local:
            yield local.scheduler_address


@pytest.fixture
def eight_ranks(tmp_path):
    """The 8 ranks of a DLRM job and a file that cannot be read."""
    folder = shared_trace("dlrm_v100_8rank").parent
    for f in folder.iterdir():
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "broken.pt.trace.json").write_text('{"traceEvents": [')
    return tmp_path


def test_a_cluster_gives_the_local_pools_report(cluster, eight_ranks):
    here = analyze_path(eight_ranks, Options(jobs=2))
    there = analyze_path(eight_ranks, Options(scheduler=cluster))
    assert there == here and len(there["per_rank"]) == 8
    assert any(w.startswith("skipped ") and "broken.pt.trace.json" in w for w in there["warnings"])


def without_paths(report: dict) -> dict:
    """The report less where its files were (a URL or a path): the rest must not depend on it."""
    return {**report, "source": {**report["source"], "paths": len(report["source"]["paths"])},
            "warnings": [w for w in report["warnings"] if not w.startswith("skipped ")],
            "warnings_data": [w for w in report["warnings_data"] if w["code"] != "skipped_file"]}


def test_workers_read_fsspec_urls_where_they_are(cluster, eight_ranks):
    there = analyze_path(f"file://{eight_ranks}", Options(scheduler=cluster))
    first = sorted(p.name for p in eight_ranks.glob("*.pt.trace.json.gz"))[0]
    assert there["source"]["paths"][0] == f"file://{eight_ranks}/{first}"
    assert without_paths(there) == without_paths(analyze_path(eight_ranks, Options(jobs=1)))


def test_memory_urls_on_a_cluster_in_this_process():
    """memory:// lives in one process: a cluster of threads sees the files the client wrote."""
    source = shared_trace("dlrm_v100_8rank").parent
    memory = fsspec.filesystem("memory")
    for f in sorted(source.glob("*.json*"))[:3]:
        memory.pipe(f"/dlrm/{f.name}", f.read_bytes())
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as c:
        there = analyze_path("memory://dlrm", Options(scheduler=c.scheduler_address))
    assert there["source"]["paths"] == [f"memory:///dlrm/{f.name}" for f in sorted(source.glob("*.json*"))[:3]]
    assert len(there["per_rank"]) == 3


analyze_for_real = pipeline.analyze_one


def dies_on_poison(path, short_gap_us, timeline):
    """A worker that dies while it reads one of the files (out of memory, a node lost), once every other file is
    analysed (each leaves a mark beside the files), so that no other file's task is on the worker it takes down."""
    folder = Path(str(path)).parent
    if "poison" not in str(path):
        result = analyze_for_real(path, short_gap_us, timeline)
        (folder / f"{Path(str(path)).name}.done").touch()
        return result
    for _ in range(600):
        if len(list(folder.glob("*.done"))) == 8:
            break
        time.sleep(0.05)
    os._exit(1)


def test_a_worker_that_dies_costs_its_file_only(cluster, eight_ranks, monkeypatch):
    (eight_ranks / "broken.pt.trace.json").unlink()
    shutil.copy(next(eight_ranks.glob("worker0_*")), eight_ranks / "poison.pt.trace.json.gz")
    monkeypatch.setattr(pipeline, "analyze_one", dies_on_poison)
    report = analyze_path(eight_ranks, Options(scheduler=cluster))
    skipped = [w for w in report["warnings"] if w.startswith("skipped ")]
    assert len(skipped) == 1 and "poison.pt.trace.json.gz: failed on the cluster (KilledWorker" in skipped[0]
    assert len(report["per_rank"]) == 8  # the other files, each read once


def test_an_unreachable_scheduler_is_one_line_and_exit_2(eight_ranks, monkeypatch, capsys):
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", "1s")
    assert cli.main(["analyze", str(eight_ranks), "--scheduler", "tcp://127.0.0.1:9", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:9") and err.count("\n") == 1
    assert cli.main(["analyze", str(eight_ranks), "--scheduler", "scheduler-without-port", "--quiet"]) == 2
    assert capsys.readouterr().err == ("error: scheduler-without-port: not a Dask scheduler address (expected "
                                       "tcp://host:port)\n")
