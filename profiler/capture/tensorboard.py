"""The report in TensorBoard, in the run folder beside the trace.

Each profiler cycle, at the training step that closed it: MFU and breakdown shares in percent, ledger causes in
points of MFU (the same unit), the step time; and its report and step timeline as files for the MFU dashboard
(profiler.dashboard). The whole run, once at the end: the same figures under whole_run/ (one point each, apart
from the per-cycle series), the Markdown report as text and the charts as images.
"""

from pathlib import Path

import matplotlib.pyplot as plt

from profiler.pipeline import analyze_view
from profiler.report import charts
from profiler.report.document import markdown
from profiler.report.model import Report
from profiler.report.runfiles import write_cycle_report
from profiler.trace.errors import TraceError


def log_scalars(writer, report: Report, step: int, prefix: str = ""):
    """MFU and shares in percent, ledger entries in points, the mean step time, under `prefix`."""
    for category, b in report.breakdown.items():
        writer.add_scalar(f"{prefix}breakdown_pct/{category}", 100 * b.fraction, step)
    for entry in report.ledger:
        writer.add_scalar(f"{prefix}ledger_points/{entry.cause}", entry.points, step)
    for kind, mfu in (("analytic", report.mfu.analytic), ("counted", report.mfu.counted)):
        if mfu is not None:
            writer.add_scalar(f"{prefix}mfu/{kind}_pct", 100 * mfu, step)
    writer.add_scalar(f"{prefix}mfu/step_time_ms", report.step_time_ms.mean, step)


def log_run_summary(writer, report: Report, step: int):
    """The whole run's figures under whole_run/, its Markdown report and its charts."""
    log_scalars(writer, report, step, "whole_run/")
    writer.add_text("report", markdown(report), step)
    for name, figure in charts.figures(report).items():
        writer.add_figure(f"charts/{name}", figure, step, close=True)
    plt.close("all")
    writer.flush()


class RunLog:
    """TensorBoard logging of a training run: scalars per iteration, and each profiler cycle analysed as
    soon as its trace is written (on_trace_ready), its report and step timeline written for the MFU tab, so a
    long run shows its ledger evolving while it trains.
    The analysis runs in the training loop, in the step that closes the cycle (profiler.profile.step measures
    that step's whole wait, the trace export included, and says it)."""

    def __init__(self, run_dir, options, say=print):
        from torch.utils.tensorboard import SummaryWriter

        self.writer, self.run_dir = SummaryWriter(log_dir=str(run_dir)), Path(run_dir)
        self.options, self.say = options, say
        self.cycle_line, self.analysis_s = "", 0.0  # the last cycle's analysis: what it found, how long it took

    def iteration(self, step: int, loss: float, ms: float, tokens_per_s: float, mfu: float | None):
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/step_time_ms", ms, step)
        self.writer.add_scalar("train/tokens_per_s", tokens_per_s, step)
        if mfu is not None:
            self.writer.add_scalar("train/mfu_pct", 100 * mfu, step)

    def trace_written(self, path, step: int):
        """Analyse a cycle's trace as soon as it is written; `cycle_line` then says what it found (the caller,
        which knows how long the step waited for the export and this, prints it)."""
        import time

        start = time.perf_counter()
        self.cycle_line, self.analysis_s = f"profiler cycle ending at step {step}", 0.0
        try:
            report, timeline = analyze_view(path, self.options)
        except TraceError as e:
            self.cycle_line += f": not analysed ({e})"
            return
        except Exception as e:  # a bug of ours must not end the user's training: one line, and train on
            self.cycle_line += (f": not analysed (internal error {type(e).__name__}: {e}; please report it with the "
                                "trace)")
            return
        write_cycle_report(self.run_dir, step, report, timeline)
        log_scalars(self.writer, report, step)
        self.writer.flush()
        self.analysis_s = time.perf_counter() - start
        top = report.bottlenecks[0] if report.bottlenecks else None
        mfu = report.mfu.analytic
        self.cycle_line += (": " + (f"MFU {100 * mfu:.2f}%, " if mfu is not None else "")
                            + (f"principal bottleneck {top.cause} ({top.points:.1f} points)" if top
                               else "no bottleneck"))

    def close(self):
        self.writer.close()
