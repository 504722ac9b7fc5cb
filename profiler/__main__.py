"""Command line: python -m profiler analyze PATH [--json F] [--markdown F] [--html F] [--out DIR] | diff A B."""

import argparse
import json
import os
import sys
from pathlib import Path

from profiler.diff.compare import diff_json, diff_reports, regressed
from profiler.diff.render import diff_markdown, diff_text
from profiler.files import write_atomic
from profiler.mfu.cpupeak import cache_entries, ceilings, current_entry, reset_cache
from profiler.mfu.memory import memory_size
from profiler.pipeline import analyze_view, load_report
from profiler.report.document import write_reports
from profiler.report.model import Report
from profiler.report.runfiles import write_run_report
from profiler.report.schema import saved_report
from profiler.report.terminal import explain, for_terminal
from profiler.settings import ISA_SLACK, MIN_POINTS, SHORT_GAP_US, STRAGGLER_THRESHOLD, TERA, Options
from profiler.trace.errors import TraceError
from profiler.trace.location import as_location, is_url

GPT_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")  # required; bias, tokens_per_step optional


def model_argument(text: str) -> dict:
    """--model: a Hugging Face config.json (its sequence length from --sequence-length), or a nanoGPT GPT's
    n_layer=12,n_head=12,n_embd=768,block_size=1024,vocab_size=50304[,bias=False][,tokens_per_step=N]"""
    if text.endswith(".json") or Path(text).is_file():
        try:
            config = json.loads(Path(text).read_text())
        except (OSError, ValueError) as e:
            raise argparse.ArgumentTypeError(f"{text}: not a readable config.json ({e})") from None
        missing = [k for k in ("vocab_size", "num_attention_heads", "hidden_size") if k not in config] \
            if isinstance(config, dict) else ["an object"]
        if missing and not (isinstance(config, dict) and {"n_head", "n_embd", "vocab_size"} <= config.keys()):
            raise argparse.ArgumentTypeError(f"{text}: a Hugging Face config.json needs {', '.join(missing)}")
        return {"config": config}
    return gpt_shape(text)


def gpt_shape(text: str) -> dict:
    """n_layer=12,n_head=12,n_embd=768,block_size=1024,vocab_size=50304[,bias=False][,tokens_per_step=N]"""
    shape: dict[str, int | bool] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if key == "bias" and value.lower() in ("true", "false", "1", "0"):
            shape[key] = value.lower() in ("true", "1")
        elif key in GPT_KEYS + ("tokens_per_step",) and value.isdigit() and int(value) > 0:
            shape[key] = int(value)
        else:
            raise argparse.ArgumentTypeError(f"{item!r}: expected KEY=VALUE with KEY one of {', '.join(GPT_KEYS)}, "
                                             "bias, tokens_per_step and a positive integer (bias: True or False)")
    missing = [k for k in GPT_KEYS if k not in shape]
    if missing:
        raise argparse.ArgumentTypeError(f"missing {', '.join(missing)}")
    return shape


def add_analysis_flags(p: argparse.ArgumentParser):
    """The flags `analyze` and `diff` share: the peak, the model's FLOPs, the thresholds, where the files are read."""
    p.add_argument("--peak-flops", type=float, default=0.0, help="the device's peak FLOP/s (P)")
    p.add_argument("--peak-flops-run", type=float, default=0.0,
                   help="with --peak-flops: the peak in the run's matmul dtype (P_run); default P")
    p.add_argument("--no-measure", action="store_true",
                   help="never time the trace's matmul shapes on this machine (done where it was recorded here)")
    p.add_argument("--peak-bandwidth", type=float, default=0.0,
                   help="the device's memory bandwidth in bytes/s (the roofline's memory ceiling)")
    p.add_argument("--flops-per-step", type=float, default=0.0, help="analytic model FLOPs per step")
    p.add_argument("--memory-capacity", type=memory_size, default=0.0, metavar="SIZE",
                   help="the device's memory (80GB, 24GiB or bytes), over what the trace or the device table says")
    p.add_argument("--model", type=model_argument, metavar="CONFIG.json | n_layer=L,n_head=H,n_embd=C,...",
                   help="for the analytic FLOPs of a trace without run metadata: a Hugging Face config.json "
                        "(with --sequence-length), or a nanoGPT GPT's shape n_layer=L,n_head=H,n_embd=C,"
                        "block_size=T,vocab_size=V (optional: bias=False, tokens_per_step=N); the tokens per "
                        "step are counted at the token embedding unless given")
    p.add_argument("--sequence-length", type=int, default=0, metavar="T",
                   help="with --model CONFIG.json: the sequence length trained on (not max_position_embeddings)")
    p.add_argument("--tokens-per-step", type=int, default=0, metavar="N",
                   help="with --model: the tokens per step (else counted at the token embedding)")
    p.add_argument("--short-gap-us", type=float, default=SHORT_GAP_US,
                   help="device idle gaps shorter than this are per-op overhead (small_batch), longer ones "
                        f"stalls (other); default {SHORT_GAP_US:g}")
    p.add_argument("--min-points", type=float, default=MIN_POINTS,
                   help=f"a cause is a bottleneck from this many points of MFU; default {MIN_POINTS:g}")
    p.add_argument("--straggler-threshold", type=float, default=STRAGGLER_THRESHOLD,
                   help="a rank busier than the others' median by this fraction is a straggler; default "
                        f"{STRAGGLER_THRESHOLD:g}")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="worker processes for the files of a folder (ranks, cycles); default: every core")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="analyse the files on the Dask cluster whose scheduler is at ADDRESS "
                        "(tcp://host:8786); its workers read the files where they are")


def build_parser() -> argparse.ArgumentParser:
    """The commands and their flags."""
    parser = argparse.ArgumentParser(prog="python -m profiler", description="MFU bottleneck analyzer")
    sub = parser.add_subparsers(dest="command", required=True)
    analyze = sub.add_parser("analyze", help="analyze a Kineto trace file or a folder of traces (a saved "
                             "report.json is shown as it is)")
    analyze.add_argument("path", type=as_location, help="a trace file or a folder of traces: a local path or an "
                         "fsspec URL (s3://, gs://, hdfs://, file://; needs the cluster extra)")
    analyze.add_argument("--json", type=Path, help="write the mfu-report/1 JSON here")
    analyze.add_argument("--markdown", type=Path, help="write the report as Markdown here")
    analyze.add_argument("--html", type=Path, help="write a self-contained HTML report with charts here")
    analyze.add_argument("--out", type=Path, metavar="DIR",
                         help="write report.json / .md / .html and the step timeline into DIR, a run folder that "
                              "the MFU tab of `tensorboard --logdir` (DIR or a folder above it) shows")
    analyze.add_argument("--quiet", action="store_true", help="print nothing but errors")
    analyze.add_argument("-v", "--verbose", action="store_true",
                         help="print every figure, the evidence of each cause and every warning in full (by default "
                              "the report fits one screen; the Markdown, HTML and JSON reports hold everything)")
    analyze.add_argument("--explain", metavar="CAUSE", help="print one cause in full: its evidence, facts, fix and ops")
    diff = sub.add_parser("diff", aliases=["compare"], help="what changed from run A to run B, and whether it is "
                          "beyond the noise of the steps")
    for side in ("a", "b"):
        diff.add_argument(side, type=as_location, metavar=side.upper(),
                          help="a trace, a folder of traces, a run folder or a saved report.json")
    diff.add_argument("--json", type=Path, help="write the mfu-diff/1 JSON here")
    diff.add_argument("--markdown", type=Path, help="write the diff as Markdown for a pull-request comment here")
    diff.add_argument("--fail-if-slower", type=float, metavar="PCT",
                      help="exit with status 1 when B's step is slower than A's by more than PCT percent and the "
                           "change is beyond the noise")
    diff.add_argument("--run-noise", type=float, metavar="PCT",
                      help="run-to-run noise of a run's mean step in percent (relative standard deviation), added to "
                           "the step time's interval; default: 9 on a CPU (this machine class, measured), 0 on a GPU")
    diff.add_argument("--quiet", action="store_true", help="print nothing but errors")
    for p in (analyze, diff):
        add_analysis_flags(p)
    peak = sub.add_parser("peak", help="this machine's measured CPU peaks, with their history")
    peak.add_argument("--reset", action="store_true", help="clear the cache: the next run measures again")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "peak":
        return show_peak_cache(args.reset)
    model = args.model and {**args.model, **({"tokens_per_step": args.tokens_per_step} if args.tokens_per_step
                                             else {}), **({"sequence_length": args.sequence_length}
                                                          if args.sequence_length else {})}
    if model and "config" in model and not args.sequence_length:
        print("error: --model CONFIG.json needs --sequence-length (the length trained on)", file=sys.stderr)
        return 2
    options = Options(peak_flops=args.peak_flops, flops_per_step=args.flops_per_step, model=model,
                      short_gap_us=args.short_gap_us, min_points=args.min_points,
                      straggler_threshold=args.straggler_threshold, jobs=max(args.jobs, 1),
                      progress=not getattr(args, "quiet", False), peak_bandwidth=args.peak_bandwidth,
                      scheduler=args.scheduler, peak_flops_run=args.peak_flops_run, measure=not args.no_measure,
                      memory_capacity=args.memory_capacity)
    try:
        if args.command in ("diff", "compare"):
            return run_diff(args, options)
        report = analyzed(args, options)
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
    return printed(report, args)


def analyzed(args, options: Options) -> Report:
    """The report of `analyze`, written where asked (a saved report.json is shown as it is)."""
    saved = None if is_url(args.path) else saved_report(Path(args.path))
    if args.out:
        report, timeline = (saved, None) if saved else analyze_view(args.path, options)
        write_run_report(args.out, report, timeline)
    else:
        report = saved or load_report(args.path, options)
    write_reports(report, args.json, args.markdown, args.html)
    return report


def printed(report: Report, args) -> int:
    """The report on the terminal: one screen, everything (-v), or one cause (--explain)."""
    if args.explain:
        if args.explain not in [b.cause for b in report.bottlenecks]:
            known = ", ".join(b.cause for b in report.bottlenecks) or "none"
            print(f"error: --explain {args.explain}: not among this report's causes ({known})", file=sys.stderr)
            return 2
        print(explain(report, args.explain))
    elif not args.quiet:
        print(for_terminal(report, sys.stdout, args.verbose))
        if args.out:
            print(f"report and step timeline in {args.out}: tensorboard --logdir={args.out}, tab MFU")
    return 0


def show_peak_cache(reset: bool) -> int:
    """The CPU-peak cache: each entry's rates beside its instruction-set reference, and how each came to be."""
    path, entries = cache_entries()
    print(f"peak cache: {path}" + ("" if entries else " (empty: the next run measures this machine)"))
    for key, entry in entries.items():
        if not current_entry(entry):
            print(f"\n{key}\n  an earlier version's entry, without its history: measured again at the next run")
            continue
        print(f"\n{key}\n  {entry['how']}")
        caps = ceilings(entry)
        for dtype, rate in entry["rates"].items():
            isa = (entry.get("isa") or {}).get(dtype)
            ref = f" (instruction-set reference {isa / TERA:.3g})" if isa else ""
            held = (f"; past the reference × {ISA_SLACK:g}, written by an earlier version: read as "
                    f"{caps[dtype] / TERA:.3g}") if rate > caps.get(dtype, rate) else ""
            print(f"  {dtype}: {rate / TERA:.3g} TFLOP/s{ref}{held}")
        for h in entry.get("history", []):
            print(f"    {h['at']}: {h['dtype']} {h['rate'] / TERA:.3g} TFLOP/s, {h['what']}")
    if reset:
        print("cleared" if reset_cache() else "nothing to clear")
    return 0


def run_diff(args, options: Options) -> int:
    """B against A: printed, written where asked; 1 where --fail-if-slower finds a regression beyond the noise."""
    run_noise = None if args.run_noise is None else args.run_noise / 100
    found = diff_reports(load_report(args.a, options), load_report(args.b, options), run_noise)
    if args.json:
        write_atomic(args.json, diff_json(found))
    if args.markdown:
        write_atomic(args.markdown, diff_markdown(found) + "\n")
    if not args.quiet:
        print(diff_text(found))
    if args.fail_if_slower is not None and regressed(found, args.fail_if_slower):
        print(f"regression: B's step is {found.step_time.change_pct:.1f}% slower (more than "
              f"{args.fail_if_slower:g}%, beyond the noise)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
