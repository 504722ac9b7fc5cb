"""The report in TensorBoard, in the run folder beside the trace: shares, ledger points and MFU as scalars,
the Markdown report as text, the charts as images, all at the training step that closed the cycle."""

import matplotlib.pyplot as plt

from profiler import charts
from profiler.document import markdown
from profiler.load import TraceError
from profiler.pipeline import analyze_path


def log_report(writer, report: dict, step: int):
    """Write one analysed profiler cycle (or a whole run) into a torch.utils.tensorboard SummaryWriter."""
    for category, b in report["breakdown"].items():
        writer.add_scalar(f"breakdown/{category}", b["fraction"], step)
    for entry in report["ledger"]:
        writer.add_scalar(f"ledger/{entry['cause']}", entry["points"], step)
    if report["mfu"]["analytic"] is not None:
        writer.add_scalar("analysis/mfu_analytic", report["mfu"]["analytic"], step)
    if report["mfu"]["counted"] is not None:
        writer.add_scalar("analysis/mfu_counted", report["mfu"]["counted"], step)
    writer.add_scalar("analysis/step_time_ms", report["step_time_ms"]["mean"], step)
    writer.add_text("report", markdown(report), step)
    for name, figure in charts.figures(report).items():
        writer.add_figure(f"charts/{name}", figure, step, close=True)
    plt.close("all")
    writer.flush()


class RunLog:
    """TensorBoard logging of a training run: scalars per iteration, and each profiler cycle analysed as
    soon as its trace is written (on_trace_ready), so a long run shows its ledger evolving while it trains.
    The analysis runs in the training loop; `stall_s` is the time it took, which the loop leaves out of its
    iteration times."""

    def __init__(self, run_dir, options, say=print):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir))
        self.options, self.say, self.stall_s = options, say, 0.0

    def iteration(self, step: int, loss: float, ms: float, tokens_per_s: float, mfu: float | None):
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/step_time_ms", ms, step)
        self.writer.add_scalar("train/tokens_per_s", tokens_per_s, step)
        if mfu is not None:
            self.writer.add_scalar("train/mfu", mfu, step)

    def trace_written(self, path, step: int):
        import time


        start = time.perf_counter()
        try:
            report = analyze_path(path, self.options)
        except TraceError as e:
            self.say(f"profiler cycle ending at step {step}: not analysed ({e})")
            return
        log_report(self.writer, report, step)
        took = time.perf_counter() - start
        self.stall_s += took
        top = report["bottlenecks"][0] if report["bottlenecks"] else None
        mfu = report["mfu"]["analytic"]
        self.say(f"profiler cycle ending at step {step} analysed in {took:.2f} s: "
                 + (f"MFU {100 * mfu:.2f}%, " if mfu is not None else "")
                 + (f"principal bottleneck {top['cause']} ({top['points']:.1f} points)" if top else "no bottleneck"))

    def close(self):
        self.writer.close()
