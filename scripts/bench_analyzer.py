"""Benchmark: `python -m profiler analyze` on a large trace made by repeating a real one, on a job of such
traces, and on up to 64 ranks of a small one.

    python scripts/bench_analyzer.py [--source=TRACE] [--copies=10 | --size=3GB] [--rounds=3] [--baseline=DIR]
                                     [--ranks=8] [--scaling=1,8,64] [--scheduler=ADDRESS|local:WORKERS]
                                     [--combine=1024,16384]

The default repeats tbplugin_resnet50_nw0 (../shared/traces) 10 times: 757k events, 324 MB (`--size=3GB`: 93
times, and only the large trace is measured). Each copy is shifted in time past the previous one, with its
correlation ids and step numbers renumbered, so the result is one long, consistent trace, written a copy at a
time. Prints, each in a fresh process and alternated: the analyzer against two floors, the old reader's (the
whole file read, then decoded by msgspec in one call into events with raw args) and today's (the file read and
decoded a chunk at a time into the fields the analysis reads, nothing kept), with the ratios and peak memory,
and against the analyzer of another checkout where `--baseline` names one (an older commit: `git worktree add
/tmp/base <commit>`); the same trace gzipped; `--ranks` copies of it as the ranks of one job, analysed by as
many workers as there are cores (wall time against 1.2 x ranks / cores x one file, and the peak memory of all
processes together); and the wall time for 1 to 64 ranks of the source trace, with the size of the per-rank
result the combining step holds. `--scheduler` also analyses the job on a Dask cluster (an address, or
`local:N` for a LocalCluster of N workers started here); `--combine` times the combining step alone for
thousands of ranks, from copies of the source file's compact result (no decoding), and what the client holds.
"""

import argparse
import gzip
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from profiler.mfu.memory import memory_size

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = ROOT.parent / "shared" / "traces" / "tbplugin_resnet50_nw0" / "worker0.1623143089861.pt.trace.json.gz"


def repeat_trace(source: Path, copies: int, out: Path) -> tuple[int, int, int]:
    """Write `copies` back-to-back repetitions of the source trace's events, one copy at a time (a 3 GB trace
    is never held); returns the count of events, of complete ones and of memory ones."""
    opener = gzip.open if source.suffix == ".gz" else open
    with opener(source, "rt") as f:
        trace = json.load(f)
    events = trace["traceEvents"]
    timed = [e for e in events if "ts" in e]
    t0 = min(float(e["ts"]) for e in timed)
    span = max(float(e["ts"]) + float(e.get("dur", 0)) for e in timed) - t0
    steps = [int(e["name"].split("#")[1]) for e in events if str(e.get("name", "")).startswith("ProfilerStep#")]
    n_steps = max(steps) - min(steps) + 1 if steps else 0
    ids = [int(e.get("args", {}).get("correlation", 0)) for e in events] + [int(e.get("id", 0)) for e in events
                                                                           if isinstance(e.get("id"), int)]
    id_stride = max(ids) + 1
    trace["traceEvents"] = ["EVENTS"]
    head, tail = json.dumps(trace).split('"EVENTS"')
    written = complete = memory = 0
    with open(out, "w") as f:
        f.write(head)
        for k in range(copies):
            copy = [shifted(e, k, span, id_stride, n_steps) for e in events if not (k and e.get("ph") == "M")]
            f.write((", " if k else "") + json.dumps(copy)[1:-1])
            written += len(copy)
            complete += sum(e.get("ph") == "X" for e in copy)
            memory += sum(e.get("ph") == "i" and e.get("name") == "[memory]" for e in copy)
        f.write(tail)
    return written, complete, memory


def shifted(e: dict, k: int, span: float, id_stride: int, n_steps: int) -> dict:
    """The k-th copy of an event: later by k spans (the first copy's times become floats too), its ids and step
    number past the earlier copies'."""
    e = dict(e)
    if "ts" in e:
        e["ts"] = e["ts"] + k * (span + 1000)
    if k and isinstance(e.get("id"), int):
        e["id"] += k * id_stride
    if k and "correlation" in e.get("args", {}):
        e["args"] = dict(e["args"], correlation=e["args"]["correlation"] + k * id_stride)
    if k and str(e.get("name", "")).startswith("ProfilerStep#"):
        e["name"] = f"ProfilerStep#{int(e['name'].split('#')[1]) + k * n_steps}"
    return e


# the memory model (docs/benchmarks/speed-and-scale.md): a process's base, and bytes per complete event (the
# reader's columns and the stages' arrays over them) and per memory event
MODEL_BASE, MODEL_PER_COMPLETE, MODEL_PER_MEMORY = 50e6, 230, 48
# the floor of the reader before issue 35: the whole file read into memory, then decoded with msgspec in one call
# into events with their args kept as raw JSON
OLD_FLOOR = """
import gzip, sys, msgspec
from profiler.trace.jsonfile import LooseArgsEvent  # the old reader's event: its fields, args as raw JSON
TraceFile = msgspec.defstruct("TraceFile", [("traceEvents", list[LooseArgsEvent])])
with (gzip.open if sys.argv[1].endswith(".gz") else open)(sys.argv[1], "rb") as f:
    data = f.read()
msgspec.json.decode(data, type=TraceFile)
"""
# the floor of today's reader: the file read block by block, cut into chunks of events and each decoded with
# msgspec into the fields the analysis reads, then dropped (no columns, no analysis)
NEW_FLOOR = ("import sys; from pathlib import Path; from profiler.trace.jsonfile import decode_chunk; "
             "from profiler.trace.location import open_binary; from profiler.trace.scan import Walk; "
             "from profiler.trace.stream import Blocks; "
             "Walk(Blocks(Path(sys.argv[1]), open_binary), set(), lambda text, exact: decode_chunk(text, 0) "
             "is not None, sys.argv[1]).run()")


HELD = ("import pickle, sys; from profiler.analysis.per_file import analyze_file; a = analyze_file(sys.argv[1]); "
        "print(f'{len(pickle.dumps(a)) / 1e3:.0f} kB pickled ({len(a.table)} steps, {len(a.ops)} op names)')")


def run(args: list[str], sample_tree: bool = False, root: Path = ROOT) -> tuple[float, float]:
    """Wall seconds and peak memory (MB) of one process (run in `root`, whose package it imports): its own peak
    resident set, or with sample_tree the largest sum of it and its worker processes seen every 20 ms."""
    start = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(root))
    process = subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tree_peak = 0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG if sample_tree else 0)
        if pid:
            break
        tree_peak = max(tree_peak, tree_rss_kb(process.pid))
        time.sleep(0.02)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        sys.exit(f"failed: {' '.join(args)}: {process.stderr.read().decode().strip()}")
    return wall, (tree_peak if sample_tree else usage.ru_maxrss) / 1024


def tree_rss_kb(pid: int) -> int:
    """Memory of a process and its descendants, from /proc: their proportional set sizes, so that the pages
    forked workers share with their parent (the interpreter, numpy) are counted once, not once per process."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
            total += int(next(line.split()[1] for line in rollup.splitlines() if line.startswith("Pss:")))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            pass
    return total


def analyze(path: Path, jobs: int = 1, sample_tree: bool = False, scheduler: str | None = None,
            root: Path = ROOT) -> tuple[float, float]:
    """`python -m profiler analyze` of this checkout, or of another one at `root` (an older commit's)."""
    where = [f"--scheduler={scheduler}"] if scheduler else [f"--jobs={jobs}"]
    return run([sys.executable, "-m", "profiler", "analyze", str(path), "--quiet", *where, "--json", os.devnull],
               sample_tree, root)


def combine(source: Path, counts: list[int]):
    """The combining step alone for `counts` ranks: each rank's compact result is a copy of the source file's,
    of its real size, saying it is that rank (the decoding is skipped); prints what the client holds and how
    long pipeline.build takes."""
    import gc
    import pickle

    from profiler.analysis.per_file import analyze_file
    from profiler.pipeline import build
    from profiler.settings import Options

    one = pickle.dumps(analyze_file(source))
    print(f"\ncombining step, ranks of {source.name} ({len(one) / 1e3:.0f} kB pickled each)")
    print("ranks | held by the client | build s | s per rank")
    for n in counts:
        gc.collect()
        before = rss_mb()
        analyses = []
        for rank in range(n):
            a = pickle.loads(one)
            analyses.append(replace(a, trace=replace(a.trace, distributed={"rank": rank, "world_size": n})))
        held = rss_mb() - before
        start = time.perf_counter()
        build(analyses, Options())
        wall = time.perf_counter() - start
        print(f"{n:5d} | {held:10.0f} MB ({len(one) * n / 1e9:.2f} GB pickled) | {wall:7.2f} | {wall / n:.4f}")
        del analyses


def rss_mb() -> float:
    return int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmRSS:"))) / 1024


def local_cluster(workers: int):
    """A Dask LocalCluster of `workers` single-threaded worker processes on 127.0.0.1 (the cluster extra)."""
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0")


def as_ranks(source: Path, folder: Path, ranks: int) -> list[Path]:
    """`ranks` copies of a trace, each saying it is one rank of a job of that size (distributedInfo)."""
    folder.mkdir(parents=True, exist_ok=True)
    trace = gzip.decompress(source.read_bytes()) if source.suffix == ".gz" else source.read_bytes()
    body = trace[trace.index(b"{") + 1:]
    paths = []
    for rank in range(ranks):
        info = json.dumps({"backend": "nccl", "rank": rank, "world_size": ranks}).encode()
        path = folder / f"rank{rank}.pt.trace.json"
        path.write_bytes(b'{"distributedInfo": ' + info + b", " + body)
        paths.append(path)
    return paths


def one_file(big: Path, rounds: int, baseline: Path | None = None) -> float:
    """The analyzer (every core: a large file is read by as many processes; and --jobs=1) against the old floor
    (the whole file read, then decoded in one call) and the new one (the chunked decode alone), and against the
    analyzer of another checkout where given, alternated, each in a fresh process; returns the analyzer's
    median wall time."""
    cores = os.cpu_count() or 1
    times: dict[str, list[float]] = {}
    print("round | old floor s | new floor s | analyze s | --jobs=1 s | old floor MB | new floor MB | analyze MB "
          "(all processes) | --jobs=1 MB" + (" | baseline s | baseline MB" if baseline else ""))
    for k in range(rounds):
        old, old_mb = run([sys.executable, "-c", OLD_FLOOR, str(big)])
        new, new_mb = run([sys.executable, "-c", NEW_FLOOR, str(big)])
        wall, peak_mb = analyze(big, cores, sample_tree=True)
        one, one_mb = analyze(big, 1)
        line = (f"{k + 1:5d} | {old:11.2f} | {new:11.2f} | {wall:9.2f} | {one:10.2f} | {old_mb:12.0f} | "
                f"{new_mb:12.0f} | {peak_mb:26.0f} | {one_mb:11.0f}")
        row = {"analyze": wall, "--jobs=1": one, "old floor": old, "new floor": new}
        if baseline:
            row["baseline"], base_mb = analyze(big, cores, root=baseline)
            line += f" | {row['baseline']:10.2f} | {base_mb:11.0f}"
        for name, value in row.items():
            times.setdefault(name, []).append(value)
        print(line, flush=True)
    ratios = [("analyze", "old floor"), ("--jobs=1", "old floor"), ("analyze", "new floor"),
              ("--jobs=1", "new floor")] + ([("baseline", "analyze")] if baseline else [])
    for a, b in ratios:
        r = [x / y for x, y in zip(times[a], times[b])]
        print(f"{a} / {b}: median {statistics.median(r):.2f} over {rounds} rounds ({min(r):.2f}-{max(r):.2f})")
    return statistics.median(times["analyze"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--size", help="instead of --copies, as many copies as make about this size (3GB); "
                                       "then the large trace alone is measured, plain and gzipped")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="also time the analyzer of this checkout (an older commit)")
    parser.add_argument("--ranks", type=int, default=8, help="ranks of the job, each a copy of the large trace")
    parser.add_argument("--scaling", default="1,8,16,32,64", help="ranks of the small trace, for the scaling table")
    parser.add_argument("--keep", type=Path, help="write the large trace here and keep it")
    parser.add_argument("--scheduler", help="also analyse the job on this Dask scheduler (tcp://host:8786), or "
                                            "on a LocalCluster started here: local:WORKERS")
    parser.add_argument("--combine", default="", help="time the combining step alone for these numbers of ranks "
                                                     "(1024,16384), and exit")
    args = parser.parse_args()
    if args.combine:
        combine(args.source, [int(n) for n in args.combine.split(",")])
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = args.keep or tmp / "large.pt.trace.json"
        # built in a child process: a child's peak memory starts from its parent's (Linux keeps the high-water
        # mark of the memory it forked from), so the parent stays small
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
            copies = args.copies if not args.size else pool.submit(
                copies_for, args.source, memory_size(args.size), tmp).result()
            n_events, complete, memory = pool.submit(repeat_trace, args.source, copies, big).result()
        print(f"trace: {big.stat().st_size / 1e6:.0f} MB, {n_events:,} events ({copies} copies of "
              f"{args.source.name}); {os.cpu_count() or 1} cores\n")
        one = one_file(big, args.rounds, args.baseline)
        print(f"{one / n_events * 1e6:.2f} µs per event; the memory model (docs/benchmarks) predicts "
              f"{(MODEL_BASE + MODEL_PER_COMPLETE * complete + MODEL_PER_MEMORY * memory) / 1e6:.0f} MB for "
              f"{complete:,} complete and {memory:,} memory events")

        gz = tmp / "large.pt.trace.json.gz"
        with open(big, "rb") as f, gzip.open(gz, "wb", compresslevel=1) as out:
            shutil.copyfileobj(f, out)
        wall, peak_mb = analyze(gz)
        old, old_mb = run([sys.executable, "-c", OLD_FLOOR, str(gz)])
        print(f"\ngzipped ({gz.stat().st_size / 1e6:.0f} MB): analyze {wall:.2f} s, {peak_mb:.0f} MB peak; the old "
              f"floor {old:.2f} s, {old_mb:.0f} MB peak")
        gz.unlink()
        if not args.size:
            job(args, big, one, tmp)


def copies_for(source: Path, size: float, tmp: Path) -> int:
    """How many copies of the source's events make a trace of about `size` bytes."""
    repeat_trace(source, 1, tmp / "one.json")
    per_copy = (tmp / "one.json").stat().st_size
    (tmp / "one.json").unlink()
    return max(1, round(size / per_copy))


def job(args, big: Path, one: float, tmp: Path):
    """The large trace as the ranks of a job, on this machine's workers (and on a Dask cluster), and the
    scaling from 1 to 64 ranks of the source trace."""
    cluster = local_cluster(int(args.scheduler.split(":")[1])) if (args.scheduler or "").startswith("local:") else None
    scheduler = cluster.scheduler_address if cluster else args.scheduler
    cores = os.cpu_count() or 1
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        ranks = pool.submit(as_ranks, big, tmp / "job", args.ranks).result()
    for r in ranks:  # from the page cache, as the one file was: this machine's disk is not what is measured
        with open(r, "rb") as f:
            while f.read(1 << 24):
                pass
    wall, peak_mb = analyze(ranks[0].parent, cores, sample_tree=True)
    goal = 1.2 * args.ranks / cores * one
    print(f"\n{args.ranks} ranks of {big.stat().st_size / 1e6:.0f} MB, {cores} workers: {wall:.2f} s, "
          f"{wall / (args.ranks / cores * one):.2f} x ({args.ranks}/{cores} x {one:.2f} s; "
          f"goal 1.2 x = {goal:.2f} s); "
          f"{peak_mb:.0f} MB peak over all processes")
    if scheduler:
        wall, peak_mb = analyze(ranks[0].parent, scheduler=scheduler)
        print(f"the same on the Dask cluster at {scheduler} ({args.scheduler}): {wall:.2f} s, the client's peak "
              f"{peak_mb:.0f} MB")
    for r in ranks:
        r.unlink()
    if cluster:
        cluster.close()

    print(f"\nscaling, ranks of the source trace ({args.source.name}), {cores} workers")
    print("ranks | wall s | s per rank | peak MB over all processes")
    for n in map(int, args.scaling.split(",")):
        folder = tmp / f"scale{n}"
        as_ranks(args.source, folder, n)
        wall, peak_mb = analyze(folder, cores, sample_tree=True)
        print(f"{n:5d} | {wall:6.2f} | {wall / n:10.3f} | {peak_mb:6.0f}")
        shutil.rmtree(folder)
    held = subprocess.run([sys.executable, "-c", HELD, str(args.source)], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    print(f"per rank, the combining step holds its TraceAnalysis: {held}")


if __name__ == "__main__":
    main()
