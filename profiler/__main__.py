"""Command line: python -m profiler analyze PATH [--json FILE] [--peak-flops F] [--flops-per-step F]."""

import argparse
import json
import sys
from pathlib import Path

from profiler.analyze import analyze_file
from profiler.files import write_atomic
from profiler.load import TraceError, trace_files
from profiler.render import summary
from profiler.report import Options, build_report


def analyze_path(path: Path, options: Options) -> dict:
    """The report of a trace file or a folder of traces. Raises TraceError when nothing can be analysed."""
    files = trace_files(path)
    analyses, skipped = [], []
    for f in files:
        try:
            analyses.append(analyze_file(f))
        except TraceError as e:
            if len(files) == 1:
                raise
            skipped.append(str(e))
    if not analyses:
        raise TraceError(f"{path}: none of its {len(files)} files could be analysed (first: {skipped[0]})")
    report = build_report(analyses, [str(a.trace.path) for a in analyses], options)
    report["warnings"] = [f"skipped {s}" for s in skipped] + report["warnings"]
    return report


def write_json(report: dict, out: Path):
    write_atomic(out, json.dumps(report, indent=1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m profiler", description="MFU bottleneck analyzer")
    sub = parser.add_subparsers(dest="command", required=True)
    analyze = sub.add_parser("analyze", help="analyze a Kineto trace file or a folder of traces")
    analyze.add_argument("path", type=Path)
    analyze.add_argument("--json", type=Path, help="write the mfu-report/1 JSON here")
    analyze.add_argument("--peak-flops", type=float, default=0.0, help="the device's peak FLOP/s")
    analyze.add_argument("--flops-per-step", type=float, default=0.0, help="analytic model FLOPs per step")
    analyze.add_argument("--quiet", action="store_true", help="print nothing but errors")
    args = parser.parse_args(argv)
    try:
        report = analyze_path(args.path, Options(args.peak_flops, args.flops_per_step))
        if args.json:
            write_json(report, args.json)
    except TraceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {e.filename or args.path}: {e.strerror}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
