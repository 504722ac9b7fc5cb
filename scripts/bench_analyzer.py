"""Benchmark: a whole `python -m profiler analyze --json` run on a large trace made by repeating a real one.

    python scripts/bench_analyzer.py [--source=TRACE] [--copies=10] [--keep=PATH]

The default repeats tbplugin_resnet50_nw0 (../shared/traces) 10 times: 757k events, 324 MB. Each copy is
shifted in time past the previous one, with its correlation ids and step numbers renumbered, so the result
is one long, consistent trace. Prints the file size, the wall time and the peak memory of the analysis.
"""

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = ROOT.parent / "shared" / "traces" / "tbplugin_resnet50_nw0" / "worker0.1623143089861.pt.trace.json.gz"


def repeat_trace(source: Path, copies: int, out: Path) -> int:
    """Write `copies` back-to-back repetitions of the source trace's events; returns the event count."""
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
    repeated = []
    for k in range(copies):
        for e in events:
            if k and e.get("ph") == "M":
                continue
            e = dict(e)
            if "ts" in e:
                e["ts"] = e["ts"] + k * (span + 1000)
            if k and isinstance(e.get("id"), int):
                e["id"] += k * id_stride
            if k and "correlation" in e.get("args", {}):
                e["args"] = dict(e["args"], correlation=e["args"]["correlation"] + k * id_stride)
            if k and str(e.get("name", "")).startswith("ProfilerStep#"):
                e["name"] = f"ProfilerStep#{int(e['name'].split('#')[1]) + k * n_steps}"
            repeated.append(e)
    trace["traceEvents"] = repeated
    out.write_text(json.dumps(trace))
    return len(repeated)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="write the large trace here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big = args.keep or Path(tmp) / "large.pt.trace.json"
        n_events = repeat_trace(args.source, args.copies, big)
        size_mb = big.stat().st_size / 1e6
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "profiler", "analyze", str(big), "--json",
                                 str(Path(tmp) / "report.json"), "--quiet"], cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if result.returncode:
            sys.exit(f"analyze failed: {result.stderr.strip()}")
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        report = json.loads((Path(tmp) / "report.json").read_text())
    print(f"trace: {size_mb:.0f} MB, {n_events:,} events, {len(report['source']['steps'])} steps analyzed")
    print(f"analyze --json: {wall:.2f} s wall, {peak_mb:.0f} MB peak memory")


if __name__ == "__main__":
    main()
