"""The MFU ledger: 100 − MFU% split into points lost per cause, adding up exactly (DESIGN.md).

Each category of the breakdown is lost time, charged to one cause; the matmul category is charged only for
the time beyond what the model's FLOPs need at peak, split into precision (running slower than the device's
fastest precision), small matmuls (small_batch) and the rest (matmul_efficiency).
"""

CAUSES = ("io", "small_batch", "non_fused", "memory_ops", "communication", "precision", "matmul_efficiency", "other")


def cause_seconds(category_s: dict, flops: float, peak: float, peak_run: float, small_matmul_excess_s: float,
                  short_idle_s: float, optimizer_host_s: float = 0.0, optimizer_idle_s: float = 0.0) -> dict[str, float]:
    """Seconds per step lost to each cause; they sum to the step time minus flops/peak.

    Host overhead and idle inside Optimizer.step are the cost of an optimizer that runs many small ops:
    non_fused. Other idle gaps shorter than 1 ms between ops (Python, launches) are framework overhead, like
    the host's dispatch time: small_batch; longer idle stretches are unexplained: other. Small matmuls' time
    beyond their FLOPs at P_run is small_batch too, up to the whole matmul excess.
    """
    ideal, at_run = flops / peak, flops / peak_run
    matmul_excess = category_s["matmul"] - at_run
    small = min(max(small_matmul_excess_s, 0.0), max(matmul_excess, 0.0))
    optimizer_host = min(max(optimizer_host_s, 0.0), category_s["host_overhead"])
    optimizer_idle = min(max(optimizer_idle_s, 0.0), category_s["idle"])
    short_idle = min(max(short_idle_s - optimizer_idle, 0.0), category_s["idle"] - optimizer_idle)
    return {
        "io": category_s["data_loading"],
        "small_batch": category_s["host_overhead"] - optimizer_host + small + short_idle,
        "non_fused": category_s["other_compute"] + optimizer_host + optimizer_idle,
        "memory_ops": category_s["memory"],
        "communication": category_s["communication"],
        "precision": at_run - ideal,
        "matmul_efficiency": matmul_excess - small,
        "other": category_s["idle"] - optimizer_idle - short_idle,
    }


def ledger(step_s: float, seconds: dict[str, float], flops: float, peak: float) -> list[dict]:
    """Points, ms per step and what-if MFU (the MFU with that loss gone entirely) for each cause."""
    ideal = flops / peak
    return [{"cause": c, "points": 100 * seconds[c] / step_s, "ms": 1000 * seconds[c],
             "what_if_mfu": ideal / (step_s - max(seconds[c], 0.0))} for c in CAUSES]
