import pytest

from model.gpt import GPT, GPTConfig
from profiler.facts import Note
from profiler.mfu.modelflops import gpt_params
from profiler.trace.flops import (
    attention_flops,
    conv_flops,
    conv_output_spatial,
    counted_flops,
    matmul_flops,
)
from profiler.trace.load import ShapeArgs


def test_matmul_flops():
    assert matmul_flops("aten::mm", [[64, 32], [32, 16]]) == 2 * 64 * 32 * 16
    assert matmul_flops("aten::addmm", [[16], [64, 32], [32, 16], [], []]) == 2 * 64 * 32 * 16
    assert matmul_flops("aten::bmm", [[8, 64, 32], [8, 32, 16]]) == 2 * 8 * 64 * 32 * 16
    assert matmul_flops("aten::baddbmm", [[8, 64, 16], [8, 64, 32], [8, 32, 16]]) == 2 * 8 * 64 * 32 * 16


def test_attention_flops_forward_and_backward():
    B, H, L, E = 2, 4, 128, 32
    q = [B, H, L, E]
    fwd = attention_flops("aten::_scaled_dot_product_flash_attention_for_cpu", [q, q, q, [], []])
    assert fwd == 4 * B * H * L * L * E  # QK^T and PV, full square
    bwd = attention_flops("aten::_scaled_dot_product_flash_attention_for_cpu_backward", [q, q, q, q, q, []])
    assert bwd == 2 * fwd
    blhe = [B, L, H, E]
    assert attention_flops("aten::_flash_attention_forward", [blhe, blhe, blhe]) == fwd


def test_convolution_flops():
    inp, weight = [32, 3, 224, 224], [64, 3, 7, 7]
    out = conv_output_spatial(inp, weight, ["", "", "", "[2, 2]", "[3, 3]", "[1, 1]", "False", "[0, 0]", "1"])
    assert out == [112, 112]
    assert conv_flops(inp, weight, out) == 2 * 32 * 64 * 112 * 112 * 3 * 7 * 7


def test_forward_convolution_takes_output_size_from_its_backward_in_old_traces():
    inp, weight, grad = [32, 64, 56, 56], [128, 64, 3, 3], [32, 128, 28, 28]
    flops, warnings = counted_flops(
        ["aten::convolution", "aten::cudnn_convolution_backward", "aten::mm"],
        [ShapeArgs(dims=[inp, weight, []]), ShapeArgs(dims=[inp, grad, weight]), ShapeArgs(dims=[[4], [4, 2]])])
    fwd = 2 * 32 * 128 * 28 * 28 * 64 * 9
    assert flops[:2].tolist() == [fwd, 2 * fwd]
    assert flops[2] == 0 and warnings == [Note("no_input_shapes", {"ops": 1})]


def test_convolution_backward_counts_the_gradients_it_computed():
    """torch 2.x records output_mask: the first layer's backward computes the weight gradient only."""
    grad, inp, weight = [2, 8, 14, 14], [2, 3, 16, 16], [8, 3, 3, 3]
    scalars = ["", "", "", "[8]", "[1, 1]", "[0, 0]", "[1, 1]", "False", "[0, 0]", "1"]
    flops, _ = counted_flops(["aten::convolution_backward"] * 3,
                             [ShapeArgs(dims=[grad, inp, weight], concrete=scalars + [mask])
                              for mask in ("[False, True, True]", "[True, True, False]", "")])
    one = 2 * 2 * 8 * 14 * 14 * 3 * 9
    assert flops.tolist() == [one, 2 * one, 2 * one]  # no mask recorded: both gradients


@pytest.mark.parametrize("dims", [[], [[2, 3]], [["a"], [1]]])
def test_bad_shapes_count_zero_with_a_warning(dims):
    flops, warnings = counted_flops(["aten::mm"], [ShapeArgs(dims=dims)])
    assert flops.tolist() == [0.0] and warnings


@pytest.mark.parametrize("n_layer, n_embd, vocab_size, bias", [(2, 32, 256, True), (4, 128, 256, False),
                                                                (12, 768, 50304, True)])
def test_gpt_params_from_the_shape_match_the_model(n_layer, n_embd, vocab_size, bias):
    model = GPT(GPTConfig(n_layer=n_layer, n_head=4, n_embd=n_embd, vocab_size=vocab_size, block_size=64, bias=bias))
    assert gpt_params(n_layer, n_embd, vocab_size, bias) == model.get_num_params()
    if n_layer == 12:
        assert model.get_num_params() == 123_689_472  # GPT-2 small as nanoGPT prints it: 123.69M


def test_forward_convolution_takes_output_size_from_the_op_that_consumes_it():
    """torch 1.13 inference: no Concrete Inputs and no backward; the next op's input is [N, C_out, H, W]
    (for the second convolution the next op's input is not its output)."""
    inp, weight = [8, 3, 224, 224], [64, 3, 7, 7]
    flops, warnings = counted_flops(["aten::convolution", "aten::convolution"],
                                    [ShapeArgs(dims=[inp, weight, []]), ShapeArgs(dims=[inp, weight, []])],
                                    lambda pending: [[[8, 64, 112, 112], [8, 3, 224, 224]][i] for i in pending])
    assert flops[0] == 2 * 8 * 64 * 112 * 112 * 3 * 49 and flops[1] == 0
    assert warnings == [Note("convolution_output_unknown", {"ops": 1})]


def test_scaled_and_grouped_gemms_count_like_matmuls():
    flops, warnings = counted_flops(
        ["aten::_scaled_mm", "aten::_grouped_mm", "aten::_grouped_mm", "aten::_scaled_grouped_mm"],
        [ShapeArgs(dims=[[128, 256], [256, 512], [], []]),  # fp8 GEMM with its two scales
         ShapeArgs(dims=[[1000, 64], [8, 64, 32], [8]]),  # MoE: 1000 routed tokens over 8 experts
         ShapeArgs(dims=[[8, 10, 64], [8, 64, 32]]),  # 8 batched products
         ShapeArgs(dims=[[100, 64], [64, 48], [], [], [4]])])  # offsets split the columns
    assert flops.tolist() == [2 * 128 * 256 * 512, 2 * 1000 * 64 * 32, 2 * 8 * 10 * 64 * 32, 2 * 100 * 64 * 48]
    assert warnings == []
