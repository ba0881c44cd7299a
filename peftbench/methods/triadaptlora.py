"""TriAdaptLoRA (Liang, Wang & Zeng, 2025, "TriAdaptLoRA: Brain-Inspired Triangular Adaptive Low-Rank
Adaptation for Parameter-Efficient Fine-Tuning"): LoRA whose rank grows during training where it matters.

Each adapted weight gets dW = (alpha / r) * B C A, with A (r x d_in), B (d_out x r) and a square r x r
transformation C split into triangles: C = L + U, L lower- and U upper-triangular. The rank grows in blocks:
growing from rank R to R + k adds k rows to A, k columns to B, a k x (R + k) row block of L and an
(R + k) x k column block of U, so at rank r (grown from `init_rank` = k in steps of k) a matrix holds
r (d_in + d_out) + r (r + k) parameters: with k = 1, the two r (r + 1) / 2 triangles of C.

Which matrices grow: every `interval` steps after `warmup`, each matrix's importance is the change of its
normalised Frobenius norm ||C||_F / (blocks grown) since the last allocation; the budget is `reference_rank`
per matrix on average (the paper's target average rank), and the threshold lets the top n matrices grow by
one block, n = (budget left) * p (`growth=linear`) or (budget left) ** p (`growth=exponential`), with
p = (step - warmup) / (total_step - warmup) the schedule's progress, at least one matrix each time.

Initialisation: A as LoRA's A (uniform +-1/sqrt(d_in)), B zero, and C the identity on the active blocks
(ones on L's diagonal, U zero), so the model starts as the base model, B gets a gradient at once, and a new
block (its B columns zero, its U column block zero) leaves B C A as it was; only the alpha / r scale changes.

Departures from the paper: the blocks up to `max_rank` are allocated at build time and switched on as the
rank grows (so the optimizer, checkpoints and `peftbench params` see fixed tensors; the trainable count
is that of every matrix at `max_rank`, an upper bound of what the paper trains, whose budget is the active
blocks: `active_numel`); a matrix grows to `max_rank` at most and growth stops at the budget exactly; the
orthogonal regulariser on A and B of the authors' code is not applied; the importance is computed from C
alone, as in the authors' code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

import torch
from omegaconf import MISSING
from torch import nn
from torch.nn import functional as F

from ..config import MethodConfig
from ..errors import UserError
from .base import METHODS, Method, backbone, head_names, replace_module, train_only
from .hooks import attach_hooks

GROWTH = ("linear", "exponential")
PARTS = ("tri_a", "tri_b", "tri_lower", "tri_upper")


@dataclass
class TriAdaptLoRAConfig(MethodConfig):
    reference_rank: int = MISSING  # the budget: this rank per adapted matrix on average
    init_rank: int = MISSING  # every matrix starts at this rank
    rank_step: int = MISSING  # k: a matrix grows by k at a time
    max_rank: int = MISSING  # the most a matrix may grow to (its blocks are allocated at build time)
    lora_alpha: float = MISSING  # scale alpha / (current rank)
    growth: str = MISSING  # linear | exponential: how many matrices may grow at each allocation
    warmup: int = MISSING  # steps before the first allocation
    interval: int = MISSING  # steps between allocations
    total_step: int = MISSING  # the run's optimizer steps (the growth schedule's length)
    target_modules: Optional[List[str]] = MISSING  # nn.Linear name suffixes; null: LoRA's defaults for the family

    def problems(self) -> list[str]:
        keys = ("reference_rank", "init_rank", "rank_step", "max_rank", "interval", "total_step")
        out = [f"method.{k}={getattr(self, k)}: must be >= 1." for k in keys if getattr(self, k) < 1]
        if out:
            return out
        if not self.init_rank <= self.reference_rank <= self.max_rank:
            out.append(f"method.reference_rank={self.reference_rank}: must lie between method.init_rank="
                       f"{self.init_rank} and method.max_rank={self.max_rank}.")
        if (self.max_rank - self.init_rank) % self.rank_step:
            out.append(f"method.max_rank={self.max_rank}: must be method.init_rank={self.init_rank} plus a multiple "
                       f"of method.rank_step={self.rank_step}.")
        if self.growth not in GROWTH:
            out.append(f"method.growth='{self.growth}': choose one of {', '.join(GROWTH)}.")
        if not 0 <= self.warmup < self.total_step:
            out.append(f"method.warmup={self.warmup}: must be in [0, method.total_step={self.total_step}).")
        if self.target_modules == []:
            out.append("method.target_modules: name at least one layer, or null for LoRA's defaults.")
        return out


class TriAdaptLinear(nn.Module):
    """y = base(x) + (alpha / r) x A^T C^T B^T over the active blocks, C = L + U."""

    def __init__(self, base: nn.Linear, sizes: list[int], alpha: float):
        super().__init__()
        self.base, self.alpha, self.sizes = base, alpha, sizes
        self.ends = [sum(sizes[:j + 1]) for j in range(len(sizes))]  # the rank after each block
        (d_out, d_in), like = base.weight.shape, dict(dtype=base.weight.dtype, device=base.weight.device)
        bound = 1.0 / math.sqrt(d_in)
        self.tri_a = nn.ParameterList(torch.empty(s, d_in, **like).uniform_(-bound, bound) for s in sizes)
        self.tri_b = nn.ParameterList(torch.zeros(d_out, s, **like) for s in sizes)
        self.tri_lower = nn.ParameterList(  # row block j: k x R_j, the identity on its own columns
            F.pad(torch.eye(s, **like), (end - s, 0)) for s, end in zip(sizes, self.ends))
        self.tri_upper = nn.ParameterList(torch.zeros(end, s, **like) for s, end in zip(sizes, self.ends))
        self.register_buffer("blocks", torch.tensor(1, device=like["device"]))  # active blocks (saved)
        self.register_buffer("last_norm", torch.tensor(0.0, device=like["device"]))  # for the importance

    @property
    def rank(self) -> int:
        return self.ends[int(self.blocks) - 1]

    def factors(self):
        """(B, C, A) of the active blocks."""
        n, r = int(self.blocks), self.rank
        lower = torch.cat([F.pad(self.tri_lower[j], (0, r - self.ends[j])) for j in range(n)], 0)
        upper = torch.cat([F.pad(self.tri_upper[j], (0, 0, 0, r - self.ends[j])) for j in range(n)], 1)
        return torch.cat(list(self.tri_b[:n]), 1), lower + upper, torch.cat(list(self.tri_a[:n]), 0)

    def forward(self, x):
        b, c, a = self.factors()
        return self.base(x) + (self.alpha / self.rank) * ((x @ a.T) @ c.T) @ b.T

    def delta_weight(self) -> torch.Tensor:
        b, c, a = self.factors()
        return (self.alpha / self.rank) * b @ c @ a

    @torch.no_grad()
    def importance(self) -> float:
        """The change of ||C||_F / (active blocks) since the last call."""
        norm = torch.linalg.matrix_norm(self.factors()[1].float()) / int(self.blocks)
        score = float(norm - self.last_norm)
        self.last_norm.fill_(float(norm))
        return score

    def can_grow(self) -> bool:
        return int(self.blocks) < len(self.sizes)

    def grow(self) -> None:
        self.blocks += 1

    def active_numel(self) -> int:
        """Parameters of the active blocks: what the paper counts at the current rank."""
        d_out, d_in = self.base.weight.shape
        return sum(s * (d_in + d_out) + 2 * s * end for s, end in zip(self.sizes[:int(self.blocks)], self.ends))

    @property
    def weight(self):
        return self.base.weight


def allocator(layers: list[TriAdaptLinear], knobs: TriAdaptLoRAConfig):
    """The `after_step` hook: every `interval` steps after `warmup`, the most important matrices grow."""
    budget = knobs.reference_rank * len(layers)

    def after_step(step: int) -> None:
        done = step + 1
        total = sum(layer.rank for layer in layers)
        if done <= knobs.warmup or done % knobs.interval or total >= budget:
            return
        scores = [layer.importance() for layer in layers]
        progress = min(1.0, (done - knobs.warmup) / (knobs.total_step - knobs.warmup))
        left = budget - total
        n = int(left * progress) if knobs.growth == "linear" else int(math.exp(progress * math.log(left)))
        threshold = sorted(scores, reverse=True)[min(max(1, n), len(layers)) - 1]
        for score, layer in sorted(zip(scores, layers), key=lambda pair: -pair[0]):
            if score >= threshold and layer.can_grow() and total < budget:
                total += layer.sizes[int(layer.blocks)]
                layer.grow()

    return after_step


def build(model, knobs: TriAdaptLoRAConfig, family: str):
    from .svfit import default_targets

    head = head_names(model)
    names = knobs.target_modules or default_targets(family)
    prefix = f"{model.base_model_prefix}." if backbone(model) is not model else ""
    found = [prefix + n for n, m in backbone(model).named_modules()
             if isinstance(m, nn.Linear) and n.split(".")[-1] in names]
    if not found:
        raise UserError(f"method 'triadaptlora': no nn.Linear layer of model family '{family}' is named {names}. "
                        "Set method.target_modules=[...] (e.g. BERT: query, value; Llama: q_proj, v_proj; "
                        "GPT-2's Conv1D layers are not supported).")
    sizes = [knobs.init_rank] + [knobs.rank_step] * ((knobs.max_rank - knobs.init_rank) // knobs.rank_step)
    layers = []
    for name in found:
        layer = TriAdaptLinear(model.get_submodule(name), sizes, knobs.lora_alpha)
        replace_module(model, name, layer)
        layers.append(layer)
    attach_hooks(model, after_step=allocator(layers, knobs))
    return train_only(model, lambda n: any(f".{p}." in n for p in PARTS) or n in head)


def merge(model):
    for name, module in list(model.named_modules()):
        if isinstance(module, TriAdaptLinear):
            with torch.no_grad():
                module.base.weight += module.delta_weight()
            replace_module(model, name, module.base)
    return model


METHODS.register("triadaptlora", Method(build=build, knobs=TriAdaptLoRAConfig, merge=merge))
