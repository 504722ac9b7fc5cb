"""Unfused attention: the ops of matmul + mask + softmax + matmul, found by what they work on.

When softmax and bmm ops ran and no fused attention op did, the ops that read or produce the L×L score
matrix (the score and value bmm's, scaling, masking, softmax, dropout and their backward ops) are the
attention that a single F.scaled_dot_product_attention would replace; their cost is charged to non_fused.
"""

import re

import numpy as np

from profiler.trace.classify import FUSED_ATTENTION, SOFTMAX
from profiler.trace.kinds import OP
from profiler.trace.load import Trace

BMM = re.compile(r"^aten::(bmm|baddbmm)$")
SCORE_OPS = re.compile(
    r"^aten::(mul|div|add|masked_fill|masked_fill_|where|softmax|_softmax|_softmax_backward_data|safe_softmax"
    r"|dropout|native_dropout|native_dropout_backward|bmm|baddbmm)$"
)
MIN_SCORE_LEN = 16


def present(trace: Trace) -> bool:
    names = trace.names
    ran = set(trace.name[trace.kind == OP].tolist())
    has = lambda pattern: any(pattern.match(names[i]) for i in ran)  # noqa: E731
    return has(SOFTMAX) and has(BMM) and not has(FUSED_ATTENTION)


def score_ops(trace: Trace) -> np.ndarray:
    """Rows of the ops that work on an L×L score matrix, when attention ran unfused; else none."""
    if not present(trace):
        return np.empty(0, dtype=np.int64)
    candidates = np.flatnonzero(trace.by_name(SCORE_OPS.match) & (trace.kind == OP))
    shapes = trace.shapes(candidates)
    keep = [r for r, shape in zip(candidates, shapes) if _touches_scores(trace.names[trace.name[r]], shape.dims)]
    return np.array(keep, dtype=np.int64)


def _touches_scores(name: str, dims: list) -> bool:
    tensors = [d for d in dims if isinstance(d, list) and len(d) >= 3]
    square = any(d[-1] == d[-2] >= MIN_SCORE_LEN for d in tensors)
    if BMM.match(name) and len(tensors) >= 2:  # a bmm also makes scores when its output is L×L: [b,m,k]×[b,k,m]
        a, b = tensors[-2], tensors[-1]
        square = square or (a[-2] == b[-1] >= MIN_SCORE_LEN and a[-1] < a[-2])
    return square
