"""Bytes per op (nbytes.py), each family against a hand computation: each input read once, each output written
once."""

import pytest

from profiler.trace.flops import attention_flops, matmul_flops
from profiler.trace.nbytes import op_bytes

F32, BF16, I64, F8 = "float", "c10::BFloat16", "long int", "c10::Float8_e4m3fn"


def test_gemms_read_their_operands_and_write_the_product():
    dims = [[64, 32], [32, 16]]
    assert op_bytes("aten::mm", dims, [F32, F32], flops=matmul_flops("aten::mm", dims)) == (
        (64 * 32 + 32 * 16) * 4, 64 * 16 * 4)
    dims = [[16], [64, 32], [32, 16], [], []]  # addmm reads the added bias too
    assert op_bytes("aten::addmm", dims, [BF16, BF16, BF16, "Scalar", "Scalar"],
                    flops=matmul_flops("aten::addmm", dims)) == ((16 + 64 * 32 + 32 * 16) * 2, 64 * 16 * 2)
    dims = [[8, 64, 32], [8, 32, 16]]
    assert op_bytes("aten::bmm", dims, [BF16, BF16], flops=matmul_flops("aten::bmm", dims)) == (
        (8 * 64 * 32 + 8 * 32 * 16) * 2, 8 * 64 * 16 * 2)
    dims = [[128, 256], [256, 512], [], []]  # fp8 operands, bfloat16 product
    assert op_bytes("aten::_scaled_mm", dims, [F8, F8, F32, F32], flops=matmul_flops("aten::_scaled_mm", dims)) == (
        128 * 256 + 256 * 512 + 8, 128 * 512 * 2)
    dims = [[4, 64, 32], [4, 32, 16]]  # grouped: 4 experts' products
    assert op_bytes("aten::_grouped_mm", dims, [BF16, BF16], flops=matmul_flops("aten::_grouped_mm", dims))[1] == (
        4 * 64 * 16 * 2)


def test_attention_reads_q_k_v_and_writes_the_output_forward_and_the_gradients_backward():
    B, H, L, E = 2, 4, 128, 32
    q = [B, H, L, E]
    forward = "aten::_scaled_dot_product_flash_attention"
    fwd = op_bytes(forward, [q, q, q, [], []], [BF16, BF16, BF16, "Scalar", ""],
                   flops=attention_flops(forward, [q, q, q]))
    assert fwd == (3 * B * H * L * E * 2, B * H * L * E * 2)
    backward = forward + "_backward"  # grad_out, q, k, v, out, logsumexp
    lse = [B, H, L]
    bwd = op_bytes(backward, [q, q, q, q, q, lse], [BF16] * 5 + [F32])
    assert bwd == (5 * B * H * L * E * 2 + B * H * L * 4, 3 * B * H * L * E * 2)
    blhe = [B, L, H, E]  # flash layout
    assert op_bytes("aten::_flash_attention_forward", [blhe, blhe, blhe], [BF16] * 3)[1] == B * L * H * E * 2


def test_convolution_output_comes_from_its_flops_and_backward_writes_the_gradients_it_computed():
    inp, weight = [8, 3, 32, 32], [16, 3, 3, 3]
    flops = 2.0 * 8 * 16 * 30 * 30 * 3 * 9  # no padding: 30x30 output
    read, written = op_bytes("aten::convolution", [inp, weight, []], [F32, F32, ""], flops=flops)
    assert read == (8 * 3 * 32 * 32 + 16 * 27) * 4 and written == 8 * 16 * 30 * 30 * 4
    grad = [8, 16, 30, 30]
    mask = ["", "", "", "[16]", "[1, 1]", "[0, 0]", "[1, 1]", "False", "[0, 0]", "1", "[False, True, True]"]
    read, written = op_bytes("aten::convolution_backward", [grad, inp, weight], [F32] * 3, mask)
    assert read == (8 * 16 * 900 + 8 * 3 * 1024 + 16 * 27) * 4 and written == 16 * 27 * 4  # weight gradient only


def test_elementwise_norms_and_in_place_ops():
    x = [64, 256, 384]
    n = 64 * 256 * 384
    assert op_bytes("aten::add", [x, [256, 384], []], [F32, F32, "Scalar"]) == ((n + 256 * 384) * 4, n * 4)
    assert op_bytes("aten::add_", [x, x, []], [F32, F32, "Scalar"]) == (2 * n * 4, n * 4)
    assert op_bytes("aten::gelu", [x, []], [BF16, ""]) == (n * 2, n * 2)
    assert op_bytes("aten::native_layer_norm", [x, [], [384], [384], []], [F32, "ScalarList", F32, F32, "Scalar"]) == (
        (n + 2 * 384) * 4, n * 4)
    assert op_bytes("aten::_softmax", [[16, 8, 128, 128], [], []], [F32, "Scalar", "Scalar"]) == (
        16 * 8 * 128 * 128 * 4, 16 * 8 * 128 * 128 * 4)
    bn = [32, 256, 56, 56]  # per-channel weight, bias and statistics: no NumPy broadcast against NCHW
    assert op_bytes("aten::cudnn_batch_norm", [bn, [256], [256], [256], [256], [], [], []],
                    [F32] * 5 + ["Bool", "Double", "Double"]) == ((32 * 256 * 56 * 56 + 4 * 256) * 4,
                                                                 32 * 256 * 56 * 56 * 4)
    assert op_bytes("aten::mul", [[8, 1, 16], [4, 1]], [F32, F32])[1] == 8 * 4 * 16 * 4  # a broadcast output
    assert op_bytes("aten::fill_", [x, []], [F32, "Scalar"]) == (0.0, n * 4)
    assert op_bytes("aten::sum", [x, [], []], [F32, "", ""]) == (n * 4, 0.0)  # a reduction's output is not counted


def test_gathers_copies_and_concatenations():
    table, index = [50304, 768], [16, 1024]
    rows = 16 * 1024 * 768 * 4
    assert op_bytes("aten::embedding", [table, index, [], [], []], [F32, I64, "Scalar", "Scalar", "Scalar"]) == (
        16 * 1024 * 8 + rows, rows)  # the rows it looks up, not the table
    assert op_bytes("aten::index_select", [table, [], [16384]], [F32, "Scalar", I64]) == (16384 * 8 + rows, rows)
    assert op_bytes("aten::copy_", [[16384, 256], [16384, 256], []], [BF16, F32, "Scalar"]) == (
        16384 * 256 * 4, 16384 * 256 * 2)  # reads float32, writes bfloat16
    parts = [[64, 256, 384]] * 3
    assert op_bytes("aten::cat", [parts, []], ["TensorList", "Scalar"]) is None  # a list's dtype is not recorded


def test_optimizers_read_every_list_and_write_parameters_and_state():
    params = [[256, 384], [384]]
    n = 256 * 384 + 384
    lists = [params, params, params, params, [], [[], []]]  # params, grads, exp_avg, exp_avg_sq, max, steps
    read, written = op_bytes("aten::_fused_adamw_", lists + [[]] * 7, ["TensorList"] * 6 + ["Scalar"] * 7)
    # float32 lists, all but the gradients written; the two step counters are one element each
    assert read == 4 * n * 4 + 8 and written == 3 * n * 4 + 8
    read, written = op_bytes("aten::_foreach_add_", [params, params, []], ["TensorList", "TensorList", "Scalar"])
    assert (read, written) == (2 * n * 4, n * 4)
    assert op_bytes("aten::_foreach_norm", [params, [], []], ["TensorList", "Scalar", ""]) == (n * 4, 0.0)
    assert op_bytes("aten::_foreach_mul_", [[], []], ["TensorList", "float"]) is None  # list shapes not recorded


def test_generated_kernels_count_every_argument_once_and_unknown_ops_get_nothing():
    args = [[64, 256, 1536], [16384, 1536], []]
    assert op_bytes("triton_poi_fused_gelu_3", args, [BF16, BF16, "Scalar"]) == (2 * 64 * 256 * 1536 * 2, 0.0)
    assert op_bytes("vllm::rms_norm", [[8, 4096]], [BF16]) is None  # a custom op: no convention, no guess
    assert op_bytes("aten::add", [], []) is None  # no shapes recorded
    assert op_bytes("aten::mm", [[64, 32], [32, 16]], [F32, F32]) is None  # a GEMM needs its FLOPs


@pytest.mark.parametrize("name", ["aten::mm", "aten::add", "aten::_fused_adamw_", "aten::copy_"])
def test_malformed_shapes_never_raise(name):
    for dims, types in (([["a"], [1]], [F32, F32]), ([[1, 2]], []), ([[[1], "x"]], ["TensorList"])):
        op_bytes(name, dims, types, flops=4.0)
