"""One job from several ranks: the job's averages and the stragglers.

Under DDP the ranks wait for each other in the all-reduce, so their step times come out alike; a slow rank
shows as the others' exposed communication. Stragglers are therefore found by busy time: the step minus
the exposed communication.
"""

import numpy as np

from profiler.classify import CATEGORIES

STRAGGLER_THRESHOLD = 0.10  # busy time over the other ranks' median by more than this fraction


def mean(values: list):
    return float(np.mean(values)) if values and None not in values else None


def job_fields(body: list[dict], ranks: list[int]) -> dict:
    """Times, shares, MFU (per device, as nanoGPT computes it under DDP) and the ledger averaged over ranks;
    each bottleneck's evidence comes from the rank where that cause costs most."""
    out = dict(body[0])
    out["step_time_ms"] = {k: mean([b["step_time_ms"][k] for b in body]) for k in ("mean", "min", "max")}
    out["breakdown"] = {c: {k: mean([b["breakdown"][c][k] for b in body]) for k in ("ms", "fraction")}
                        for c in CATEGORIES}
    out["mfu"] = dict(body[0]["mfu"], analytic=mean([b["mfu"]["analytic"] for b in body]),
                      counted=mean([b["mfu"]["counted"] for b in body]))
    if all(b["ledger"] for b in body):
        out["ledger"] = [{"cause": e["cause"], **{k: mean([b["ledger"][i][k] for b in body])
                                                  for k in ("points", "ms", "what_if_mfu")}}
                         for i, e in enumerate(body[0]["ledger"])]
        out["bottlenecks"] = []
        for entry in out["ledger"]:
            found = [(b, r) for b, r in zip(body, ranks) for x in b["bottlenecks"] if x["cause"] == entry["cause"]]
            if entry["points"] < 1 or not found:
                continue
            worst, rank = max(found, key=lambda br: next(x["points"] for x in br[0]["bottlenecks"]
                                                         if x["cause"] == entry["cause"]))
            item = next(x for x in worst["bottlenecks"] if x["cause"] == entry["cause"])
            out["bottlenecks"].append({**item, **entry, "evidence": f"rank {rank}: {item['evidence']}"})
        out["bottlenecks"].sort(key=lambda b: -b["points"])
    return out


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
