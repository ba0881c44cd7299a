"""MoS, Mixture of Shards (Wang et al. 2024, "MoS: Unleashing Parameter Efficiency of Low-Rank Adaptation
with Mixture of Shards"): LoRA, W + (alpha/r) B A, whose low-rank matrices are assembled from small shards
drawn from pools shared by every layer, so that each layer keeps rank r at a fraction of LoRA's parameters.

The paper's four differentiation strategies, as built here:
- subset selection: each layer routes each of its rank vectors to its own subset of the pool, through a
  fixed random index matrix per layer (`route_seed`; a buffer, saved with the trained tensors);
- pair dissociation: A and B have separate pools and separate indices, so a row of A and the matching
  column of B are not drawn together;
- vector sharding: a rank vector is `shards_per_vector` (l) shards of d/l entries, concatenated, each
  routed on its own;
- shard privatisation: `private_ratio` of each layer's budget is shards only that layer uses (its first
  slots); the rest of the budget forms the public pool that all layers draw from.

Budget: each target module type (query, value, ...) gets pools with as many entries as LoRA of rank
`budget_rank` on those layers, L * budget_rank * (d_in + d_out); each layer still has rank r. With the
defaults (r=8, budget_rank=1) that is 1/8 of LoRA r=8, the paper's "about 8x" saving. B's shards start at
zero, so the model starts as the base model; A's as LoRA's A (uniform, +-1/sqrt(d_in)).
Departures: routing is a fixed random assignment (the paper's index matrices, no learned router) and a
layer may draw the same public shard twice when its r*l slots outnumber the pool. Linear layers only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

import torch
from omegaconf import MISSING
from torch import nn

from ..config import MethodConfig
from ..errors import UserError
from .base import METHODS, Method, backbone, head_names, replace_module, train_only
from .peft_methods import FALLBACK_TARGETS


@dataclass
class MoSConfig(MethodConfig):
    r: int = MISSING  # rank of each layer's B A
    lora_alpha: float = MISSING  # scale alpha / r, as LoRA
    budget_rank: int = MISSING  # the pools hold as many entries as LoRA of this rank on the same modules
    shards_per_vector: int = MISSING  # l: each rank vector is l shards, each routed on its own
    private_ratio: float = MISSING  # share of each layer's budget kept as shards private to it
    target_modules: Optional[List[str]] = MISSING  # null: peft's LoRA default for the family (BERT: query, value)
    route_seed: int = MISSING

    def problems(self) -> list[str]:
        out = [f"method.{k}={getattr(self, k)}: must be >= 1." for k in ("r", "budget_rank", "shards_per_vector")
               if getattr(self, k) < 1]
        if self.budget_rank > self.r:
            out.append(f"method.budget_rank={self.budget_rank}: must be <= method.r={self.r} (no saving over LoRA).")
        if not 0 <= self.private_ratio <= 1:
            out.append(f"method.private_ratio={self.private_ratio}: must be in [0, 1].")
        return out


class MoSLinear(nn.Module):
    """y = base(x) + scale * x A^T B^T, with A's rows and B's columns assembled from shards."""

    def __init__(self, base: nn.Linear, pools: nn.ParameterDict, key: str, private: int, knobs: MoSConfig,
                 generator: torch.Generator):
        super().__init__()
        self.base, self.key, self.r, self.scale = base, key, knobs.r, knobs.lora_alpha / knobs.r
        object.__setattr__(self, "pools", pools)  # shared by all layers: registered once, in the backbone
        l, (d_out, d_in) = knobs.shards_per_vector, base.weight.shape
        self.private_a = nn.Parameter(_init_a(private, d_in // l, d_in, base.weight))
        self.private_b = nn.Parameter(base.weight.new_zeros(private, d_out // l))
        for side in ("a", "b"):  # pair dissociation: A and B routed independently
            public = pools[f"{key}_{side}"].shape[0]
            self.register_buffer(f"route_{side}", _route(knobs.r * l, private, public, generator).to(base.weight.device))

    def matrices(self):
        a = torch.cat([self.private_a, self.pools[f"{self.key}_a"]])[self.route_a].reshape(self.r, -1)
        b = torch.cat([self.private_b, self.pools[f"{self.key}_b"]])[self.route_b].reshape(self.r, -1).T
        return a, b

    def forward(self, x):
        a, b = self.matrices()
        return self.base(x) + self.scale * (x @ a.T) @ b.T

    @property
    def weight(self):
        return self.base.weight


def _init_a(n: int, width: int, d_in: int, like: torch.Tensor) -> torch.Tensor:
    bound = 1.0 / math.sqrt(d_in)
    return torch.empty(n, width, dtype=like.dtype, device=like.device).uniform_(-bound, bound)


def _route(slots: int, private: int, public: int, generator: torch.Generator) -> torch.Tensor:
    """Slot -> shard: the first `private` slots take the layer's own shards, the others public ones (after
    them in the concatenation), a random subset, repeating a shard only when the pool is too small."""
    own = torch.arange(min(private, slots))
    rest = slots - own.numel()
    draws = [torch.randperm(public, generator=generator) for _ in range(math.ceil(rest / max(public, 1)))]
    shared = torch.cat(draws)[:rest] + private if rest else torch.zeros(0, dtype=torch.long)
    return torch.cat([own, shared]).long()


def targets(model, knobs: MoSConfig, family: str) -> dict:
    """{module name: target type} for the Linear layers to adapt."""
    names = knobs.target_modules
    if names is None:
        from .peft_lib import import_peft

        import_peft()  # (without bitsandbytes)
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as defaults

        names = defaults.get(model.config.model_type) or FALLBACK_TARGETS["default"].get(family)
    if not names:
        raise UserError(f"method 'mos' has no default target modules for model family '{family}': "
                        "set method.target_modules=[...] (names of the Linear layers to adapt).")
    found, other = {}, []
    prefix = model.base_model_prefix
    for name, module in model.named_modules():
        last = name.rsplit(".", 1)[-1]
        if last in names and (name.startswith(prefix) or backbone(model) is model):
            (found.__setitem__(name, last) if isinstance(module, nn.Linear) else other.append(type(module).__name__))
    if other and not found:
        raise UserError(f"method 'mos' adapts nn.Linear layers only; model family '{family}' has "
                        f"{sorted(set(other))} at {names} (GPT-2's Conv1D is not supported).")
    if not found:
        raise UserError(f"method 'mos': no Linear layer of model family '{family}' is named one of {names}.")
    return found


def build(model, knobs: MoSConfig, family: str):
    head = head_names(model)
    found = targets(model, knobs, family)
    l, generator = knobs.shards_per_vector, torch.Generator().manual_seed(knobs.route_seed)
    per_layer = knobs.budget_rank * l  # a layer's share of the budget, in shards of each side
    private = min(per_layer, round(knobs.private_ratio * per_layer))
    pools = nn.ParameterDict()
    for kind in sorted(set(found.values())):
        layers = [n for n, t in found.items() if t == kind]
        d_out, d_in = model.get_submodule(layers[0]).weight.shape
        if d_in % l or d_out % l:
            raise UserError(f"method.shards_per_vector={l}: must divide the sizes of '{kind}' ({d_in} -> {d_out}).")
        public = (per_layer - private) * len(layers)
        weight = model.get_submodule(layers[0]).weight
        pools[f"{kind}_a"] = nn.Parameter(_init_a(public, d_in // l, d_in, weight))
        pools[f"{kind}_b"] = nn.Parameter(weight.new_zeros(public, d_out // l))
    backbone(model).mos_pools = pools
    for name, kind in found.items():
        replace_module(model, name, MoSLinear(model.get_submodule(name), pools, kind, private, knobs, generator))
    return train_only(model, lambda n: n.split(".")[-1] in ("private_a", "private_b") or ".mos_pools." in n
                      or n in head)


def merge(model):
    for name, module in list(model.named_modules()):
        if isinstance(module, MoSLinear):
            with torch.no_grad():
                a, b = module.matrices()
                module.base.weight += module.scale * b @ a
            replace_module(model, name, module.base)
    del backbone(model).mos_pools
    return model


METHODS.register("mos", Method(build=build, knobs=MoSConfig, merge=merge))
