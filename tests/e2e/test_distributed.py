"""Several ranks, one job: torchrun with DDP on gloo, a straggler injected on purpose, and an NCCL trace."""

import subprocess
import sys

import pytest
from conftest import ROOT, SCRIPT, TINY, shared_trace

from profiler.pipeline import analyze_path
from profiler.settings import Options


@pytest.fixture(scope="module")
def slow_rank_run(tmp_path_factory):
    """2 ranks; rank 1 sleeps 5 ms per sample (4 per batch) in its data loading."""
    out = tmp_path_factory.mktemp("ddp") / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(SCRIPT), *TINY,
           "--data_delay=0.005", "--data_delay_rank=1", f"--out={out}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_each_rank_writes_its_trace_and_rank_0_reports(slow_rank_run):
    out, result = slow_rank_run
    assert sorted(p.name.split(".")[0] for p in out.glob("*.pt.trace.json")) == ["rank0", "rank1"]
    # rank 0 alone speaks for the job: TINY's batch_size=4 x block_size=32 tokens on each rank
    assert result.stdout.count("done: ") == 1 and "128 tokens/iter per rank, 2 ranks" in result.stdout


@pytest.mark.timed
def test_the_slow_rank_is_named_with_its_cause(slow_rank_run):
    report = analyze_path(slow_rank_run[0], Options())
    assert report["source"]["ranks"] == [0, 1] and [r["rank"] for r in report["per_rank"]] == [0, 1]
    assert [(s["rank"], s["category"]) for s in report["stragglers"]] == [(1, "data_loading")]
    fast, slow = report["per_rank"]
    # rank 0 spends its wait in the all-reduce, exposed: most of its step
    assert fast["breakdown"]["communication"]["fraction"] > 0.5 > slow["breakdown"]["communication"]["fraction"]
    assert slow["breakdown"]["data_loading"]["ms"] > 15  # 4 samples × 5 ms
    assert report["stragglers"][0]["excess_ms"] > 15
    assert report["communication"]["calls_per_step"] == {"c10d::allreduce_": 1.0}
    comm = next(b for b in report["bottlenecks"] if b["cause"] == "communication")
    assert "rank 1" in comm["evidence"]
    # the job's MFU is the mean of the ranks' (per device), and its ledger adds up to it
    assert report["mfu"]["analytic"] == pytest.approx((fast["mfu"]["analytic"] + slow["mfu"]["analytic"]) / 2)
    assert sum(e["points"] for e in report["ledger"]) == pytest.approx(100 - 100 * report["mfu"]["analytic"], abs=0.01)


def test_nccl_trace_has_a_communication_share_and_its_exposed_part():
    report = analyze_path(shared_trace("hta_a100_dlrm_rank3"), Options())
    comm = report["communication"]
    assert report["source"]["ranks"] == [3]
    assert comm["total_ms"] > comm["exposed_ms"] == pytest.approx(report["breakdown"]["communication"]["ms"])
    assert 0.3 < comm["exposed_fraction"] < 0.8  # about half of the collective time is hidden behind compute
    assert report["breakdown"]["communication"]["fraction"] > 0.1
    comm_ops = {op["name"] for op in report["top_ops"] if op["category"] == "communication"}
    assert {"nccl:all_to_all", "nccl:all_reduce"} <= comm_ops


def test_the_files_of_a_folder_analysed_in_parallel_give_the_same_report(tmp_path):
    """Eight ranks and a file that cannot be read: two worker processes, one, the same report and warnings."""
    import shutil

    folder = shared_trace("dlrm_v100_8rank").parent
    for f in folder.iterdir():
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "broken.pt.trace.json").write_text('{"traceEvents": [')
    one, two = (analyze_path(tmp_path, Options(jobs=jobs)) for jobs in (1, 2))
    assert one == two and len(two["per_rank"]) == 8
    assert any(w.startswith("skipped ") and "broken.pt.trace.json" in w for w in two["warnings"])
