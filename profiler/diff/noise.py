"""The diff's noise model: a bootstrap over each side's analysed steps.

Each analysed step is a sample: a job's ranks are averaged per step number first (report.per_step), since they
wait for each other in that step and their figures move together; the steps of several profiler cycles are
pooled. Each side's steps are resampled with replacement DIFF_RESAMPLES times, from a fixed seed (the same two
reports give the same intervals), and a change's interval is the headline change plus the spread of the
resampled changes around the full-sample one, at DIFF_LEVEL. No normality is assumed, so a warm first step or
a bimodal run widens the interval as much as it really does.

A run's steps do not show the load that lasts the whole run on a shared machine: the step time's resamples are
also multiplied by a run-to-run factor per side (settings.RUN_NOISE, measured by scripts/bench_diff.py).
"""

import numpy as np

from profiler.settings import DIFF_LEVEL, DIFF_RESAMPLES


def method(run_noise: float) -> str:
    """The diff's conventions line that names the method."""
    run = (f"; the step time's also holds a run-to-run noise of {100 * run_noise:.1f}% per run (lognormal)"
           if run_noise else "")
    return (f"bootstrap over steps: each side's analysed steps (a job's ranks averaged per step) resampled with "
            f"replacement {DIFF_RESAMPLES} times from a fixed seed; {100 * DIFF_LEVEL:.0f}% intervals of the change "
            f"in the mean{run}")


def run_factors(run_noise: float, seed: int) -> np.ndarray:
    """Each resample's factor on a side's mean step: the run-to-run noise that no run's own steps show,
    lognormal with `run_noise` its relative standard deviation (ones where it is 0)."""
    return np.exp(run_noise * np.random.default_rng(seed).standard_normal(DIFF_RESAMPLES))


def resampled_means(values: np.ndarray, seed: int) -> np.ndarray | None:
    """Column means of DIFF_RESAMPLES resamples of the rows (steps × figures → resamples × figures), from the
    multinomial counts of each step (no resamples × steps × figures array); None under two steps."""
    n = len(values)
    if n < 2:
        return None
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=DIFF_RESAMPLES)
    return counts @ values / n


def change_interval(change: float, boot_a: np.ndarray, boot_b: np.ndarray, full_a: float, full_b: float,
                    relative: bool = False) -> list[float]:
    """[low, high] of a change (B − A, or B / A − 1 where `relative`): the headline change plus the quantiles of
    the resampled changes' deviation from the full-sample change."""
    if relative:
        spread = np.divide(boot_b, boot_a, out=np.zeros_like(boot_b), where=boot_a > 0) - full_b / full_a
    else:
        spread = (boot_b - boot_a) - (full_b - full_a)
    low, high = np.quantile(spread, [(1 - DIFF_LEVEL) / 2, (1 + DIFF_LEVEL) / 2])
    return [change + float(low), change + float(high)]
