"""Hydra (Kim et al., 2023, "Hydra: Multi-head Low-rank Adaptation for Parameter Efficient Fine-tuning").

Two low-rank branches around a frozen linear layer y = W0 x + b0: a parallel branch that reads its input
(LoRA-like, new features) and a sequential branch that reads its output (a linear combination of the
pre-trained features): y' = y + s * (P(x) + S(y)), with P, S = up(down(.)) of rank r, biases included,
down Xavier-initialised and up zero (so the model starts as the base model). As in the authors' code,
Hydra sits on the attention output projection and the feed-forward output projection of every block.
Both branches are linear, so they fold into the layer: W' = W0 + s (Bp Ap + Bs As W0) (`merge`).
Per layer: parallel r (d_in + d_out) + r + d_out, sequential 2 r d_out + r + d_out parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
from omegaconf import MISSING
from torch import nn

from ..config import MethodConfig
from ..errors import UserError
from .base import METHODS, Method, block_outputs, head_names, replace_module, train_only


@dataclass
class HydraConfig(MethodConfig):
    r: int = MISSING  # rank of each branch
    scale: float = MISSING  # s
    dropout: float = MISSING  # on the branches' bottleneck
    placement: List[str] = MISSING

    def problems(self) -> list[str]:
        out = [f"method.r={self.r}: must be >= 1."] if self.r < 1 else []
        if not 0 <= self.dropout < 1:
            out.append(f"method.dropout={self.dropout}: must be in [0, 1).")
        return out + (["method.placement: give at least one of attention, ffn."] if not self.placement else [])


class LowRank(nn.Module):
    def __init__(self, d_in: int, r: int, d_out: int, dropout: float, like: torch.Tensor):
        super().__init__()
        self.down = nn.Linear(d_in, r, dtype=like.dtype, device=like.device)
        self.up = nn.Linear(r, d_out, dtype=like.dtype, device=like.device)
        self.dropout = nn.Dropout(dropout)
        nn.init.xavier_uniform_(self.down.weight)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x):
        return self.up(self.dropout(self.down(x)))

    def matrix(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the branch as one linear map."""
        return self.up.weight @ self.down.weight, self.up.weight @ self.down.bias + self.up.bias


class HydraLinear(nn.Module):
    def __init__(self, inner: nn.Linear, r: int, scale: float, dropout: float):
        super().__init__()
        self.inner, self.scale = inner, scale
        self.parallel = LowRank(inner.in_features, r, inner.out_features, dropout, inner.weight)
        self.sequential = LowRank(inner.out_features, r, inner.out_features, dropout, inner.weight)

    def forward(self, x):
        y = self.inner(x)
        return y + self.scale * (self.parallel(x) + self.sequential(y))

    @property
    def weight(self):
        return self.inner.weight

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """y' = (I + s Ws) (W0 x + b0) + s (Wp x + bp + bs): one linear layer."""
        (wp, bp), (ws, bs) = self.parallel.matrix(), self.sequential.matrix()
        w0, b0 = self.inner.weight, self.inner.bias
        b0 = torch.zeros_like(bp) if b0 is None else b0
        merged = nn.Linear(self.inner.in_features, self.inner.out_features, dtype=w0.dtype, device=w0.device)
        merged.weight.copy_(w0 + self.scale * (wp + ws @ w0))
        merged.bias.copy_(b0 + self.scale * (ws @ b0 + bp + bs))
        return merged.requires_grad_(False)


def build(model, knobs: HydraConfig, family: str):
    head = head_names(model)
    names = block_outputs(model, family, knobs.placement, knobs.name)
    kinds = {type(model.get_submodule(n)).__name__ for n in names}
    if kinds != {"Linear"}:
        raise UserError(f"method '{knobs.name}' adapts nn.Linear layers; model family '{family}' has {sorted(kinds)} "
                        "there (GPT-2's Conv1D is not supported).")
    for name in names:
        replace_module(model, name, HydraLinear(model.get_submodule(name), knobs.r, knobs.scale, knobs.dropout))
    return train_only(model, lambda n: ".parallel." in n or ".sequential." in n or n in head)


def merge(model):
    for name, module in list(model.named_modules()):
        if isinstance(module, HydraLinear):
            replace_module(model, name, module.merged())
    return model


METHODS.register("hydra", Method(build=build, knobs=HydraConfig, merge=merge))
