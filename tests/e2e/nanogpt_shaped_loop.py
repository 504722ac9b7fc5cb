"""A training script in the shape of nanoGPT's train.py, to test the API as a user wraps their own loop.

Its globals are the configuration (`--key=value` overrides them), `config` is the dict of them, batches come
from torch.randint on the global RNG, autocast is a nullcontext() on the CPU, AdamW is the for-loop
implementation (foreach=False, as nanoGPT's configure_optimizers gives on a CPU), gradients are clipped with
clip_grad_norm_, and the loop is `while True` with a `break`. `wrap` chooses how the profiler goes around it:
none, the README's `with` block, or profiler.start / p.stop(); `stop` False leaves p.stop() to the exit.
"""

import ast
import sys
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

import profiler  # noqa: E402
from model.gpt import GPT, GPTConfig  # noqa: E402
from profiler.capture.session import ProfileConfig  # noqa: E402

out_dir = "out"
wrap = "with"  # none | with | start
pass_config = True  # hand `config` to the profiler (run_config=), as nanoGPT's train.py can
call_step = True  # False: the user forgot p.step()
stop = True  # with wrap=start: call p.stop(), else leave it to the exit
batch_size = 4
block_size = 32
n_layer = 2
n_head = 2
n_embd = 32
dropout = 0.1  # draws from the global RNG in every step, as nanoGPT's configs do
learning_rate = 1e-3
max_iters = 14
grad_clip = 1.0
dtype = "float32"
compile = False
config_keys = [k for k, v in globals().items() if not k.startswith("_") and isinstance(v, (int, float, bool, str))]
for arg in sys.argv[1:]:  # nanoGPT's configurator, without exec
    key, value = arg.removeprefix("--").split("=", 1)
    globals()[key] = ast.literal_eval(value) if not isinstance(globals()[key], str) else value
config = {k: globals()[k] for k in config_keys}

torch.manual_seed(1337)
ctx = nullcontext()  # nanoGPT's autocast on a CPU
data = torch.randint(256, (20_000,), generator=torch.Generator().manual_seed(0))


def get_batch():
    ix = torch.randint(len(data) - block_size, (batch_size,))
    x = torch.stack([data[i:i + block_size] for i in ix])
    y = torch.stack([data[i + 1:i + 1 + block_size] for i in ix])
    return x, y


model = GPT(GPTConfig(block_size=block_size, vocab_size=256, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                      dropout=dropout, bias=False))
optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, foreach=False, fused=False)
tokens_per_iter = batch_size * block_size


def train(p):
    iter_num = 0
    X, Y = get_batch()
    while True:
        with ctx:
            logits, loss = model(X, Y)
        X, Y = get_batch()
        loss.backward()
        if grad_clip != 0.0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if p is not None and call_step:
            p.step()
        print(f"iter {iter_num}: loss {loss.item():.6f}")
        iter_num += 1
        if iter_num > max_iters:
            break
    return loss.item()


settings = ProfileConfig(skip_first=1, wait=1, warmup=1, active=3, repeat=1)
args = dict(model=model, tokens_per_step=tokens_per_iter, settings=settings,
            run_config=config if pass_config else None)
if wrap == "with":
    with profiler.profile(out_dir, **args) as p:
        final = train(p)
elif wrap == "start":
    p = profiler.start(out_dir, **args)
    final = train(p)
    if stop:
        p.stop()
else:
    final = train(None)
print(f"final loss {final:.6f}")
