"""Your own loop under the parallelism people train with, on 2 ranks of this CPU (gloo), wrapped with three lines:

    torchrun --nproc_per_node=2 examples/parallel_loop.py OUT_DIR --parallelism=fsdp2|tp|pp|ddp

- fsdp2: a tiny Hugging Face Llama, `fully_shard` on each decoder layer and on the root;
- tp: the same Llama, DTensor's `parallelize_module` on each MLP (gate and up projections column-wise, down
  projection row-wise) over a 2-rank CPU mesh;
- pp: a stack of 4 MLP blocks cut in two stages, `torch.distributed.pipelining`, GPipe over 4 micro-batches;
- ddp: the Llama under DistributedDataParallel.

Each rank writes its trace into OUT_DIR; rank 0 writes the job's report.
"""

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import profiler  # noqa: E402

SIZES = dict(num_hidden_layers=4, hidden_size=128, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=344, vocab_size=2048, max_position_embeddings=4096, tie_word_embeddings=False)
BATCH, SEQ, STEPS, WIDTH, MICRO = 8, 128, 8, 256, 4
SETTINGS = dict(skip_first=2, wait=0, warmup=1, active=4, repeat=1, tensorboard=False)


def llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(**SIZES))


def shard(model, parallelism: str):
    """The model as the parallelism library wraps it."""
    if parallelism == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        for layer in model.model.layers:
            fully_shard(layer)
        return fully_shard(model)
    if parallelism == "tp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

        mesh = init_device_mesh("cpu", (dist.get_world_size(),))
        plan = {"gate_proj": ColwiseParallel(), "up_proj": ColwiseParallel(), "down_proj": RowwiseParallel()}
        for layer in model.model.layers:
            parallelize_module(layer.mlp, mesh, plan)
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


def train_llama(out: str, parallelism: str):
    torch.manual_seed(0)  # every rank builds the same weights
    model = shard(llama(), parallelism)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = torch.Generator().manual_seed(dist.get_rank() if parallelism != "tp" else 0)  # TP ranks see one batch
    p = profiler.start(out, model=model, settings=profiler.ProfileConfig(**SETTINGS), worker=f"rank{dist.get_rank()}",
                       report=dist.get_rank() == 0)
    for _ in range(STEPS):
        ids = torch.randint(0, SIZES["vocab_size"], (BATCH, SEQ), generator=data)
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        p.step()
    p.stop()


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up, self.down = torch.nn.Linear(WIDTH, 4 * WIDTH), torch.nn.Linear(4 * WIDTH, WIDTH)

    def forward(self, x):
        return x + self.down(torch.nn.functional.gelu(self.up(x)))


def train_pipeline(out: str):
    """Stage r holds blocks 2r and 2r+1; GPipe runs the batch as MICRO micro-batches."""
    from torch.distributed.pipelining import PipelineStage, ScheduleGPipe

    torch.manual_seed(0)
    rank, world = dist.get_rank(), dist.get_world_size()
    stage_model = torch.nn.Sequential(Block(), Block())
    stage = PipelineStage(stage_model, rank, world, torch.device("cpu"))
    # every stage gets the loss (only the last calls it): a schedule without one runs no backward, and waits
    schedule = ScheduleGPipe(stage, n_microbatches=MICRO, loss_fn=lambda y, target: (y - target).square().mean())
    optimizer = torch.optim.AdamW(stage_model.parameters(), lr=1e-3)
    data = torch.Generator().manual_seed(0)
    p = profiler.start(out, model=stage_model, settings=profiler.ProfileConfig(**SETTINGS), worker=f"rank{rank}",
                       report=rank == 0, tokens_per_step=BATCH * SEQ)
    for _ in range(STEPS):
        x = torch.randn(BATCH, SEQ, WIDTH, generator=data)
        if rank == 0:
            schedule.step(x)
        elif rank == world - 1:
            schedule.step(target=x)
        else:
            schedule.step()
        optimizer.step()
        optimizer.zero_grad()
        p.step()
    p.stop()


def main(out: str, parallelism: str):
    dist.init_process_group("gloo")
    torch.set_num_threads(1)  # two ranks on two cores
    try:
        train_pipeline(out) if parallelism == "pp" else train_llama(out, parallelism)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    chosen = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--parallelism=")), "fsdp2")
    paths = [a for a in sys.argv[1:] if not a.startswith("--")]
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    main(paths[0] if paths else f"runs/{chosen}-example", chosen)
