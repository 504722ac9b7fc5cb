"""Close the loop: profile, apply the diagnosis's fix with the largest predicted gain, measure it against the
baseline, keep it only if it wins by more than the machine's noise, and go on from there.

    python scripts/tune.py [config.py] [--key=value ...] [--budget=RUNS | --budget=MINUTESm] [--repeats=3]
                           [--tune_out=DIR]

Each candidate and its baseline are trained alternately, `repeats` times each, without the profiler; the noise
is the larger relative spread (max - min over the median) of the two, at least 3%. A kept candidate becomes the
baseline and is profiled and diagnosed again. The loop stops when no fix promises more than the noise, or
the budget (training runs, or minutes with an m) is spent. Writes tune.json, tune.md, final_config.py and a
TensorBoard event file into --tune_out (default runs/tune-<date>-<time>).
"""

import json
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import msgspec

from model.configurator import ConfigError, parse_literal, read_config_file
from profiler.diff.compare import diff_reports
from profiler.diff.render import diff_summary
from profiler.report.model import Report
from profiler.report.reading import overrides

ROOT = Path(__file__).resolve().parent.parent

MIN_NOISE = 0.03  # below this relative spread, run-to-run differences are not resolved by a few repeats
QUIET = {"profile": False, "checkpoint": False, "tensorboard": False, "log_interval": 1_000_000}


@dataclass
class Measurement:
    tokens_per_s: list[float] = field(default_factory=list)
    mfu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.tokens_per_s)

    @property
    def spread(self) -> float:
        return (max(self.tokens_per_s) - min(self.tokens_per_s)) / self.median if self.tokens_per_s else 0.0


@dataclass
class Step:
    cause: str
    change: dict
    predicted_mfu: float | None  # the report's what-if MFU, on the profiled steps
    predicted_gain: float | None = None  # what-if over the profiled MFU: the speed-up the ledger predicts
    measured_gain: float | None = None  # candidate over baseline tokens/s, measured without the profiler
    measured_mfu: float | None = None
    measured_mfu_interval: list | None = None
    tokens_per_s: float | None = None
    baseline_tokens_per_s: float | None = None
    kept: bool = False
    reason: str = ""
    explanation: str | None = None  # the diff of the baseline's profiled run and the candidate's, in a line


class Budget:
    def __init__(self, text: str):
        self.minutes = float(text[:-1]) if text.endswith("m") else None
        self.runs = None if self.minutes is not None else int(text)
        self.start, self.used = time.monotonic(), 0

    def left(self, runs: int = 1) -> bool:
        if self.minutes is not None:
            return time.monotonic() - self.start < 60 * self.minutes
        return self.used + runs <= self.runs


RUN_FOLDER = re.compile(r"^run(\d+)-")


def last_run(out: Path) -> int:
    """The highest run number already in `out` (0 for a new folder): each trial gets a folder of its own, never
    one an earlier tune left there."""
    found = [int(m.group(1)) for p in out.glob("run*-*") if (m := RUN_FOLDER.match(p.name))] if out.is_dir() else []
    return max(found, default=0)


class Tuner:
    def __init__(self, config_file: str | None, overrides: dict, out: Path, repeats: int, budget: Budget):
        self.config_file, self.out, self.repeats, self.budget = config_file, out, repeats, budget
        self.config = dict(overrides)
        self.runs = last_run(out)  # a folder tune used before keeps its runs: this one numbers after them

    def train(self, config: dict, extra: dict, label: str) -> dict | str:
        """One training run; its summary.json (and report.json when profiled), or the reason it failed."""
        self.runs += 1
        self.budget.used += 1
        run_dir = self.out / f"run{self.runs:03d}-{label}"
        args = ([self.config_file] if self.config_file else []) + overrides({**config, **extra})
        result = subprocess.run([sys.executable, str(ROOT / "scripts" / "profile_run.py"), *args, f"--out={run_dir}"],
                                capture_output=True, text=True, cwd=ROOT)
        if result.returncode:
            lines = (result.stderr or result.stdout).strip().splitlines()
            return lines[-1] if lines else f"exit status {result.returncode}"
        summary = json.loads((run_dir / "summary.json").read_text())
        if (run_dir / "report.json").exists():
            summary["report"] = json.loads((run_dir / "report.json").read_text())
        return summary

    def diagnose(self, config: dict) -> dict | str:
        result = self.train(config, {"checkpoint": False}, "profile")
        return result if isinstance(result, str) else result.get("report") or "the run recorded no profiler cycle"

    def measure(self, base: dict, candidate: dict) -> tuple[Measurement, Measurement] | str:
        """Baseline and candidate trained alternately, `repeats` times each, without the profiler."""
        measured = Measurement(), Measurement()
        for _ in range(self.repeats):
            for m, config, label in zip(measured, (base, candidate), ("base", "candidate")):
                result = self.train(config, QUIET, label)
                if isinstance(result, str):
                    return result if label == "candidate" else f"the baseline failed: {result}"
                m.tokens_per_s.append(result["tokens_per_s"])
                m.mfu.append(result["mfu"])
        return measured

    def run(self) -> dict:
        steps, baseline_tokens, tried = [], None, set()
        report = self.diagnose(self.config)
        if isinstance(report, str):
            raise SystemExit(f"error: the baseline run failed: {report}")
        noise = MIN_NOISE
        while True:
            steps += memory_skips(report, self.config, tried)
            options = candidates(report, self.config, tried)
            mfu = report["mfu"]["analytic"] or 0.0
            promising = [o for o in options if o[2] and mfu and o[2] / mfu - 1 > noise]
            if not promising:
                reason = "no fix promises more than the noise" if options else "the diagnosis offers no fix"
                print(f"stop: {reason} ({100 * noise:.0f}%)")
                break
            if not self.budget.left(2 * self.repeats):
                print("stop: the budget is spent")
                break
            cause, change, predicted = promising[0]
            tried.add(json.dumps({**self.config, **change}, sort_keys=True))
            candidate = {**self.config, **change}
            step = Step(cause, change, predicted, predicted / mfu)
            print(f"try {cause}: {' '.join(f'--{k}={v}' for k, v in change.items())} (predicted MFU "
                  f"{100 * predicted:.2f}%, now {100 * mfu:.2f}%)")
            measured = self.measure(self.config, candidate)
            if isinstance(measured, str):
                step.reason = f"failed: {measured}"
                steps.append(step)
                print(f"  rejected: {step.reason}")
                continue
            base, cand = measured
            baseline_tokens = baseline_tokens or base.median
            noise = judge(step, base, cand)
            steps.append(step)
            after = self.diagnose(candidate) if self.budget.left(1) else None  # profiled: what the step changed
            if isinstance(after, dict):
                step.explanation = explanation(report, after)
            if step.explanation:
                print(f"  diff: {step.explanation}")
            if step.kept:
                self.config = candidate
                if after is None:
                    break
                if isinstance(after, str):
                    print(f"stop: the kept configuration could not be profiled: {after}")
                    break
                report = after
        final = next((s.tokens_per_s for s in reversed(steps) if s.kept), baseline_tokens)
        return {"baseline_tokens_per_s": baseline_tokens, "final_tokens_per_s": final,
                "final_to_baseline": final / baseline_tokens if final and baseline_tokens else None,
                "final_config": self.full_config(), "runs": self.runs, "steps": [asdict(s) for s in steps]}

    def full_config(self) -> dict:
        values = read_config_file(Path(self.config_file)) if self.config_file else {}
        return {**values, **self.config}


def judge(step: Step, base: Measurement, cand: Measurement) -> float:
    """Fills in what `step`'s candidate measured against its baseline and keeps it only where its gain in tokens/s
    is beyond the noise, the larger relative spread of the two (at least MIN_NOISE); returns that noise, which
    the next fix's promise must beat."""
    noise = max(base.spread, cand.spread, MIN_NOISE)
    gain = cand.median / base.median - 1
    step.measured_mfu = statistics.median(cand.mfu)
    step.measured_mfu_interval = [min(cand.mfu), max(cand.mfu)]
    step.tokens_per_s, step.baseline_tokens_per_s = cand.median, base.median
    step.measured_gain = cand.median / base.median
    step.kept = gain > noise
    step.reason = (f"{100 * gain:+.1f}% tokens/s against the baseline ({base.median:,.0f} -> "
                   f"{cand.median:,.0f}), noise {100 * noise:.1f}%: "
                   + ("kept" if step.kept else "not beyond the noise" if gain > 0 else "slower"))
    print(f"  {'kept' if step.kept else 'rejected'}: {step.reason}")
    return noise


def explanation(before: dict, after: dict) -> str | None:
    """What a kept or rejected step changed, from `python -m profiler diff` of the two profiled runs: the step
    time with its interval, and the cause that moved most with what is behind it. None where a report is not a
    whole mfu-report/1."""
    try:
        a, b = (msgspec.convert(r, Report) for r in (before, after))
    except msgspec.ValidationError:
        return None
    return diff_summary(diff_reports(a, b))


def candidates(report: dict, config: dict, tried: set) -> list[tuple[str, dict, float]]:
    """(cause, config change, predicted MFU) for each bottleneck whose fix is a configuration change, largest
    predicted gain first; changes that are already in place or were tried from this baseline are left out. The
    prediction is the fix's own where the report gives one (fix_speedup: a larger batch spreads the per-step costs
    it keeps), else the what-if. A time ledger's causes (MFU could not be formed) predict no MFU, and tune measures
    against MFU: none is taken."""
    mfu = report["mfu"]["analytic"] or 0.0
    predicting = [(b, mfu * b["fix_speedup"] if b.get("fix_speedup") else b["what_if_mfu"])
                  for b in report["bottlenecks"] if b["what_if_mfu"] is not None]
    out = []
    for b, predicted in sorted(predicting, key=lambda bp: -bp[1]):
        change = {k: v for k, v in (b.get("fix_config") or {}).items() if config.get(k) != v}
        if change and json.dumps({**config, **change}, sort_keys=True) not in tried:
            out.append((b["cause"], change, predicted))
    return out


def memory_skips(report: dict, config: dict, tried: set) -> list[Step]:
    """A larger batch the diagnosis predicts not to fit in the device's memory is not tried: a step that says so
    (once per baseline)."""
    out = []
    for b in report["bottlenecks"]:
        f = b.get("facts") or {}
        batch = config.get("batch_size") or f.get("batch_size")
        if b["cause"] != "small_batch" or f.get("fit_factor", 2) >= 2 or "double_peak" not in f or not batch:
            continue
        change = {"batch_size": 2 * batch}
        key = json.dumps({**config, **change}, sort_keys=True)
        if key in tried:
            continue
        tried.add(key)
        unit = f["memory_unit"]
        step = Step(b["cause"], change, None, reason=(
            f"skipped: predicted {f['double_peak']:.2f} {unit} of {f['memory_capacity']:.2f} {unit} "
            f"({f['memory_capacity_source']}): it does not fit; the evidence says what frees memory"))
        print(f"skip {b['cause']}: --batch_size={2 * batch} {step.reason.split(': ', 1)[1]}")
        out.append(step)
    return out


def markdown(result: dict) -> str:
    lines = ["# tune", "", f"Baseline {result['baseline_tokens_per_s'] or 0:,.0f} tokens/s, final "
             f"{result['final_tokens_per_s'] or 0:,.0f} tokens/s (x{result['final_to_baseline'] or 1:.2f}) in "
             f"{result['runs']} training runs.", "",
             "| change | predicted MFU | measured MFU (range) | tokens/s | predicted / measured speed-up | kept "
             "| why |",
             "|---|---|---|---|---|---|---|"]
    for s in result["steps"]:
        pct = lambda x: f"{100 * x:.2f}%" if x is not None else "-"  # noqa: E731
        interval = s["measured_mfu_interval"]
        measured = f"{pct(s['measured_mfu'])} ({pct(interval[0])}-{pct(interval[1])})" if interval else "-"
        tokens = f"{s['tokens_per_s']:,.0f}" if s["tokens_per_s"] else "-"
        change = " ".join(overrides(s["change"]))
        predicted = f"x{s['predicted_gain']:.2f}" if s["predicted_gain"] else "-"
        gains = f"{predicted} / x{s['measured_gain']:.2f}" if s["measured_gain"] else f"{predicted} / -"
        lines.append(f"| {change} ({s['cause']}) | {pct(s['predicted_mfu'])} | {measured} | {tokens} | {gains} | "
                     f"{'yes' if s['kept'] else 'no'} | {s['reason']}"
                     + (f"; diff of the profiled runs: {s['explanation']}" if s.get("explanation") else "") + " |")
    lines += ["", "Final configuration (final_config.py):", "", "```"] + config_lines(result["final_config"]) + ["```"]
    return "\n".join(lines) + "\n"


def config_lines(config: dict) -> list[str]:
    return [f"{k} = {v!r}" for k, v in config.items()]


def write(result: dict, out: Path):
    (out / "tune.json").write_text(json.dumps(result, indent=1))
    (out / "tune.md").write_text(markdown(result))
    (out / "final_config.py").write_text("# the configuration tune.py kept\n" + "\n".join(config_lines(
        result["final_config"])) + "\n")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(out))
    for i, s in enumerate(result["steps"]):
        if s["tokens_per_s"]:
            writer.add_scalar("tune/tokens_per_s", s["tokens_per_s"], i)
            writer.add_scalar("tune/measured_mfu_pct", 100 * s["measured_mfu"], i)
        if s["predicted_mfu"] is not None:
            writer.add_scalar("tune/predicted_mfu_pct", 100 * s["predicted_mfu"], i)
    writer.add_text("tune", markdown(result), 0)
    writer.close()


def main(argv: list[str]) -> int:
    config_file, overrides, budget, repeats, out = None, {}, "24", 3, None
    for arg in argv:
        key, _, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if arg in ("-h", "--help"):
            print(__doc__)
            return 0
        if not arg.startswith("--"):
            config_file = arg
        elif key == "budget":
            budget = value
        elif key == "repeats":
            repeats = int(value) if value.isdigit() and int(value) > 0 else 0
        elif key == "tune_out":
            out = Path(value)
        else:
            overrides[key] = parse_literal(value)
    try:
        budget = Budget(budget)
        if config_file:
            read_config_file(Path(config_file))
    except (ValueError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not repeats:
        print("error: --repeats must be a positive integer", file=sys.stderr)
        return 2
    out = out or Path(time.strftime("runs/tune-%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    result = Tuner(config_file, overrides, out, repeats, budget).run()
    write(result, out)
    print(markdown(result))
    print(f"tune.json, tune.md, final_config.py and TensorBoard events in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
