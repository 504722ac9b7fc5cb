"""Command line: python -m profiler analyze PATH [--json F] [--markdown F] [--html F] | compare A B."""

import argparse
import sys
from pathlib import Path

from profiler.compare import comparison
from profiler.document import write_reports
from profiler.load import TraceError
from profiler.render import for_terminal
from profiler.report import Options, analyze_path, load_report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m profiler", description="MFU bottleneck analyzer")
    sub = parser.add_subparsers(dest="command", required=True)
    analyze = sub.add_parser("analyze", help="analyze a Kineto trace file or a folder of traces")
    analyze.add_argument("path", type=Path)
    analyze.add_argument("--json", type=Path, help="write the mfu-report/1 JSON here")
    analyze.add_argument("--markdown", type=Path, help="write the report as Markdown here")
    analyze.add_argument("--html", type=Path, help="write a self-contained HTML report with charts here")
    analyze.add_argument("--quiet", action="store_true", help="print nothing but errors")
    compare = sub.add_parser("compare", help="two runs or traces side by side, with deltas")
    compare.add_argument("before", type=Path)
    compare.add_argument("after", type=Path)
    for p in (analyze, compare):
        p.add_argument("--peak-flops", type=float, default=0.0, help="the device's peak FLOP/s")
        p.add_argument("--flops-per-step", type=float, default=0.0, help="analytic model FLOPs per step")
    args = parser.parse_args(argv)
    options = Options(args.peak_flops, args.flops_per_step)
    try:
        if args.command == "compare":
            print(comparison(load_report(args.before, options), load_report(args.after, options)))
            return 0
        report = analyze_path(args.path, options)
        write_reports(report, args.json, args.markdown, args.html)
    except TraceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug of ours: still one line, and exit status 2, never a traceback
        print(f"error: internal error while analysing ({type(e).__name__}: {e}); please report it with the trace",
              file=sys.stderr)
        return 2
    if not args.quiet:
        print(for_terminal(report, sys.stdout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
