"""Fixed-density sparse fine-tuning: choose a mask over each backbone weight matrix once, then train
only the masked entries as a sparse delta, W = W0 + scatter(delta) (delta starts at zero).

Masks: `magnitude` (the largest |W0| entries of each matrix) or `random`. Gradient- or change-based
masks (as in LT-SFT) need data before building the model and are not offered yet. The delta is a
`torch.nn.utils.parametrize` parametrization, so merging is `remove_parametrizations`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..config import MethodConfig
from .base import METHODS, Method, backbone, head_names, train_only

MASKS = ("magnitude", "random")


@dataclass
class SparseFTConfig(MethodConfig):
    density: float = 0.01  # fraction of each weight matrix that trains
    mask: str = "magnitude"
    mask_seed: int = 0  # for mask=random

    def problems(self) -> list[str]:
        out = []
        if not 0 < self.density <= 1:
            out.append(f"method.density={self.density}: must be in (0, 1].")
        if self.mask not in MASKS:
            out.append(f"method.mask='{self.mask}': choose one of {', '.join(MASKS)}.")
        return out


class SparseDelta(nn.Module):
    def __init__(self, weight: torch.Tensor, density: float, mask: str, generator: torch.Generator):
        super().__init__()
        k = max(1, int(round(density * weight.numel())))
        if mask == "magnitude":
            index = weight.detach().abs().flatten().topk(k).indices
        else:
            index = torch.randperm(weight.numel(), generator=generator)[:k].to(weight.device)
        self.register_buffer("index", index.sort().values)
        self.delta = nn.Parameter(torch.zeros(k, dtype=weight.dtype, device=weight.device))

    def forward(self, weight):
        return weight.flatten().index_add(0, self.index, self.delta).view_as(weight)


def build(model, knobs: SparseFTConfig, family: str):
    head = head_names(model)
    generator = torch.Generator().manual_seed(knobs.mask_seed)
    for module in backbone(model).modules():
        if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D":  # GPT-2's transposed linear
            parametrize.register_parametrization(
                module, "weight", SparseDelta(module.weight, knobs.density, knobs.mask, generator))
    return train_only(model, lambda n: n.endswith(".delta") or n in head)


def merge(model):
    for module in list(model.modules()):
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


METHODS.register("sparse_ft", Method(build=build, knobs=SparseFTConfig, merge=merge))
