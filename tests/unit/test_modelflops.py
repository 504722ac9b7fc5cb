"""F_model from a model's description (profiler/mfu/modelflops.py), against hand counts written out here.

Per token 6N + 12·L·H·Q·T; N counts every parameter that multiplies activations (no input or position
embedding; lm_head in), routed experts at top_k / n_experts; T is the sequence trained on (or the window).
"""

from types import SimpleNamespace

from profiler.mfu.modelflops import from_hf_config, gpt_params, nanogpt

# the Llama: 4 layers, width 128, 4 heads of 32, 2 KV heads, SwiGLU 344, vocab 2048, untied
LLAMA = {"model_type": "llama", "num_hidden_layers": 4, "hidden_size": 128, "num_attention_heads": 4,
         "num_key_value_heads": 2, "intermediate_size": 344, "vocab_size": 2048, "max_position_embeddings": 4096,
         "tie_word_embeddings": False, "attention_bias": False}
# per layer: q 128·128, k and v 128·64 each, o 128·128; MLP 3·128·344; two RMSNorms of 128
LLAMA_LAYER = 128 * 128 + 2 * 128 * 64 + 128 * 128 + 3 * 128 * 344 + 2 * 128
LLAMA_N = 4 * LLAMA_LAYER + 128 + 2048 * 128  # the final norm, lm_head; the untied input embedding left out


def test_llama_config_counts_by_hand():
    assert LLAMA_N == 988_288
    described = from_hf_config(LLAMA, sequence_length=128)
    assert described.params == LLAMA_N
    # 6N + 12·L·H·Q·T at T = 128 (the length trained on, not max_position_embeddings' 4,096)
    per_token = 6 * 988_288 + 12 * 4 * 4 * 32 * 128
    assert described.flops_per_token() == per_token == 6_716_160
    assert described.flops_per_step(8 * 128) == 6_877_347_840  # 6.88 GFLOP/step, the hand count


def test_sparse_moe_counts_the_active_experts():
    """Qwen-MoE, 8 experts of 96, top 2, a shared expert of 192 with its gate: routed experts at 2/8."""
    config = {**LLAMA, "model_type": "qwen2_moe", "num_experts": 8, "num_experts_per_tok": 2,
              "moe_intermediate_size": 96, "shared_expert_intermediate_size": 192, "decoder_sparse_step": 1,
              "mlp_only_layers": []}
    attention = 128 * 128 + 2 * 128 * 64 + 128 * 128
    moe = 3 * 128 * (2 * 96 + 192) + 128 * 8 + 128  # two experts, the shared one, the router, the shared gate
    n = 4 * (attention + moe + 2 * 128) + 128 + 2048 * 128
    described = from_hf_config(config, sequence_length=128)
    assert described.params == n
    all_experts = from_hf_config({**config, "num_experts_per_tok": 8}, 128).params
    assert all_experts - n == 4 * 3 * 128 * 6 * 96  # what counting every expert would add


def test_mixtral_and_deepseek_name_their_experts_their_own_way():
    mixtral = {**LLAMA, "model_type": "mixtral", "num_local_experts": 8, "num_experts_per_tok": 2}
    attention = 128 * 128 + 2 * 128 * 64 + 128 * 128
    assert from_hf_config(mixtral, 128).params == 4 * (attention + 3 * 128 * 2 * 344 + 128 * 8 + 256) + 128 + 2048 * 128
    # DeepSeek: the first layer dense, then routed (top 2 of 8, 64 wide) with one shared expert; MLA attention
    deepseek = {"model_type": "deepseek_v3", "num_hidden_layers": 3, "hidden_size": 128, "num_attention_heads": 4,
                "intermediate_size": 344, "moe_intermediate_size": 64, "n_routed_experts": 8, "num_experts_per_tok": 2,
                "n_shared_experts": 1, "first_k_dense_replace": 1, "moe_layer_freq": 1, "vocab_size": 2048,
                "q_lora_rank": 48, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8,
                "v_head_dim": 16}
    mla = 128 * 48 + 48 * 4 * 24 + 128 * (32 + 8) + 32 * 4 * (16 + 16) + 4 * 16 * 128
    dense, routed = 3 * 128 * 344, 3 * 128 * (2 * 64 + 64) + 128 * 8
    described = from_hf_config(deepseek, 64)
    assert described.params == 3 * mla + dense + 2 * routed + 3 * 2 * 128 + 128 + 2048 * 128
    assert described.head_dim == (24 + 16) / 2  # query-key 16 + 8, value 16: 6·H·(24 + 16)·T per layer
    assert described.flops_per_token() - 6 * described.params == 6 * 4 * (24 + 16) * 64 * 3


def test_sliding_window_caps_the_attention_context():
    mistral = {**LLAMA, "model_type": "mistral", "sliding_window": 32}
    assert from_hf_config(mistral, 128).contexts == (32, 32, 32, 32)
    assert from_hf_config(mistral, 16).contexts == (16,) * 4  # a window longer than the sequence changes nothing
    gemma_like = {**mistral, "layer_types": ["sliding_attention", "full_attention"] * 2}
    assert from_hf_config(gemma_like, 128).contexts == (32, 128, 32, 128)
    assert from_hf_config({**mistral, "use_sliding_window": False}, 128).contexts == (128,) * 4


def test_plain_mlp_families_have_two_matrices():
    gpt2 = {"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 2, "vocab_size": 512}
    # two matrices of 64 x 256 per MLP (no biases counted from a config), q, k, v, o of 64 x 64
    assert from_hf_config(gpt2, 64).params == 2 * (4 * 64 * 64 + 2 * 64 * 256 + 2 * 64) + 64 + 512 * 64


def test_nanogpt_keeps_estimate_mfu_exactly():
    n = gpt_params(12, 768, 50304, bias=False)
    described = nanogpt(12, 12, 768, 1024, n)
    assert described.flops_per_token() == 6 * n + 12 * 12 * 12 * 64 * 1024  # nanoGPT's estimate_mfu
    assert "T = 1,024" in described.formula() and "L = 12" in described.formula()


def test_a_compiled_backward_beyond_twice_the_forward_is_recomputation():
    """torch.compile hides what its backward re-ran: the backward's FLOPs past twice the forward's count as
    recomputed there, and only there (an eager trace names its recomputation by its ops)."""
    import numpy as np

    from profiler.mfu.records import FlopAccount

    table = SimpleNamespace(flops=np.array([4.0e9]), backward_flops=np.array([2.6e9]),
                            recomputed_flops=np.array([0.0]), outside_flops=np.array([0.0]))
    compiled = FlopAccount.of(table, compiled=True)  # forward 1.4, backward 2.6: under twice, nothing re-ran
    assert (compiled.backward, compiled.recomputed) == (2.6e9, 0.0)
    table.flops, table.backward_flops = np.array([5.0e9]), np.array([4.0e9])  # forward 1.0, backward 4.0
    compiled, eager = FlopAccount.of(table, compiled=True), FlopAccount.of(table)
    assert (compiled.forward, compiled.backward, compiled.recomputed) == (1.0e9, 2.0e9, 2.0e9)
    assert (eager.backward, eager.recomputed) == (4.0e9, 0.0)
    assert compiled.stand_in().per_step == 3.0e9 == eager.stand_in().per_step
