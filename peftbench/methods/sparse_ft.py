"""Sparse fine-tuning: choose a mask over each backbone weight matrix, then train only the masked
entries as a sparse delta, W = W0 + scatter(delta) (delta starts at zero, so the model starts as the base).

Masks (`method.mask`), each chosen per weight matrix with `density` of its entries:
- `magnitude`: the largest |W0| entries; `random`: uniformly at random (`mask_seed`).
- `pafi` (Liao et al. 2023, "PEFT without introducing new latency"): the *smallest* |W0| entries, a
  task-agnostic mask from the pretrained weights alone.
- `lift` (Liu et al. 2025, LIFT): the largest-magnitude entries of the rank-`lift_rank` SVD approximation
  of W0 (its "principal weights"), not of W0 itself.
- `lt_sft` (Ansell et al. 2022, lottery-ticket sparse fine-tuning): phase 1 is a `method=full` run;
  `lt_sft_from=<its run dir>` reads its fine-tuned weights, keeps the entries that changed most,
  |W_ft - W0|, and this run retrains only those, starting again from the original weights W0.
- `spiel` (Ansell et al. 2024, SpIEL-AG): the mask moves during training. Every `spiel_every` steps each
  matrix drops the `spiel_drop` fraction of its entries whose delta is smallest (they return to W0) and
  grows as many new ones where the gradient accumulated since the last update is largest (they start
  at zero, with fresh optimizer moments). Starts from the `magnitude` mask.

Departures: all masks are per matrix (the same density in every matrix; LT-SFT and PaFi rank entries over
the whole model), SpIEL's drop fraction is constant (the paper decays it) and accumulates gradients over the
whole interval, LIFT's mask is chosen once. SpIEL's mask updates assume one process (each process would
accumulate its own gradients). The delta is a `torch.nn.utils.parametrize` parametrization, so merging is
`remove_parametrizations`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from omegaconf import MISSING
from torch import nn
from torch.nn.utils import parametrize

from ..config import MethodConfig
from ..errors import UserError
from .base import METHODS, Method, backbone, head_names, train_only

MASKS = ("magnitude", "random", "pafi", "lift", "lt_sft", "spiel")


@dataclass
class SparseFTConfig(MethodConfig):
    density: float = MISSING  # fraction of each weight matrix that trains
    mask: str = MISSING
    mask_seed: int = MISSING  # for mask=random
    lift_rank: int = MISSING  # mask=lift: rank of the low-rank approximation whose largest entries train
    lt_sft_from: Optional[str] = MISSING  # mask=lt_sft: run dir of the method=full run (phase 1)
    spiel_every: int = MISSING  # mask=spiel: optimizer steps between drop-and-grow updates
    spiel_drop: float = MISSING  # mask=spiel: fraction of each matrix's entries dropped (and regrown) per update

    def problems(self) -> list[str]:
        out = []
        if not 0 < self.density <= 1:
            out.append(f"method.density={self.density}: must be in (0, 1].")
        if self.mask not in MASKS:
            out.append(f"method.mask='{self.mask}': choose one of {', '.join(MASKS)}.")
        if self.lift_rank < 1:
            out.append(f"method.lift_rank={self.lift_rank}: must be >= 1.")
        if self.spiel_every < 1:
            out.append(f"method.spiel_every={self.spiel_every}: must be >= 1.")
        if not 0 <= self.spiel_drop < 1:
            out.append(f"method.spiel_drop={self.spiel_drop}: must be in [0, 1).")
        if self.mask == "lt_sft" and not self.lt_sft_from:
            out.append("method.mask=lt_sft needs method.lt_sft_from=<run dir of a method=full run of the same "
                       "model> (LT-SFT's phase 1: its fine-tuned weights decide the mask).")
        return out


def mask_scores(weight: torch.Tensor, knobs: SparseFTConfig, tuned: torch.Tensor | None) -> torch.Tensor:
    """A score per entry: the mask is the `density` fraction with the highest scores."""
    w = weight.detach().float()
    if knobs.mask in ("magnitude", "spiel"):
        return w.abs()
    if knobs.mask == "pafi":
        return -w.abs()
    if knobs.mask == "lift":
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        r = min(knobs.lift_rank, s.numel())
        return ((u[:, :r] * s[:r]) @ vh[:r]).abs()
    if knobs.mask == "lt_sft":
        return (tuned.to(w) - w).abs()
    raise ValueError(knobs.mask)


class SparseDelta(nn.Module):
    def __init__(self, weight: torch.Tensor, k: int, index: torch.Tensor, accumulate: bool = False):
        super().__init__()
        self.register_buffer("index", index.sort().values.to(weight.device))
        self.delta = nn.Parameter(torch.zeros(k, dtype=weight.dtype, device=weight.device))
        # SpIEL: the gradient with respect to the whole weight, summed since the last mask update
        self.register_buffer("grad_sum", torch.zeros(weight.numel(), dtype=torch.float32, device=weight.device)
                             if accumulate else None, persistent=False)

    def forward(self, weight):
        out = weight.flatten().index_add(0, self.index, self.delta)
        if self.grad_sum is not None and out.requires_grad:
            out.register_hook(self._accumulate)
        return out.view_as(weight)

    def _accumulate(self, grad):
        self.grad_sum += grad.detach().float()

    @torch.no_grad()
    def drop_and_grow(self, fraction: float, state: dict | None) -> int:
        """SpIEL's update: the smallest deltas leave the mask, the largest accumulated gradients join it."""
        n = int(fraction * self.delta.numel())
        if n == 0:
            self.grad_sum.zero_()
            return 0
        slots = self.delta.abs().topk(n, largest=False).indices
        score = self.grad_sum.abs()
        score[self.index] = -1.0  # grow only where the mask is not
        grown = score.topk(n).indices
        self.index[slots] = grown
        self.delta[slots] = 0.0
        for moment in (state or {}).values():  # AdamW's exp_avg / exp_avg_sq of the moved slots start over
            if torch.is_tensor(moment) and moment.shape == self.delta.shape:
                moment[slots] = 0.0
        self.grad_sum.zero_()
        return n


def tuned_weights(run_dir: str) -> dict:
    """LT-SFT phase 1: the fine-tuned tensors of a `method=full` run."""
    from safetensors.torch import load_file

    path = Path(run_dir).expanduser() / "trainable.safetensors"
    if not path.is_file():
        raise UserError(f"method.lt_sft_from={run_dir}: {path} does not exist. Phase 1 is a method=full run of the "
                        "same model (with train.save_trainable=true, the default).")
    return load_file(str(path))


def build(model, knobs: SparseFTConfig, family: str):
    head = head_names(model)
    generator = torch.Generator().manual_seed(knobs.mask_seed)
    tuned = tuned_weights(knobs.lt_sft_from) if knobs.mask == "lt_sft" else {}
    names = {id(m): n for n, m in model.named_modules()}
    deltas = []
    for module in backbone(model).modules():
        if not (isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"):  # GPT-2's transposed linear
            continue
        weight = module.weight
        k = max(1, int(round(knobs.density * weight.numel())))
        if knobs.mask == "random":
            index = torch.randperm(weight.numel(), generator=generator)[:k]
        else:
            key = f"{names[id(module)]}.weight"
            if knobs.mask == "lt_sft" and key not in tuned:
                raise UserError(f"method.lt_sft_from={knobs.lt_sft_from}: has no tensor '{key}': it is not a "
                                "method=full run of this model.")
            index = mask_scores(weight, knobs, tuned.get(key)).flatten().topk(k).indices
        delta = SparseDelta(weight, k, index, accumulate=knobs.mask == "spiel")
        parametrize.register_parametrization(module, "weight", delta)
        deltas.append(delta)
    if knobs.mask == "spiel":
        attach_spiel(model, deltas, knobs)
    return train_only(model, lambda n: n.endswith(".delta") or n in head)


def attach_spiel(model, deltas: list, knobs: SparseFTConfig) -> None:
    """The loop calls `peftbench_bind_optimizer(optimizer)` once and `peftbench_after_step(step)` after
    each optimizer step (step = steps done before it)."""
    bound = {}

    def after_step(step: int) -> None:
        if (step + 1) % knobs.spiel_every:
            return
        optimizer = bound.get("optimizer")
        for delta in deltas:
            state = optimizer.state.get(delta.delta) if optimizer is not None else None
            delta.drop_and_grow(knobs.spiel_drop, state)

    model.peftbench_bind_optimizer = lambda optimizer: bound.__setitem__("optimizer", optimizer)
    model.peftbench_after_step = after_step


def merge(model):
    for module in list(model.modules()):
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


METHODS.register("sparse_ft", Method(build=build, knobs=SparseFTConfig, merge=merge))
