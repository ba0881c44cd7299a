"""Compacter (Karimi Mahabadi, Henderson & Ruder, 2021): adapters whose projections are PHM layers.

A PHM weight is W = sum_i A_i (x) B_i (Kronecker products) with n "rules" A_i of size n x n shared by
every adapter in the model, and per-adapter B_i = s_i t_i^T of rank `phm_rank` (1 in the paper).
Placement as Houlsby (attention and feed-forward outputs); `compacterpp` puts them after the
feed-forward output only (the paper's Compacter++). The up projection starts at zero (t = 0), so the
model starts as the base model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import MISSING
from torch import nn

from .base import METHODS, Method, hidden_size
from .adapter import ACTIVATIONS, AdapterConfig, insert


@dataclass
class CompacterConfig(AdapterConfig):
    phm_dim: int = MISSING  # n: number of Kronecker summands; in, out and the bottleneck must divide by it
    phm_rank: int = MISSING  # rank of each B_i
    shared_phm_rule: bool = MISSING  # one set of A_i for the whole model (the paper's choice)

    def problems(self) -> list[str]:
        out = super().problems()
        if self.phm_dim < 1 or self.phm_rank < 1:
            out.append(f"method.phm_dim={self.phm_dim}, method.phm_rank={self.phm_rank}: both must be >= 1.")
        return out


class PHMLinear(nn.Module):
    def __init__(self, d_in: int, d_out: int, rule: nn.Parameter, rank: int, zero: bool):
        super().__init__()
        n = rule.shape[0]
        self.rule = rule  # (n, n, n), possibly shared
        self.s = nn.Parameter(torch.randn(n, d_in // n, rank) * 0.02)
        self.t = nn.Parameter(torch.zeros(n, rank, d_out // n) if zero else torch.randn(n, rank, d_out // n) * 0.02)
        self.bias = nn.Parameter(torch.zeros(d_out))

    def weight(self) -> torch.Tensor:
        blocks = self.s @ self.t  # (n, d_in/n, d_out/n): the low-rank B_i
        return sum(torch.kron(self.rule[i], blocks[i]) for i in range(self.rule.shape[0]))

    def forward(self, x):
        return x @ self.weight() + self.bias


class PHMAdapter(nn.Module):
    def __init__(self, d: int, m: int, activation: str, rules: tuple, rank: int):
        super().__init__()
        self.down = PHMLinear(d, m, rules[0], rank, zero=False)
        self.act = ACTIVATIONS[activation]()
        self.up = PHMLinear(m, d, rules[1], rank, zero=True)

    def forward(self, h):
        return h + self.up(self.act(self.down(h)))


def _rule(n: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(n, n, n) * 0.02 + torch.eye(n).expand(n, n, n) / n)


def build(model, knobs: CompacterConfig, family: str):
    from ..errors import UserError

    d, n = hidden_size(model), knobs.phm_dim
    m = int(d // knobs.reduction_factor)
    if d % n or m % n or m == 0:
        raise UserError(f"method {knobs.name}: hidden size {d} and bottleneck {m} (= {d} / reduction_factor "
                        f"{knobs.reduction_factor}) must both divide by phm_dim={n}; change either.")
    shared = (_rule(n), _rule(n))

    def make():
        rules = shared if knobs.shared_phm_rule else (_rule(n), _rule(n))
        return PHMAdapter(d, m, knobs.non_linearity, rules, knobs.phm_rank)

    return insert(model, family, knobs, make)


METHODS.register("compacter", Method(build=build, knobs=CompacterConfig))
METHODS.register("compacterpp", Method(build=build, knobs=CompacterConfig))  # its YAML: placement [ffn]
