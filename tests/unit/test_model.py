import torch
from torch.utils.flop_counter import FlopCounterMode

from model.gpt import GPT, GPTConfig
from profiler.mfu.modelflops import nanogpt


def model_flops_per_token(n_params, n_layer, n_head, n_embd, sequence_length):
    return nanogpt(n_layer, n_head, n_embd, sequence_length, n_params).flops_per_token()

SMALL = dict(n_layer=2, n_head=4, n_embd=64, block_size=32, vocab_size=96, bias=True, dropout=0.0)

# nanoGPT's model.py parameter names for a 1-layer model with bias (transformer.wte is tied to lm_head)
NANOGPT_KEYS = [
    "transformer.wte.weight", "transformer.wpe.weight",
    "transformer.h.0.ln_1.weight", "transformer.h.0.ln_1.bias",
    "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.bias",
    "transformer.h.0.attn.c_proj.weight", "transformer.h.0.attn.c_proj.bias",
    "transformer.h.0.ln_2.weight", "transformer.h.0.ln_2.bias",
    "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_fc.bias",
    "transformer.h.0.mlp.c_proj.weight", "transformer.h.0.mlp.c_proj.bias",
    "transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight",
]


def test_state_dict_has_nanogpt_names_and_round_trips(tmp_path):
    cfg = GPTConfig(**{**SMALL, "n_layer": 1})
    model = GPT(cfg)
    sd = model.state_dict()
    assert list(sd) == NANOGPT_KEYS
    assert model.lm_head.weight is model.transformer.wte.weight
    torch.save(sd, tmp_path / "ckpt.pt")
    other = GPT(GPTConfig(**{**SMALL, "n_layer": 1, "attention": "manual"}))
    other.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True))
    idx = torch.randint(0, 96, (2, 16))
    torch.testing.assert_close(model(idx, idx)[1], other(idx, idx)[1])  # sdpa and manual attention agree


def test_num_params_follows_nanogpt_convention():
    model = GPT(GPTConfig(**SMALL))
    C, V, T, L = 64, 96, 32, 2
    per_layer = (2 * C) * 2 + (C * 3 * C + 3 * C) + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C)
    total = V * C + T * C + L * per_layer + 2 * C  # wte (tied lm_head), wpe, blocks, ln_f
    assert model.get_num_params(non_embedding=False) == total
    assert model.get_num_params() == total - T * C  # only wpe is subtracted


def test_analytic_flops_against_hand_computation():
    # nanoGPT's estimate_mfu: 6N + 12·L·H·Q·T per token
    assert model_flops_per_token(1000, 2, 4, 64, 32) == 6 * 1000 + 12 * 2 * 4 * 16 * 32
    model = GPT(GPTConfig(**SMALL))
    C, T, L, H = 64, 32, 2, 4
    weights = 96 * C + L * (C * 3 * C + C * C + C * 4 * C + 4 * C * C)  # lm_head (tied) and the block matmuls
    others = L * (2 * 2 * C + 3 * C + C + 4 * C + C) + 2 * C  # norms and biases: in N, but no matmul
    per_token = model_flops_per_token(model.get_num_params(), L, H, C, T)
    assert per_token == 6 * (weights + others) + 12 * L * C * T


def test_analytic_flops_against_flop_counter():
    """flop_counter counts every matmul: 6N minus the non-matmul parameters (norms, biases), and the
    attention term once the score and value matmuls are explicit (manual attention)."""
    cfg = GPTConfig(**{**SMALL, "attention": "manual"})
    model = GPT(cfg)
    B, T = 2, cfg.block_size
    idx = torch.randint(0, cfg.vocab_size, (B, T))
    with FlopCounterMode(display=False) as counter:
        model(idx, idx)[1].backward()
    counted = counter.get_total_flops()
    analytic = model_flops_per_token(model.get_num_params(), cfg.n_layer, cfg.n_head, cfg.n_embd, T) * B * T
    non_matmul = sum(p.numel() for n, p in model.named_parameters() if p.dim() < 2)
    assert counted == analytic - 6 * non_matmul * B * T
    assert abs(counted / analytic - 1) < 0.02



def test_a_loop_that_runs_ahead_trains_exactly_as_one_that_waits(tmp_path):
    """Prefetching batches to the device and reading losses only at the end (the host running ahead) gives the
    same losses, bit for bit on the CPU, as moving each batch when used and reading each loss at once."""
    from model import data
    from model.train import IterationClock, TrainConfig, make_optimizer, train_step

    folder = data.write_bins(bytes(range(256)) * 64, tmp_path / "d")
    cfg = TrainConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=4, vocab_size=256, max_iters=4)
    losses = []
    for ahead in (False, True):
        torch.manual_seed(0)
        model = GPT(cfg.gpt_config())
        optimizer = make_optimizer(model, cfg)
        batches = iter(data.make_loader(folder / "train.bin", cfg.block_size, cfg.batch_size, cfg.max_iters))
        if ahead:
            batches = data.DevicePrefetcher(batches, "cpu", non_blocking=False)
        clock = IterationClock(cuda=False)
        pending = [train_step(model, optimizer, batches, cfg, "cpu", 1e-3) for _ in range(cfg.max_iters)]
        if not ahead:
            pending = [float(p) for p in pending]
        for _ in pending:
            clock.lap()
        losses.append([float(p) for p in pending])
        times = clock.read()
        assert len(times) == cfg.max_iters and all(t > 0 for t in times)
    assert losses[0] == losses[1]
