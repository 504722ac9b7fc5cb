"""Your own loop over a Hugging Face Llama (or a sparse MoE), wrapped with three lines: a tiny model built from its
config (random weights, no download) trains on random tokens, 8 sequences of 128 a step.

    python examples/llama_loop.py [OUT_DIR] [--moe] [--checkpointing]

F_model comes from the model itself: N from its parameters (the untied input embedding left out, each routed
expert at top_k / n_experts), the sequence length from the first forward (128, not max_position_embeddings),
the tokens per step from the first step's forwards.
"""

import sys
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2MoeConfig, Qwen2MoeForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import profiler  # noqa: E402

SIZES = dict(num_hidden_layers=4, hidden_size=128, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=344, vocab_size=2048, max_position_embeddings=4096, tie_word_embeddings=False)


def main(out_dir: str, moe: bool, checkpointing: bool):
    torch.manual_seed(0)
    if moe:  # 8 experts of 96, each token routed to 2
        model = Qwen2MoeForCausalLM(Qwen2MoeConfig(**SIZES, num_experts=8, num_experts_per_tok=2,
                                                   moe_intermediate_size=96, shared_expert_intermediate_size=0))
    else:
        model = LlamaForCausalLM(LlamaConfig(**SIZES))
    if checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    settings = profiler.ProfileConfig(skip_first=2, wait=0, warmup=1, active=4, repeat=1)
    p = profiler.start(out_dir, model=model, settings=settings)
    for _ in range(8):
        ids = torch.randint(0, SIZES["vocab_size"], (8, 128))
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        p.step()
    p.stop()


if __name__ == "__main__":
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    paths = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(paths[0] if paths else "runs/llama-example", "--moe" in flags, "--checkpointing" in flags)
