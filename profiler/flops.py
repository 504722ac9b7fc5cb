"""FLOPs: the analytic model count (nanoGPT's estimate_mfu, PaLM appendix B)."""


def model_flops_per_token(n_params: int, n_layer: int, n_head: int, n_embd: int, block_size: int) -> int:
    """6N for the weight matmuls (forward 2N, backward 4N) plus 12·L·H·Q·T for attention scores and values.

    N is the non-embedding parameter count in nanoGPT's convention (token embeddings included, since they
    are the tied lm_head). The attention term counts the full T×T score matrix, not its causal half.
    """
    head_dim = n_embd // n_head
    return 6 * n_params + 12 * n_layer * n_head * head_dim * block_size
