"""LoRA-FA (Zhang et al., 2023, "LoRA-FA: Memory-efficient Low-rank Adaptation for Large Language Models
Fine-tuning"): LoRA whose down projection A stays frozen at its random init; only the up projection B
(zero at the start, so the model starts as the base model) and the task head train.

A peftbench method is a `build(model, knobs, family) -> model` that sets `requires_grad` on exactly what
trains, and a dataclass of knobs whose values live in the method's YAML (conf/method/lora_fa.yaml).
A is drawn from a generator seeded by `init_seed`, so the knobs alone rebuild it: the run's saved trained
tensors (B and the head) are all a reload needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List

import torch
from omegaconf import MISSING
from torch import nn

from peftbench.config import MethodConfig
from peftbench.errors import UserError
from peftbench.methods import Method
from peftbench.methods.base import head_names, replace_module, train_only


@dataclass
class LoRAFAConfig(MethodConfig):
    r: int = MISSING  # rank of B A
    lora_alpha: float = MISSING  # the update is scaled by lora_alpha / r, as in LoRA
    target_modules: List[str] = MISSING  # nn.Linear modules whose name ends in one of these
    init_seed: int = MISSING  # seeds A's random init

    def problems(self) -> list[str]:
        out = [f"method.r={self.r}: must be >= 1."] if self.r < 1 else []
        if not self.target_modules:
            out.append("method.target_modules: give at least one module name, e.g. [query, value].")
        return out


class FrozenALinear(nn.Module):
    """base(x) + scale * B A x, with A frozen (a buffer) and B trained from zero."""

    def __init__(self, base: nn.Linear, r: int, scale: float, generator: torch.Generator):
        super().__init__()
        self.base, self.scale = base, scale
        a = torch.empty(r, base.in_features)
        bound = 1 / math.sqrt(base.in_features)  # LoRA's kaiming-uniform bound for A
        a.uniform_(-bound, bound, generator=generator)
        self.register_buffer("lora_A", a.to(base.weight.dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=base.weight.dtype))

    def forward(self, x):
        return self.base(x) + self.scale * (x @ self.lora_A.T) @ self.lora_B.T


def build(model, knobs: LoRAFAConfig, family: str):
    names = [n for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and n.split(".")[-1] in knobs.target_modules]
    if not names:
        raise UserError(f"method.target_modules={list(knobs.target_modules)}: no nn.Linear of this "
                        f"{family} model is named so. Give the last part of a module's name, e.g. query.")
    generator = torch.Generator().manual_seed(knobs.init_seed)
    for name in names:
        replace_module(model, name, FrozenALinear(model.get_submodule(name), knobs.r,
                                                  knobs.lora_alpha / knobs.r, generator))
    head = head_names(model)
    return train_only(model, lambda n: n.endswith("lora_B") or n in head)


METHOD = Method(build=build, knobs=LoRAFAConfig)
