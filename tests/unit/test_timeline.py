"""The step timeline on a small synthetic trace: which step, which lanes, nesting, categories, FLOPs, shapes."""


import numpy as np

from profiler.analysis.timeline import median_step
from profiler.trace.steps import Steps


def test_the_median_step_is_the_typical_one():
    steps = Steps(ids=np.array([1, 2, 3, 4]), host_start=None, host_end=None, start=np.array([0., 10, 40, 100]),
                  end=np.array([10., 40, 60, 104]))
    assert median_step(steps) == 0  # lengths 10, 30, 20, 4: sorted 4, 10, 20, 30, the lower middle is step 1's 10
