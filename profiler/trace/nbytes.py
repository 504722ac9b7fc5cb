"""Bytes an op moves, from its recorded input shapes and types: each input read once, each output written once.

This is the roofline's convention (the ideal traffic of one pass, as caches would make it); the report states
it beside the FLOP conventions. Kineto records inputs only, so each op's outputs come from its kind:

- GEMMs (mm, addmm, bmm, baddbmm, scaled / integer / grouped): read the operands (and the added input), write
  the product, whose size is the FLOPs over 2·k; scaled (fp8 / fp4) GEMMs write bfloat16, integer ones int32.
- Attention (SDPA, flash, efficient): forward reads q, k, v (and a mask) and writes an output of q's shape with
  v's last dimension; backward reads its inputs and writes the gradients of q, k and v. The log-sum-exp
  statistics (one float per query row) are left out.
- Convolution: forward reads input, weight and bias and writes the output (its size from the FLOPs);
  backward reads its inputs and writes the gradients it computed (output_mask).
- Elementwise ops, norms, softmax, losses: read every tensor input, write one output of the inputs' broadcast
  shape in the first input's dtype; in-place ops (add_) write their first input, fill_ / zero_ only write it.
  Norms' mean and rstd are left out. Reductions (sum, norm, max, ...) write next to nothing: not counted.
- Gathers (embedding, index_select): read the indices and the rows they select, write those rows.
- Copies (copy_): read the source, write the destination; cat / stack read every tensor and write them all.
- Optimizers: _foreach_ ops read every list and write the first (in place or not; _foreach_norm writes
  nothing); fused ones (_fused_adamw_, _fused_sgd_) read every list and write all but the gradients (the
  second). Kineto records no dtype for a TensorList's elements: they count as the op's first tensor's dtype,
  else, in an optimizer's lists, float32 (parameters and optimizer states under autocast); a cat of a list
  alone has no known bytes.
- torch.compile's generated kernels (triton_*, cpp_fused_*): every tensor argument once (inductor passes
  inputs and outputs alike as arguments).

Ops outside these families (custom ops) and ops without recorded shapes get no bytes: unknown, never guessed.
"""

import math
import re

from profiler.trace.classify import GEMM_OPS
from profiler.trace.dtypes import BYTES_OF_INPUT_TYPE
from profiler.trace.flops import FIRST_TWO_OPERANDS, conv_mask

GEMM = re.compile(rf"^aten::({GEMM_OPS})$")
ATTENTION = re.compile(r"^aten::(_scaled_dot_product_\w+_attention\w*|_flash_attention_\w+|_efficient_attention_\w+)$")
CONVOLUTION = re.compile(r"^aten::(convolution|_convolution|cudnn_convolution|mkldnn_convolution|miopen_convolution)"
                         r"(_backward)?$")
GATHER = re.compile(r"^aten::(embedding|index_select)$")
CONCAT = re.compile(r"^aten::(cat|_cat|stack)$")
FOREACH = re.compile(r"^aten::_foreach_\w+$")
FUSED_OPTIMIZER = re.compile(r"^aten::_fused_\w+_$")
WRITE_ONLY = re.compile(r"^aten::(fill_|zero_|zeros|ones|full|normal_|uniform_|bernoulli_|random_|fill)$")
REDUCTION = re.compile(r"^aten::(sum|mean|amax|amin|max|min|norm|linalg_vector_norm|var|std|var_mean|std_mean|prod"
                       r"|argmax|argmin|all|any|logsumexp|count_nonzero|nll_loss_forward|_foreach_norm)$")
GENERATED = re.compile(r"^(triton_|cpp_fused_)")
SCALED_GEMM = ("aten::_scaled_mm", "aten::_scaled_mm_v2", "aten::_scaled_grouped_mm")
LIST_DEFAULT = 4  # bytes of a TensorList element when the op names no tensor dtype: float32


def _numel(dims) -> int:
    return math.prod(int(d) for d in dims)


def _is_shape(d) -> bool:
    return isinstance(d, list) and all(isinstance(x, int) for x in d)


def _list_element(name: str, types: list) -> int | None:
    """Bytes of a TensorList's elements: the op's first tensor's dtype, else float32 for an optimizer's lists,
    else unknown."""
    element = next((BYTES_OF_INPUT_TYPE[t] for t in types if t in BYTES_OF_INPUT_TYPE), None)
    if element is None and (FOREACH.match(name) or FUSED_OPTIMIZER.match(name)):
        return LIST_DEFAULT
    return element


def _tensors(dims: list, types: list, element: int | None) -> list[tuple[list, int]]:
    """(shape, bytes per element) of each tensor input, in order; lists of tensors are flattened, their elements
    `element` bytes each (a list of unknown dtype makes the whole unknown: [])."""
    out = []
    for d, t in zip(dims, types):
        if t in BYTES_OF_INPUT_TYPE and _is_shape(d):
            out.append((d, BYTES_OF_INPUT_TYPE[t]))
        elif t == "TensorList" and isinstance(d, list) and d:
            if element is None:
                return []
            out += [(x, element) for x in d if _is_shape(x)]
    return out


def _bytes(tensors) -> float:
    return float(sum(_numel(d) * size for d, size in tensors))


def _lists(dims: list, types: list, element: int) -> list[float]:
    """Bytes of each TensorList argument, in order."""
    return [float(sum(_numel(x) * element for x in d if _is_shape(x))) for d, t in zip(dims, types)
            if t == "TensorList" and isinstance(d, list)]


def _output_numel(shapes: list[list]) -> int:
    """Elements of an elementwise op's output: the inputs' broadcast shape where they broadcast (NumPy's rule),
    else the largest input (a norm's per-channel weight against an NCHW input does not broadcast by that rule)."""
    rank = max(len(s) for s in shapes)
    padded = [[1] * (rank - len(s)) + list(s) for s in shapes]
    columns = [set(column) - {1} for column in zip(*padded)]
    if all(len(c) <= 1 for c in columns):
        return math.prod(max(c, default=1) for c in columns)
    return max(_numel(s) for s in shapes)


def op_bytes(name: str, dims: list, types: list, concrete: list | None = None,
             flops: float = 0.0) -> tuple[float, float] | None:
    """(bytes read, bytes written) by one call of the op, or None where its shapes or its kind say nothing.
    `flops` is the op's counted FLOPs (the size of a GEMM's or a forward convolution's output follows from it)."""
    types = list(types) + [""] * (len(dims) - len(types))
    element = _list_element(name, types)
    tensors = _tensors(dims, types, element)
    if GENERATED.match(name):
        return (_bytes(tensors), 0.0) if tensors else None
    if not name.startswith("aten::"):
        return None
    if FOREACH.match(name) or FUSED_OPTIMIZER.match(name):
        lists = _lists(dims, types, element or LIST_DEFAULT)
        if not any(lists):
            return None
        read = _bytes(tensors)
        if REDUCTION.match(name):
            return read, 0.0
        return read, (sum(lists) - lists[1] if FUSED_OPTIMIZER.match(name) and len(lists) > 1 else lists[0])
    if not tensors:
        return None
    read = _bytes(tensors)
    first_size = tensors[0][1]
    if GEMM.match(name) or ATTENTION.match(name) or CONVOLUTION.match(name):
        return _matmul_bytes(name, dims, tensors, concrete, flops)
    if GATHER.match(name):
        if len(tensors) < 2 or not tensors[0][0]:
            return None
        table, index = tensors[0], tensors[-1]
        rows = _numel(index[0]) * _numel(table[0][1:]) * table[1]
        return _bytes([index]) + rows, rows
    if CONCAT.match(name):
        return read, read
    if name == "aten::copy_":
        return (_bytes(tensors[1:2]), _bytes(tensors[:1])) if len(tensors) >= 2 else None
    if WRITE_ONLY.match(name):
        return 0.0, _bytes(tensors[:1])
    if REDUCTION.match(name):
        return read, 0.0
    if name.endswith("_") and not name.endswith("__"):  # in place: writes its first input
        return read, _bytes(tensors[:1])
    return read, _output_numel([d for d, _ in tensors]) * first_size


def _matmul_bytes(name: str, dims: list, tensors: list, concrete: list | None,
                  flops: float) -> tuple[float, float] | None:
    """A GEMM's, attention's or convolution's bytes: the output of a GEMM or a forward convolution follows from
    its FLOPs; a backward writes the gradients its mask asks for."""
    read, first_size = _bytes(tensors), tensors[0][1]
    if GEMM.match(name):
        a = dims[0] if name in FIRST_TWO_OPERANDS else dims[1]
        if not flops or not _is_shape(a) or not a:
            return None
        out_size = 2 if name in SCALED_GEMM else 4 if name == "aten::_int_mm" else first_size
        return read, flops / (2 * a[-1]) * out_size
    if ATTENTION.match(name):
        if name.endswith("_backward"):
            return read, _bytes(tensors[1:4])
        (q, size), (v, _) = tensors[0], tensors[2] if len(tensors) > 2 else tensors[0]
        return read, _numel(q[:-1]) * v[-1] * size
    if name.endswith("_backward"):  # a convolution's
        if len(tensors) < 3:
            return None
        grad_input, grad_weight = conv_mask(concrete or [])
        inp = tensors[1] if name == "aten::convolution_backward" else tensors[0]
        return read, grad_input * _bytes([inp]) + grad_weight * _bytes([tensors[2]])
    if not flops or len(tensors) < 2:
        return None
    weight = tensors[1][0]
    return read, flops / (2 * _numel(weight[1:])) * first_size
