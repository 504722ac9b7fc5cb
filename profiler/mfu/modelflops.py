"""F_model, the model FLOPs per step: one formula over one typed description of the model.

Per token, 6N for the weight matmuls (forward 2N, backward 4N) plus 6 · H · (Q_k + Q_v) · Σ_l T_l for attention's
scores and values, which is nanoGPT's 12·L·H·Q·T where the query-key and value head sizes are both Q and every
layer attends over T (PaLM appendix B; nanoGPT's estimate_mfu):
- N is the parameters that multiply activations: all of them but the input embedding tables and position
  embeddings (a lookup, not a matmul). A tied lm_head stays in, since it is a matmul: nanoGPT's get_num_params.
  A routed expert counts at top_k / n_experts (each token runs k of them); a shared expert in full.
- T_l is the context each query attends to in layer l: the sequence length trained on (never the config's
  max_position_embeddings, a cap on the length), or the layer's sliding window where shorter. The full T×T
  product is counted, not its causal half, as nanoGPT does.

Where the description comes from (a nanoGPT shape, a Hugging Face config, the live module tree) is the caller's;
scripts/profile_run.py, capture/api.py and mfu/inputs.py all compute F_model here.
"""

from dataclasses import dataclass

NON_GATED_FAMILIES = ("gpt2", "gpt_neox", "gptj", "gpt_bigcode", "opt", "bloom", "falcon", "phi", "bert", "roberta",
                      "codegen", "mpt", "starcoder2")  # their MLP is up, activation, down: two matrices, not three
EXPERTS_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")  # Mixtral, Qwen, DeepSeek
TOP_K_KEYS = ("num_experts_per_tok", "moe_topk", "top_k", "num_selected_experts", "n_activated_experts")


@dataclass(frozen=True, kw_only=True)
class ModelDescription:
    """What the analytic FLOPs need, from whatever describes the model; `source` says what that was."""

    params: float  # N: parameters that multiply activations, routed experts at top_k / n_experts
    n_head: int  # query heads
    head_dim: float  # per query head: the mean of the query-key and the value head sizes (both Q in most models)
    contexts: tuple[int, ...]  # per attention layer: the tokens a query attends to
    source: str

    @property
    def n_layer(self) -> int:
        return len(self.contexts)

    def flops_per_token(self) -> float:
        return 6 * self.params + 12 * self.n_head * self.head_dim * sum(self.contexts)

    def flops_per_step(self, tokens: int) -> float:
        return self.flops_per_token() * tokens

    def formula(self) -> str:
        """How the figure was formed, in the report's words."""
        spans = sorted(set(self.contexts))
        t = f"T = {spans[0]:,}" if len(spans) == 1 else "T = " + "/".join(f"{s:,}" for s in spans) + " by layer"
        return (f"{self.source}: 6N + 12·L·H·Q·T per token, N = {self.params:,.0f} active non-embedding parameters, "
                f"L = {self.n_layer}, H = {self.n_head}, Q = {self.head_dim:g}, {t}")


def layer_contexts(n_layer: int, sequence_length: int, window: int | None = None,
                   sliding: list[bool] | None = None) -> tuple[int, ...]:
    """Each layer's context: the sequence length, or the sliding window in the layers that slide (all of them
    where `sliding` is not given)."""
    slides = sliding if sliding is not None and len(sliding) == n_layer else [True] * n_layer
    short = min(sequence_length, window) if window else sequence_length
    return tuple(short if s else sequence_length for s in slides)


def gpt_params(n_layer: int, n_embd: int, vocab_size: int, bias: bool = True) -> int:
    """N of a nanoGPT GPT from its shape, as its get_num_params() counts it (no position embeddings): per
    block 12·n² weights, two LayerNorms and, with bias, 11·n biases; the tied token embedding; the final
    LayerNorm. For a foreign trace of a GPT whose run wrote no metadata."""
    block = 12 * n_embd**2 + 2 * n_embd + (11 * n_embd if bias else 0)
    return n_layer * block + vocab_size * n_embd + n_embd * (2 if bias else 1)


def nanogpt(n_layer: int, n_head: int, n_embd: int, sequence_length: int, n_params: int,
            source: str = "nanoGPT's GPTConfig") -> ModelDescription:
    """nanoGPT's GPT: N from get_num_params (or gpt_params), every layer attending over the sequence."""
    return ModelDescription(params=n_params, n_head=n_head, head_dim=n_embd // n_head,
                            contexts=(sequence_length,) * n_layer, source=source)


def pick(config: dict, *keys, default=None):
    """The first of `keys` that the config sets to a number."""
    return next((config[k] for k in keys if isinstance(config.get(k), (int, float))
                 and not isinstance(config.get(k), bool)), default)


def attention_dims(config: dict) -> tuple[int, float]:
    """Query heads and the per-head size the attention term takes: head_dim (or width / heads); under
    multi-head latent attention (DeepSeek's MLA) the mean of the query-key size (no-RoPE + RoPE parts) and the
    value size."""
    heads = int(pick(config, "num_attention_heads", "n_head", "num_heads"))
    if pick(config, "kv_lora_rank"):
        qk = pick(config, "qk_nope_head_dim", default=0) + pick(config, "qk_rope_head_dim", default=0)
        return heads, (qk + pick(config, "v_head_dim", default=qk)) / 2
    width = int(pick(config, "hidden_size", "n_embd", "d_model"))
    return heads, float(pick(config, "head_dim", default=width // heads))


def config_contexts(config: dict, sequence_length: int) -> tuple[int, ...]:
    """Each layer's context from a Hugging Face config: its sliding window where `use_sliding_window` is not
    off, in the layers `layer_types` (or `max_window_layers`) say slide."""
    n_layer = int(pick(config, "num_hidden_layers", "n_layer", "num_layers"))
    window = pick(config, "sliding_window")
    if not window or config.get("use_sliding_window") is False:
        return layer_contexts(n_layer, sequence_length)
    types = config.get("layer_types")
    if isinstance(types, list):
        return layer_contexts(n_layer, sequence_length, int(window), [t == "sliding_attention" for t in types])
    below = pick(config, "max_window_layers")  # Qwen2: the layers from this index on use the window
    sliding = [i >= below for i in range(n_layer)] if below is not None and "use_sliding_window" in config else None
    return layer_contexts(n_layer, sequence_length, int(window), sliding)


def moe_layers(config: dict, n_layer: int) -> list[bool]:
    """Which decoder layers route to experts: all (Mixtral), all but `mlp_only_layers` every `decoder_sparse_step`
    (Qwen-MoE), from `first_k_dense_replace` every `moe_layer_freq` (DeepSeek); none without experts."""
    if not pick(config, *EXPERTS_KEYS):
        return [False] * n_layer
    dense = set(config.get("mlp_only_layers") or [])
    if "decoder_sparse_step" in config:  # Qwen-MoE
        step = int(config["decoder_sparse_step"] or 1)
        return [i not in dense and (i + 1) % step == 0 for i in range(n_layer)]
    first, every = int(pick(config, "first_k_dense_replace", default=0)), int(pick(config, "moe_layer_freq", default=1))
    return [i not in dense and i >= first and i % max(every, 1) == 0 for i in range(n_layer)]


def attention_params(config: dict, width: int) -> int:
    """One layer's attention projections: q, k, v (GQA: KV heads), o, with biases where `attention_bias` (all
    four) or `qkv_bias` (Qwen-MoE: q, k, v); under
    MLA the low-rank query and key-value projections."""
    heads, _ = attention_dims(config)
    if pick(config, "kv_lora_rank"):
        nope, rope = pick(config, "qk_nope_head_dim", default=0), pick(config, "qk_rope_head_dim", default=0)
        v, kv_rank, q_rank = pick(config, "v_head_dim", default=nope + rope), pick(config, "kv_lora_rank"), \
            pick(config, "q_lora_rank")
        q = width * q_rank + q_rank * heads * (nope + rope) if q_rank else width * heads * (nope + rope)
        return int(q + width * (kv_rank + rope) + kv_rank * heads * (nope + v) + heads * v * width)
    head = int(pick(config, "head_dim", default=width // heads))
    kv = int(pick(config, "num_key_value_heads", default=heads))
    qkv_bias = (heads + 2 * kv) * head if config.get("attention_bias") or config.get("qkv_bias") else 0
    bias = qkv_bias + (width if config.get("attention_bias") else 0)
    return 2 * width * heads * head + 2 * width * kv * head + bias


def mlp_params(config: dict, width: int, moe: bool) -> float:
    """One layer's MLP: gated (three matrices) unless the family's is not; a MoE layer's routed experts at
    top_k / n_experts, its shared experts in full, its router."""
    matrices = 2 if config.get("model_type") in NON_GATED_FAMILIES else 3
    if not moe:
        return matrices * width * pick(config, "intermediate_size", "n_inner", "ffn_dim", default=4 * width)
    experts = pick(config, *EXPERTS_KEYS)
    top_k = pick(config, *TOP_K_KEYS, default=1)
    expert = pick(config, "moe_intermediate_size", "intermediate_size")
    shared = pick(config, "shared_expert_intermediate_size", default=0) + \
        pick(config, "n_shared_experts", default=0) * expert
    gate = width if "shared_expert_intermediate_size" in config else 0  # Qwen-MoE's shared expert gate, always built
    return matrices * width * (top_k * expert + shared) + width * experts + gate


def from_hf_config(config: dict, sequence_length: int, source: str = "the model's config.json") -> ModelDescription:
    """A Hugging Face config (config.json's dict) counted by hand: embeddings out, lm_head in; attention with
    GQA or MLA; a gated or plain MLP; MoE layers at their active experts; two norms per layer and a final one."""
    width = int(pick(config, "hidden_size", "n_embd", "d_model"))
    n_layer = int(pick(config, "num_hidden_layers", "n_layer", "num_layers"))
    routed = moe_layers(config, n_layer)
    layers = sum(attention_params(config, width) + mlp_params(config, width, moe) + 2 * width for moe in routed)
    params = layers + width + int(pick(config, "vocab_size")) * width
    heads, head_dim = attention_dims(config)
    return ModelDescription(params=params, n_head=heads, head_dim=head_dim,
                            contexts=config_contexts(config, sequence_length), source=source)
