"""Check the diagnosis on runs with a bottleneck injected on purpose, then apply the fix it recommends.

    python scripts/validate_diagnosis.py [--scenarios=io,small_batch,non_fused,healthy] [--repeats=2]

For each scenario: train with the bottleneck (scripts/profile_run.py), read the report's principal
bottleneck, apply its `fix_config`, train again. The diagnosis is right when it names the expected cause;
the fix works when MFU rises; the prediction holds when the MFU after the fix does not exceed the first
report's `what_if_mfu` by more than the run-to-run noise, measured as the spread of the repeated runs.
Exit status 1 when a check fails.
"""

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from profiler.report.reading import overrides

ROOT = Path(__file__).resolve().parent.parent

BASE = {"n_layer": 2, "n_head": 4, "n_embd": 128, "block_size": 128, "batch_size": 8, "max_iters": 24,
        "dtype": "bfloat16", "skip_first": 4, "wait": 0, "warmup": 2, "active": 8, "repeat": 1,
        "log_interval": 1000}
SCENARIOS = {  # name: (expected principal cause, overrides that inject it)
    "io": ("io", {"data_delay": 0.01, "num_workers": 0}),
    "small_batch": ("small_batch", {"batch_size": 1, "block_size": 16}),
    "non_fused": ("non_fused", {"attention": "manual", "optimizer_impl": "loop", "block_size": 256, "n_embd": 64,
                                "dtype": "float32"}),
    "healthy": (None, {"n_embd": 256, "block_size": 256}),
}
HEALTHY_MARGIN = 10.0  # points: in a healthy run no cause may lead matmul_efficiency by more than this
MIN_NOISE = 0.05


def train(config: dict, out: Path) -> dict:
    args = overrides(config) + [f"--out={out}"]
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "profile_run.py"), *args],
                            capture_output=True, text=True, cwd=ROOT)
    if result.returncode:
        sys.exit(f"profile_run failed for {config}: {result.stderr.strip().splitlines()[-1]}")
    return json.loads((out / "report.json").read_text())


def runs(config: dict, repeats: int, tmp: Path, tag: str) -> list[dict]:
    return [train(config, tmp / f"{tag}-{i}") for i in range(repeats)]


def spread(values: list[float]) -> float:
    """Relative spread (max − min) / median of repeated measurements."""
    return (max(values) - min(values)) / statistics.median(values) if len(values) > 1 else 0.0


def validate(name: str, repeats: int, tmp: Path) -> dict:
    expected, overrides = SCENARIOS[name]
    config = {**BASE, **overrides}
    before = runs(config, repeats, tmp, f"{name}-before")
    first = before[0]
    top = first["bottlenecks"][0] if first["bottlenecks"] else None
    row = {"scenario": name, "expected": expected or "(none ahead)", "diagnosed": top["cause"] if top else "-",
           "mfu_before": statistics.median(r["mfu"]["analytic"] for r in before)}
    if expected is None:  # healthy: no cause far ahead of the matmuls' own inefficiency
        points = {e["cause"]: e["points"] for e in first["ledger"]}
        leader = max(points, key=points.get)
        row["ok"] = points[leader] - points["matmul_efficiency"] <= HEALTHY_MARGIN
        row["note"] = (f"matmul_efficiency leads ({points[leader]:.1f} points)" if leader == "matmul_efficiency" else
                       f"{leader} {points[leader]:.1f} vs matmul_efficiency {points['matmul_efficiency']:.1f} points")
        return row
    fix = top.get("fix_config", {}) if top else {}
    after = runs({**config, **fix}, repeats, tmp, f"{name}-after")
    row["predicted"] = top["what_if_mfu"] if top else None
    row["mfu_after"] = statistics.median(r["mfu"]["analytic"] for r in after)
    noise = max(MIN_NOISE, *(spread([r["mfu"]["analytic"] for r in runs_]) for runs_ in (before, after)))
    row["noise"] = noise
    row["fix"] = fix
    points = lambda report: next(e["points"] for e in report["ledger"] if e["cause"] == expected)  # noqa: E731
    row["cause_points_before"] = statistics.median(points(r) for r in before)
    row["cause_points_after"] = statistics.median(points(r) for r in after)
    row["ok"] = (row["diagnosed"] == expected and row["mfu_after"] > row["mfu_before"]
                 and row["mfu_after"] <= row["predicted"] * (1 + noise))
    return row


def table(rows: list[dict]) -> str:
    pct = lambda x: "" if x is None else f"{100 * x:.2f}%"  # noqa: E731
    lines = [f"{'scenario':<12}{'expected':<14}{'diagnosed':<19}{'MFU before':>11}{'predicted':>11}{'after':>9}"
             f"{'noise':>7}  result"]
    for r in rows:
        lines.append(f"{r['scenario']:<12}{r['expected']:<14}{r['diagnosed']:<19}{pct(r['mfu_before']):>11}"
                     f"{pct(r.get('predicted')):>11}{pct(r.get('mfu_after')):>9}{pct(r.get('noise')):>7}  "
                     f"{'ok' if r['ok'] else 'FAIL'} {r.get('note') or r.get('fix') or ''}")
    return "\n".join(lines)


def main(argv):
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return 0
    names, repeats = list(SCENARIOS), 2
    for arg in argv:
        key, _, value = arg.removeprefix("--").partition("=")
        if key == "scenarios":
            names = value.split(",")
        elif key == "repeats" and value.isdigit() and int(value) > 0:
            repeats = int(value)
        else:
            print(f"error: unknown option {arg} (see --help)", file=sys.stderr)
            return 2
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        print(f"error: unknown scenarios: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        rows = [validate(name, repeats, Path(tmp)) for name in names]
    print(table(rows))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
