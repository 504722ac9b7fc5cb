"""Training speed: tokens/s and MFU of scripts/profile_run.py for a config, with and without the profiler.

    python scripts/bench_train.py [--repeats=3] [--key=value ...]

Each repeat is a fresh run; runs with and without the profiler alternate, so that drift of a shared machine
hits both alike. Prints the median of each, and the profiler's overhead.
"""

import json
import statistics
import sys
import tempfile
from pathlib import Path

import profile_run


def run(overrides: list[str], profile: bool, out: Path) -> dict:
    profile_run.main([*overrides, f"--profile={profile}", f"--out={out}", "--log_interval=1000000"])
    summary = json.loads((out / "summary.json").read_text())
    return summary


def main(argv):
    repeats = 3
    overrides = []
    for arg in argv:
        if arg.startswith("--repeats="):
            value = arg.split("=", 1)[1]
            if not (value.isdigit() and int(value) > 0):
                raise profile_run.UsageError(f"--repeats must be a positive integer, got {value!r}")
            repeats = int(value)
        else:
            overrides.append(arg)
    results = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            for profile in (False, True):
                results[profile].append(run(overrides, profile, Path(tmp) / f"{i}-{profile}"))
    print(f"\n{'':<18}{'tokens/s':>10}{'ms/iter':>10}{'MFU':>8}   (median of {repeats} runs)")
    medians = {}
    for profile, label in ((False, "no profiler"), (True, "with profiler")):
        tok = statistics.median(r["tokens_per_s"] for r in results[profile])
        ms = statistics.median(r["ms_per_iter"] for r in results[profile])
        mfu = statistics.median(r["mfu"] for r in results[profile]) if results[profile][0]["mfu"] else None
        medians[profile] = tok
        print(f"{label:<18}{tok:>10,.0f}{ms:>10.2f}{'' if mfu is None else f'{100 * mfu:.2f}%':>8}")
    print(f"profiler overhead: {100 * (1 - medians[True] / medians[False]):.2f}% of tokens/s")


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        sys.exit(0)
    try:
        main(sys.argv[1:])
    except profile_run.UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
