"""PST, Parameter-efficient Sparse Training (Li et al., 2022, "Parameter-Efficient Sparsity for Large
Language Models Fine-Tuning", IJCAI): fine-tune and prune at once while training only small matrices.

For each adapted weight W0 (d_out x d_in), frozen:
- the weight update is low-rank, W = W0 + beta * U V (U: d_out x r, V: r x d_in; `weight_rank`);
- the importance of each entry adds a data-free term, the magnitude |W|, and a data-driven term that the
  paper finds low-rank and structured, so it is two sets of small matrices instead of a full score matrix:
  S = |W| + alpha1 * A B + alpha2 * (R 1^T + 1 C^T)  (A: d_out x r', B: r' x d_in; `mask_rank`;
  R: one score per output row, C: one per input column);
- the layer computes with M * W, M keeping the (1 - sparsity) fraction of entries with the highest S.
  The top-k is not differentiable: its gradient passes straight through to S (as in movement pruning),
  so A, B, R and C learn from dL/dM = dL/d(M*W) * W.
- sparsity follows movement pruning's cubic schedule over `total_step` steps: `initial_sparsity` for the
  first `initial_warmup` fraction, then s_f + (s_i - s_f)(1 - progress)^3, `final_sparsity` for the last
  `final_warmup` fraction. The current sparsity is a buffer of each layer, saved with the trained tensors.

Trainable per adapted matrix: (r + r')(d_in + d_out) + d_out + d_in. U and A start N(0, 1), V and B at zero,
R and C at zero, so the model starts as the base model (sparsity 0 at step 0). `merge` writes M * W into
the weight: the model keeps its sparsity and drops U, V, A, B, R, C.

Departures from the paper: the mask is chosen per matrix (the same sparsity in every adapted matrix) and
recomputed at every forward pass; the schedule needs the run's length as `total_step` (as AdaLoRA's
does); nothing is stored sparse (the merged weight is a dense tensor with zeros).
"""

from __future__ import annotations

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


@dataclass
class PSTConfig(MethodConfig):
    weight_rank: int = MISSING  # r: rank of the weight update U V
    mask_rank: int = MISSING  # r': rank of the data-driven importance A B
    weight_beta: float = MISSING  # beta: scale of U V
    mask_alpha1: float = MISSING  # alpha1: scale of A B in the importance
    mask_alpha2: float = MISSING  # alpha2: scale of the row and column scores R, C
    initial_sparsity: float = MISSING
    final_sparsity: float = MISSING  # fraction of each adapted matrix's entries pruned at the end
    initial_warmup: float = MISSING  # fraction of total_step at initial_sparsity
    final_warmup: float = MISSING  # fraction of total_step at final_sparsity
    total_step: int = MISSING  # the run's optimizer steps (the schedule's length)
    target_modules: Optional[List[str]] = MISSING  # nn.Linear name suffixes; null: every Linear of the backbone

    def problems(self) -> list[str]:
        out = [f"method.{k}={getattr(self, k)}: must be >= 1." for k in ("weight_rank", "mask_rank", "total_step")
               if getattr(self, k) < 1]
        out += [f"method.{k}={getattr(self, k)}: must be in [0, 1)." for k in ("initial_sparsity", "final_sparsity")
                if not 0 <= getattr(self, k) < 1]
        out += [f"method.{k}={getattr(self, k)}: must be in [0, 1]." for k in ("initial_warmup", "final_warmup")
                if not 0 <= getattr(self, k) <= 1]
        if self.initial_warmup + self.final_warmup >= 1:
            out.append(f"method.initial_warmup + method.final_warmup = {self.initial_warmup + self.final_warmup}: "
                       "must be < 1 (the sparsity needs steps to rise).")
        if self.target_modules == []:
            out.append("method.target_modules: name at least one layer, or null for every Linear of the backbone.")
        return out


class TopMask(torch.autograd.Function):
    """1 for the `keep` entries with the highest score, else 0; the gradient passes straight through."""

    @staticmethod
    def forward(ctx, scores, keep: int):
        mask = torch.zeros_like(scores)
        mask.view(-1)[scores.flatten().topk(keep).indices] = 1.0
        return mask

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class PSTLinear(nn.Module):
    """y = x (M * (W0 + beta U V))^T + b, M the top (1 - sparsity) of the importance S."""

    def __init__(self, base: nn.Linear, knobs: PSTConfig):
        super().__init__()
        self.base = base
        self.beta, self.alpha1, self.alpha2 = knobs.weight_beta, knobs.mask_alpha1, knobs.mask_alpha2
        w = base.weight
        (d_out, d_in), like = w.shape, dict(dtype=w.dtype, device=w.device)
        self.weight_u = nn.Parameter(torch.randn(d_out, knobs.weight_rank, **like))
        self.weight_v = nn.Parameter(torch.zeros(knobs.weight_rank, d_in, **like))
        self.score_a = nn.Parameter(torch.randn(d_out, knobs.mask_rank, **like))
        self.score_b = nn.Parameter(torch.zeros(knobs.mask_rank, d_in, **like))
        self.score_r = nn.Parameter(torch.zeros(d_out, **like))
        self.score_c = nn.Parameter(torch.zeros(d_in, **like))
        self.register_buffer("sparsity", torch.tensor(float(knobs.initial_sparsity), device=w.device))

    def masked_weight(self) -> torch.Tensor:
        weight = self.base.weight + self.beta * self.weight_u @ self.weight_v
        keep = weight.numel() - int(weight.numel() * float(self.sparsity))  # at sparsity 0 the mask is all
        return TopMask.apply(self.scores(weight), keep) * weight  # ones, and its gradient still reaches S

    def scores(self, weight: torch.Tensor) -> torch.Tensor:
        return (weight.abs() + self.alpha1 * self.score_a @ self.score_b
                + self.alpha2 * (self.score_r[:, None] + self.score_c[None, :]))

    def forward(self, x):
        return F.linear(x, self.masked_weight(), self.base.bias)

    @property
    def weight(self):
        return self.base.weight


def sparsity_at(step: int, knobs: PSTConfig) -> float:
    """Movement pruning's cubic schedule (Zhu & Gupta), as PST uses it, after `step` optimizer steps."""
    start, end = knobs.initial_warmup * knobs.total_step, (1 - knobs.final_warmup) * knobs.total_step
    if step <= start:
        return knobs.initial_sparsity
    if step >= end:
        return knobs.final_sparsity
    remaining = 1 - (step - start) / (end - start)
    return knobs.final_sparsity + (knobs.initial_sparsity - knobs.final_sparsity) * remaining ** 3


def targets(model, knobs: PSTConfig, family: str) -> list[str]:
    names = knobs.target_modules
    found = [f"{model.base_model_prefix}.{n}" if backbone(model) is not model else n
             for n, m in backbone(model).named_modules()
             if isinstance(m, nn.Linear) and (names is None or n.split(".")[-1] in names)]
    if not found:
        raise UserError(f"method 'pst': no nn.Linear layer of model family '{family}' in the backbone"
                        + (f" is named one of {names}" if names else "") + ". Set method.target_modules=[...] "
                        "(e.g. BERT: query, key, value, dense); GPT-2's Conv1D layers are not supported.")
    return found


def build(model, knobs: PSTConfig, family: str):
    head = head_names(model)
    layers = []
    for name in targets(model, knobs, family):
        layer = PSTLinear(model.get_submodule(name), knobs)
        replace_module(model, name, layer)
        layers.append(layer)

    def after_step(step: int) -> None:  # `step` steps were done before this one
        value = sparsity_at(step + 1, knobs)
        for layer in layers:
            layer.sparsity.fill_(value)

    attach_hooks(model, after_step=after_step)
    keep = ("weight_u", "weight_v", "score_a", "score_b", "score_r", "score_c")
    return train_only(model, lambda n: n.split(".")[-1] in keep or n in head)


def merge(model):
    """Write M * (W0 + beta U V) into each weight and drop PST's matrices: the pruned model."""
    for name, module in list(model.named_modules()):
        if isinstance(module, PSTLinear):
            with torch.no_grad():
                module.base.weight.copy_(module.masked_weight())
            replace_module(model, name, module.base)
    return model


METHODS.register("pst", Method(build=build, knobs=PSTConfig, merge=merge))
