"""One job from several ranks: the job's averages and the stragglers.

Under DDP the ranks wait for each other in the all-reduce, so their step times come out alike; a slow rank
shows as the others' exposed communication. Stragglers are therefore found by busy time: the step minus
the exposed communication.
"""

import numpy as np

from profiler.classify import CATEGORIES
from profiler.diagnosis import MIN_POINTS

STRAGGLER_THRESHOLD = 0.10  # busy time over the other ranks' median by more than this fraction


def mean(values: list):
    return float(np.mean(values)) if values and None not in values else None


# how each job-level field is formed from the ranks' fields (the report says so in job_aggregation)
AGGREGATION = {
    "step_time_ms": "mean over ranks", "breakdown": "mean over ranks",
    "mfu": "mean over ranks (per device, as nanoGPT computes it under DDP)", "ledger": "mean over ranks",
    "bottlenecks": "ledger mean over ranks; evidence from the rank where the cause costs most",
    "device_utilization": "mean over ranks", "top_ops": "mean over ranks of each rank's top ops (TFLOP/s: FLOPs over their time, all ranks)",
    "classification_ms": "mean over ranks", "communication": "mean over ranks",
    "copied_bytes_per_step": "mean over ranks", "matmul_without_flops_ms": "mean over ranks",
    "per_step": "mean over ranks per step number",
}


def job_fields(body: list[dict], ranks: list[int]) -> dict:
    """The job's fields over its ranks, each formed as AGGREGATION says; bottleneck evidence comes from the
    rank where that cause costs most, and says which rank."""
    out = {"job_aggregation": AGGREGATION}
    out["step_time_ms"] = {k: mean([b["step_time_ms"][k] for b in body]) for k in ("mean", "min", "max")}
    out["breakdown"] = {c: {k: mean([b["breakdown"][c][k] for b in body]) for k in ("ms", "fraction")}
                        for c in CATEGORIES}
    out["mfu"] = dict(body[0]["mfu"], analytic=mean([b["mfu"]["analytic"] for b in body]),
                      counted=mean([b["mfu"]["counted"] for b in body]))
    out["device_utilization"] = mean_dicts([b["device_utilization"] for b in body])
    out["classification_ms"] = mean_dicts([b["classification_ms"] for b in body])
    out["copied_bytes_per_step"] = mean([b["copied_bytes_per_step"] for b in body])
    out["matmul_without_flops_ms"] = mean([b["matmul_without_flops_ms"] for b in body])
    out["communication"] = job_communication([b["communication"] for b in body])
    out["top_ops"] = job_top_ops([b["top_ops"] for b in body])
    out["per_step"] = job_per_step([b["per_step"] for b in body])
    out["ledger"], out["bottlenecks"] = [], []
    if all(b["ledger"] for b in body):
        out["ledger"] = [{"cause": e["cause"], **{k: mean([b["ledger"][i][k] for b in body])
                                                  for k in ("points", "ms", "what_if_mfu")}}
                         for i, e in enumerate(body[0]["ledger"])]
        for entry in out["ledger"]:
            found = [(b, r) for b, r in zip(body, ranks) for x in b["bottlenecks"] if x["cause"] == entry["cause"]]
            if entry["points"] < MIN_POINTS or not found:
                continue
            worst, rank = max(found, key=lambda br: next(x["points"] for x in br[0]["bottlenecks"]
                                                         if x["cause"] == entry["cause"]))
            item = next(x for x in worst["bottlenecks"] if x["cause"] == entry["cause"])
            out["bottlenecks"].append({**item, **entry, "evidence": f"rank {rank}: {item['evidence']}"})
        out["bottlenecks"].sort(key=lambda b: -b["points"])
    return out


def mean_dicts(parts: list[dict | None]) -> dict | None:
    """Key by key mean of the ranks' dicts of numbers (None when any rank has none)."""
    if not parts or any(p is None for p in parts):
        return None
    return {k: mean([p[k] for p in parts]) for k in parts[0]}


def job_communication(parts: list[dict | None]) -> dict | None:
    present = [p for p in parts if p]
    if not present:
        return None
    n = len(parts)
    total = sum(p["total_ms"] for p in present) / n
    exposed = sum(p["exposed_ms"] for p in present) / n
    calls = {}
    for p in present:
        for k, v in p["calls_per_step"].items():
            calls[k] = calls.get(k, 0.0) + v / n
    sent = [p["bytes_per_step"] for p in present if p["bytes_per_step"]]
    return {"total_ms": total, "exposed_ms": exposed, "exposed_fraction": exposed / total if total else None,
            "calls_per_step": calls, "bytes_per_step": sum(sent) / n if sent else None}


def job_top_ops(parts: list[list[dict]]) -> list[dict]:
    """Each op's time, count and FLOPs per step averaged over the ranks (an op missing on a rank counts 0)."""
    merged: dict[str, dict] = {}
    for ops in parts:
        for op in ops:
            m = merged.setdefault(op["name"], {"name": op["name"], "category": op["category"], "count": 0.0,
                                               "ms": 0.0, "flops": 0.0, "flop_s": 0.0})
            for k in ("count", "ms", "flops"):
                m[k] += op[k] / len(parts)
            if op["tflops_per_s"]:
                m["flop_s"] += op["flops"] / (op["tflops_per_s"] * 1e12)
    rows = sorted(merged.values(), key=lambda m: -m["ms"])
    for m in rows:
        flop_s = m.pop("flop_s")
        m["tflops_per_s"] = m["flops"] * len(parts) / flop_s / 1e12 if flop_s else None
    return rows[:len(parts[0])]


def job_per_step(parts: list[list[dict]]) -> list[dict]:
    """Per step number present on every rank: each field's mean over the ranks."""
    by_step = [{s["step"]: s for s in steps} for steps in parts]
    common = sorted(set.intersection(*(set(d) for d in by_step)))
    return [{"step": i, **{k: mean([d[i][k] for d in by_step]) for k in by_step[0][i] if k != "step"}}
            for i in common]


def stragglers(body: list[dict], ranks: list[int]) -> list[dict]:
    """Ranks whose busy time exceeds the median of the others' by STRAGGLER_THRESHOLD, with the category that
    makes the largest part of the difference."""
    busy = [b["step_time_ms"]["mean"] - b["breakdown"]["communication"]["ms"] for b in body]
    out = []
    for i, rank in enumerate(ranks):
        others = [j for j in range(len(body)) if j != i]
        baseline = float(np.median([busy[j] for j in others]))
        if busy[i] <= baseline * (1 + STRAGGLER_THRESHOLD):
            continue
        diff = {c: body[i]["breakdown"][c]["ms"] - float(np.median([body[j]["breakdown"][c]["ms"] for j in others]))
                for c in CATEGORIES if c != "communication"}
        out.append({"rank": rank, "excess_ms": busy[i] - baseline, "category": max(diff, key=diff.get)})
    return out
