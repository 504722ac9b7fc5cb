"""The model as it runs: its description for F_model (mfu/modelflops.py) read from the live module tree, and what
the first step's forward passes show (the sequence length trained on, the tokens, their FLOPs where no
description fits).

N is counted from the parameters themselves, so any architecture works: every parameter but those only an
nn.Embedding holds (input and position embeddings; a table tied to an output projection is a matmul and stays),
and a routed expert's at top_k / n_experts. The experts are found in the tree, by a module named `experts` (a
ModuleList, or one module holding the experts' stacked weights) whose block or router states its top-k;
the config's names (Mixtral's num_local_experts, Qwen's num_experts, DeepSeek's n_routed_experts, with
num_experts_per_tok) stand in where the modules do not say.
"""

import math
from typing import Any

import torch

from profiler.mfu.modelflops import (
    EXPERTS_KEYS,
    TOP_K_KEYS,
    ModelDescription,
    attention_dims,
    config_contexts,
    nanogpt,
    pick,
)

TOP_K_ATTRS = ("top_k", "num_experts_per_tok", "topk", "n_activated_experts", "moe_top_k", "num_selected_experts")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DistributedDataParallel and torch.compile wrappers."""
    inner: Any = model  # DDP's .module and torch.compile's ._orig_mod are typed as tensors
    while hasattr(inner, "module") or hasattr(inner, "_orig_mod"):
        inner = getattr(inner, "module", None) or inner._orig_mod
    return inner


def config_dict(model: torch.nn.Module) -> dict | None:
    """The model's config as a dict: a Hugging Face config's to_dict(), a nanoGPT GPTConfig's fields."""
    config = getattr(unwrap(model), "config", None)
    if config is None:
        return None
    if hasattr(config, "to_dict"):
        return config.to_dict()
    return dict(vars(config)) if hasattr(config, "__dict__") else None


def expert_share(name: str, module: torch.nn.Module, parent: torch.nn.Module, config: dict) -> float | None:
    """top_k / n_experts for a module of routed experts, None for any other module."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf != "experts":  # shared_experts run for every token
        return None
    weights = [p for p in module.parameters() if p.dim() == 3]
    experts = (len(module) if isinstance(module, torch.nn.ModuleList) else getattr(module, "num_experts", None)
               or (weights[0].shape[0] if weights else None) or pick(config, *EXPERTS_KEYS))
    near = [parent, *parent.children()]  # the MoE block, its router
    top_k = next((getattr(m, a) for m in near for a in TOP_K_ATTRS if isinstance(getattr(m, a, None), int)),
                 None) or pick(config, *TOP_K_KEYS)
    return min(top_k / experts, 1.0) if experts and top_k else None


def active_params(model: torch.nn.Module, config: dict) -> float:
    """N: each parameter once, routed experts at top_k / n_experts, none that only an nn.Embedding holds."""
    model = unwrap(model)
    modules = dict(model.named_modules())
    share: dict[int, float] = {}
    for name, module in modules.items():
        parent = modules.get(name.rsplit(".", 1)[0] if "." in name else "", model)
        found = expert_share(name, module, parent, config) if name else None
        if found is not None:
            share.update((id(p), found) for p in module.parameters())
    multiplies = {id(p) for m in model.modules() if not isinstance(m, torch.nn.Embedding)
                  for p in m.parameters(recurse=False)}
    return float(sum(p.numel() * share.get(id(p), 1.0) for p in model.parameters() if id(p) in multiplies))


def layered_config(model: torch.nn.Module) -> dict | None:
    """The model's config where it states its layers, heads and width (a nanoGPT GPTConfig, a Hugging Face
    config), else None: then no description fits, and the first step's forward FLOPs are counted instead."""
    config = config_dict(model)
    if not config or not pick(config, "num_hidden_layers", "n_layer", "num_layers") \
            or not pick(config, "num_attention_heads", "n_head", "num_heads") \
            or not pick(config, "hidden_size", "n_embd", "d_model"):
        return None
    return config


def describe(model: torch.nn.Module, sequence_length: int) -> ModelDescription | None:
    """The model's description at the sequence length it trains on, where its config states its layers and
    heads; None otherwise."""
    config = layered_config(model)
    if config is None:
        return None
    inner = unwrap(model)
    count = getattr(inner, "get_num_params", None)
    if callable(count):  # nanoGPT's GPT: its own count, as estimate_mfu
        return nanogpt(config["n_layer"], config["n_head"], config["n_embd"], sequence_length, count(),
                       source="the model's GPTConfig and get_num_params()")
    heads, head_dim = attention_dims(config)
    return ModelDescription(params=active_params(inner, config), n_head=heads, head_dim=head_dim,
                            contexts=config_contexts(config, sequence_length),
                            source="the model's config and parameters")


def sharded_degree(model: torch.nn.Module) -> int:
    """How many ranks share each token's work (tensor and context parallel), from the device mesh of the model's
    DTensor parameters: its dims named tp / cp, or a mesh without names where no FSDP2 module holds the parameters
    (FSDP shards parameters but each rank runs whole tokens). 1 where nothing is sharded."""
    try:
        from torch.distributed.fsdp import FSDPModule
        from torch.distributed.tensor import DTensor
    except ImportError:
        return 1
    mesh = next((p.device_mesh for p in model.parameters() if isinstance(p, DTensor)), None)
    if mesh is None:
        return 1
    names = mesh.mesh_dim_names
    if names:
        return int(math.prod(mesh.size(i) for i, name in enumerate(names) if name in ("tp", "cp")))
    return 1 if any(isinstance(m, FSDPModule) for m in model.modules()) else int(mesh.size())


class FirstStep:
    """Watches the model's forward passes until the first step ends: the sequence length of the first (the
    second dimension of its first tensor input, input_ids or the like), the tokens of all (batch × sequence,
    every micro-batch), and, where asked, their FLOPs counted with FlopCounterMode.

    Every module of the model is watched, since a training loop may call a part of it (a LightningModule's
    training_step calls its network, not its own forward): the forwards are those of the first module called
    from outside the model (the root), each time it is. A checkpointed layer re-run in the backward is called
    from outside too, but is not the root, and adds nothing."""

    def __init__(self, model: torch.nn.Module, count_flops: bool):
        self.sequence_length: int | None = None
        self.tokens, self.forwards, self.forward_flops = 0, 0, 0.0
        self.counter: Any = None  # a FlopCounterMode while a forward runs
        self.count_flops = count_flops
        self.root: torch.nn.Module | None = None
        self.depth = 0  # modules of the model being run, one inside the other
        self.hooks = [hook for m in model.modules() for hook in (
            m.register_forward_pre_hook(self.before, with_kwargs=True),
            m.register_forward_hook(self.after, always_call=True))]

    def before(self, module, args, kwargs):
        self.depth += 1
        if self.depth > 1 or (self.root is not None and module is not self.root):
            return
        self.root = module
        first = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        if first is not None and first.dim() >= 2:
            self.sequence_length = self.sequence_length or int(first.shape[1])
            self.tokens += int(first.shape[0] * first.shape[1])
        self.forwards += 1
        if self.count_flops:
            from torch.utils.flop_counter import FlopCounterMode

            self.counter = FlopCounterMode(display=False)
            self.counter.__enter__()

    def after(self, module, args, output):
        self.depth -= 1
        if self.depth == 0 and module is self.root and self.counter is not None:
            self.counter.__exit__(None, None, None)
            self.forward_flops += float(self.counter.get_total_flops())
            self.counter = None

    def close(self):
        for hook in self.hooks:
            hook.remove()
        self.hooks = []
        if self.counter is not None:
            self.counter.__exit__(None, None, None)
            self.counter = None
