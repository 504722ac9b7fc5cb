"""Benchmark of `python -m profiler diff`'s noise model on real runs of this machine.

    python scripts/bench_diff.py [--pairs=20] [--delay_pairs=5] [--delay=0.002] [--out=DIR] [--max_iters=28]
                                 [--run_noise=PCT]

Trains `--pairs` pairs of the default config (each pair's two runs back to back, so that both see the same load)
and `--delay_pairs` pairs of the default config against the same with `data_delay` (seconds of sleep per sample),
then diffs each pair as `python -m profiler diff` does. Prints each pair's verdict, step-time change with its
interval and top mover, and the counts: the same-config pairs should give "no change" in at least 90% of pairs,
the delayed ones "slower" with `io` the top mover in every pair. It also estimates the run-to-run noise that the
diff adds to the step time's interval (settings.RUN_NOISE): the spread of the same-config pairs' mean steps beyond
what their own steps account for. Runs already in `--out` are reused, so a second call only re-diffs them.
"""

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def train(folder: Path, max_iters: int, delay: float) -> None:
    """One run of the default config into `folder`, unless a finished one is there."""
    if (folder / "report.json").exists():
        return
    cmd = [sys.executable, str(ROOT / "scripts" / "profile_run.py"), f"--out={folder}", f"--max_iters={max_iters}",
           "--checkpoint=False", "--tensorboard=False", "--overwrite=True", f"--data_delay={delay}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pairs(args) -> list[tuple[str, Path, Path]]:
    """(kind, A, B) of every pair, trained where missing."""
    out = []
    for kind, n, delay in (("same", args.pairs, 0.0), ("delay", args.delay_pairs, args.delay)):
        for i in range(n):
            a, b = args.out / f"{kind}-{i:02d}-a", args.out / f"{kind}-{i:02d}-b"
            train(a, args.max_iters, 0.0)
            train(b, args.max_iters, delay)
            out.append((kind, a, b))
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--delay_pairs", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.002, help="data_delay of the slow side (s per sample)")
    parser.add_argument("--max_iters", type=int, default=28, help="the default schedule's two cycles end at 27")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_diff"))
    parser.add_argument("--run_noise", type=float, help="the diff's run-to-run noise in percent (default: its own)")
    args = parser.parse_args()
    start = time.perf_counter()
    found = pairs(args)
    print(f"{len(found)} pairs trained or found in {args.out} ({time.perf_counter() - start:.0f} s)")
    return evaluate(found, None if args.run_noise is None else args.run_noise / 100)


def evaluate(found: list[tuple[str, Path, Path]], run_noise: float | None) -> int:
    from profiler.diff.compare import diff_reports
    from profiler.pipeline import load_report
    from profiler.settings import RUN_NOISE, Options

    run_noise = RUN_NOISE["cpu"] if run_noise is None else run_noise

    options = Options(progress=False, jobs=1)
    tally: dict[str, list] = {"same": [], "delay": []}
    logs, logs_var = [], []  # same config: log of B's mean step over A's, and its variance from the steps alone
    print(f"{'pair':<10}{'verdict':<12}{'step A':>9}{'step B':>9}{'change':>9}  {'interval':<18}top mover")
    for kind, a, b in found:
        ra, rb = load_report(a, options), load_report(b, options)
        d = diff_reports(ra, rb, run_noise)
        if kind == "same":
            ms = [np.array([s.ms for s in r.per_step]) for r in (ra, rb)]
            logs.append(math.log(ms[1].mean() / ms[0].mean()))
            logs_var.append(sum(x.var(ddof=1) / len(x) / x.mean() ** 2 for x in ms))
        s = d.step_time
        interval = f"[{s.interval_pct[0]:+.1f}, {s.interval_pct[1]:+.1f}]%" if s.interval_pct else "none"
        top = d.causes[0].cause if d.causes else "-"
        print(f"{a.name[:-2]:<10}{d.verdict:<12}{s.a:>9.2f}{s.b:>9.2f}{s.change_pct:>+8.1f}%  {interval:<18}{top}")
        io = next((c for c in d.causes if c.cause == "io"), None)
        tally[kind].append((d.verdict, top, io is not None and io.points.verdict == "higher"))
    same, delay = tally["same"], tally["delay"]
    if len(logs) > 2:
        within = float(np.mean(logs_var))
        sigma = math.sqrt(max(float(np.var(logs, ddof=1)) - within, 0.0) / 2)
        robust = 1.4826 * float(np.median(np.abs(np.array(logs) - np.median(logs))))  # the sd, were it normal
        print(f"same config: the runs' mean steps differ by {100 * float(np.std(logs, ddof=1)):.1f}% (sd of log B/A; "
              f"robust, from the median deviation, {100 * robust:.1f}%), their steps account for "
              f"{100 * math.sqrt(within):.1f}%: run-to-run noise {100 * sigma:.1f}% per run "
              f"({100 * robust / math.sqrt(2):.1f}% robust); the diff assumed {100 * run_noise:.1f}%")
    quiet = sum(v == "no change" for v, _, _ in same)
    caught = sum(v == "slower" and top == "io" for v, top, _ in delay)
    print(f"same config: {quiet}/{len(same)} no change beyond the noise"
          + (f" ({100 * quiet / len(same):.0f}%)" if same else ""))
    slower, io_top, io_up = (sum(flags) for flags in zip(*[(v == "slower", top == "io", up) for v, top, up in delay]))
    print(f"data delay: {caught}/{len(delay)} slower with io the top mover (slower {slower}, io the top mover "
          f"{io_top}, io higher beyond its steps' noise {io_up})")
    return 0 if (not same or quiet >= 0.9 * len(same)) and caught == len(delay) else 1


if __name__ == "__main__":
    sys.exit(main())
