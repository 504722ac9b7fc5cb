"""FLOPs that ran, from the ops' recorded shapes (the analytic model count is mfu/modelflops.py)."""

import ast
import math
import re

import numpy as np

from profiler.facts import Note
from profiler.trace.classify import GEMM_OPS

# --- FLOPs of the ops that ran, from their recorded input shapes (record_shapes=True) ---
#
# Counted at the ops that do the work (mm, not the linear or matmul that call it); where such ops nest
# (sdpa → _flash_attention_forward, convolution → cudnn_convolution), only the outermost one counts.

FLOP_OPS = re.compile(
    rf"^aten::({GEMM_OPS}"
    r"|_scaled_dot_product_\w+_attention\w*|_flash_attention_\w+"
    r"|_efficient_attention_\w+|convolution|_convolution|convolution_backward|cudnn_convolution"
    r"|cudnn_convolution_backward|mkldnn_convolution)$"
)


def _prod(dims) -> int:
    return math.prod(int(d) for d in dims)


FIRST_TWO_OPERANDS = ("aten::mm", "aten::bmm", "aten::_scaled_mm", "aten::_scaled_mm_v2", "aten::_int_mm",
                      "aten::_grouped_mm", "aten::_scaled_grouped_mm")


def matmul_flops(name: str, dims: list) -> float:
    """2·m·k·n per matrix product; the added bias or input of addmm / baddbmm is not counted (as flop_counter).

    Scaled (fp8 / fp4) GEMMs count like mm. A grouped GEMM (MoE experts) of [G, m, k] by [G, k, n] does G
    products; in its other layouts ([tokens, k] by [G, k, n]; offsets splitting k or n) the groups share out
    the rows, k or the columns, so together they do 2 · (rows of a) · k · (columns of b).
    """
    a, b = (dims[0], dims[1]) if name in FIRST_TWO_OPERANDS else (dims[1], dims[2])
    if len(a) < 2 or len(b) < 2 or a[-1] != b[-2] or ("grouped" not in name and len(a) != len(b)):
        raise ValueError(f"{name}: shapes {a} and {b} do not multiply")
    if "grouped" in name and not (len(a) == 3 and len(b) == 3):
        return 2.0 * a[-2] * a[-1] * b[-1]
    return 2.0 * _prod(a) * b[-1]


def attention_flops(name: str, dims: list) -> float:
    """Scores and values: 2·B·H·Lq·Lk·(E + Ev) forward, twice that backward (full, non-causal T×T, as nanoGPT)."""
    backward = name.endswith("_backward")
    q, k, v = dims[1:4] if backward else dims[0:3]
    if name.startswith(("aten::_flash_attention", "aten::_efficient_attention")):  # [B, L, H, E] layout
        (batch, lq, heads, e), lk, ev = q, k[1], v[-1]
    else:  # [B, H, L, E]
        (batch, heads, lq, e), lk, ev = q, k[-2], v[-1]
    forward = 2.0 * batch * heads * lq * lk * (e + ev)
    return 2 * forward if backward else forward


def conv_output_spatial(inp: list, weight: list, concrete: list) -> list[int] | None:
    """Output spatial size from stride / padding / dilation when the trace recorded them (torch ≥ 2.0)."""
    try:
        stride, padding, dilation = (list(ast.literal_eval(c)) for c in concrete[3:6])
    except (ValueError, SyntaxError, TypeError, IndexError):
        return None
    spatial, kernel = inp[2:], weight[2:]
    n = len(spatial)
    stride, padding, dilation = ((x * n)[:n] if len(x) == 1 else x for x in (stride, padding, dilation))
    return [(s + 2 * p - d * (k - 1) - 1) // st + 1
            for s, k, st, p, d in zip(spatial, kernel, stride, padding, dilation)]


def conv_mask(concrete: list) -> tuple[bool, bool]:
    """Whether a convolution backward computed the input and the weight gradient: its output_mask, the last
    scalar argument, where recorded (the first layer computes no input gradient); else both."""
    try:
        mask = ast.literal_eval(concrete[-1])
    except (ValueError, SyntaxError, TypeError, IndexError):
        return True, True
    if isinstance(mask, list) and len(mask) in (2, 3) and all(isinstance(m, bool) for m in mask):
        return mask[0], mask[1]
    return True, True


def conv_flops(inp: list, weight: list, out_spatial: list) -> float:
    """2 · N · C_out · prod(out spatial) · (C_in / groups) · prod(kernel), forward."""
    return 2.0 * inp[0] * weight[0] * _prod(out_spatial) * weight[1] * _prod(weight[2:])


def counted_flops(names: list[str], shapes: list, consumers=None) -> tuple[np.ndarray, list[Note]]:
    """FLOPs of each op (outermost FLOP ops only, chosen by the caller) from its shapes, 0 when unknown; and
    warnings for the ops it could not count.

    Forward convolutions in traces without scalar arguments (torch < 2.0) take their output size from the
    matching backward op (same input and weight shapes), which records the output gradient's shape, or else
    from the op that consumed their output (consumers(indices): that op's first input shape for each).
    """
    out = np.zeros(len(names))
    warnings: list[Note] = []
    backward_out = {}
    for name, sh in zip(names, shapes):
        if name == "aten::convolution_backward" and len(sh.dims) >= 3:
            backward_out[(tuple(sh.dims[1]), tuple(sh.dims[2]))] = sh.dims[0][2:]
        elif name == "aten::cudnn_convolution_backward" and len(sh.dims) >= 3:
            backward_out[(tuple(sh.dims[0]), tuple(sh.dims[2]))] = sh.dims[1][2:]
    no_shapes, pending = 0, []
    for i, (name, sh) in enumerate(zip(names, shapes)):
        dims = sh.dims
        try:
            if "attention" in name:
                out[i] = attention_flops(name, dims)
            elif "convolution" in name:
                if name.endswith("_backward"):
                    grad, inp = (dims[0], dims[1]) if name == "aten::convolution_backward" else (dims[1], dims[0])
                    out[i] = sum(conv_mask(sh.concrete)) * conv_flops(inp, dims[2], grad[2:])
                else:
                    spatial = (conv_output_spatial(dims[0], dims[1], sh.concrete)
                               or backward_out.get((tuple(dims[0]), tuple(dims[1]))))
                    if spatial is None:
                        pending.append(i)
                        continue
                    out[i] = conv_flops(dims[0], dims[1], spatial)
            else:
                out[i] = matmul_flops(name, dims)
        except (ValueError, TypeError, IndexError):
            no_shapes += 1
    no_output = 0
    for i, consumer in zip(pending, consumers(pending) if consumers and pending else [None] * len(pending)):
        spatial = consumed_spatial(shapes[i].dims[0], shapes[i].dims[1], consumer)
        if spatial is None:
            no_output += 1
        else:
            out[i] = conv_flops(shapes[i].dims[0], shapes[i].dims[1], spatial)
    if no_shapes:
        warnings.append(Note("no_input_shapes", {"ops": no_shapes}))
    if no_output:
        warnings.append(Note("convolution_output_unknown", {"ops": no_output}))
    return out, warnings


def consumed_spatial(inp: list, weight: list, consumer: list | None) -> list | None:
    """The output's spatial size, from the first input of the op that ran next: it is this convolution's output
    when its batch and channels are [N, C_out] and it has as many dimensions as the input."""
    if consumer and len(consumer) == len(inp) and consumer[0] == inp[0] and consumer[1] == weight[0]:
        return consumer[2:]
    return None
