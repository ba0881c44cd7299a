"""SSF (Lian et al., 2022): scale and shift the features after each linear layer and layer norm of
the backbone, y = gamma * x + beta, with gamma = 1 and beta = 0 at the start. After training the
scale and shift fold into the preceding layer (`merge`), so inference costs nothing extra."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
from omegaconf import MISSING
from torch import nn

from ..config import MethodConfig
from .base import METHODS, Method, backbone, head_names, replace_module, train_only
from .adapter import is_norm

KINDS = ("linear", "layernorm")


@dataclass
class SSFConfig(MethodConfig):
    targets: List[str] = MISSING

    def problems(self) -> list[str]:
        bad = [t for t in self.targets if t not in KINDS]
        return [f"method.targets: unknown {bad}; choose from {list(KINDS)}."] if bad or not self.targets else []


def _width(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.out_features
    if type(module).__name__ == "Conv1D":  # GPT-2's transposed linear
        return module.weight.shape[1]
    return module.weight.shape[0]  # norms


class ScaleShift(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        width, ref = _width(inner), inner.weight
        self.inner = inner
        self.scale = nn.Parameter(torch.ones(width, dtype=ref.dtype, device=ref.device))
        self.shift = nn.Parameter(torch.zeros(width, dtype=ref.dtype, device=ref.device))

    def forward(self, x, *args, **kwargs):
        return self.inner(x, *args, **kwargs) * self.scale + self.shift

    @property
    def weight(self):  # model code that reads the wrapped layer's weight (T5 checks its dtype) still can
        return self.inner.weight

    @torch.no_grad()
    def merged(self) -> nn.Module:
        """The inner layer with the scale and shift folded in: y = s * (W x + b) + t."""
        inner, s, t = self.inner, self.scale, self.shift
        if type(inner).__name__ == "Conv1D":
            inner.weight.mul_(s[None, :])
        elif inner.weight.dim() == 2:
            inner.weight.mul_(s[:, None])
        else:
            inner.weight.mul_(s)
        if getattr(inner, "bias", None) is not None:
            inner.bias.mul_(s).add_(t)
        elif isinstance(inner, nn.Linear):
            inner.bias = nn.Parameter(t.clone(), requires_grad=False)
        else:  # e.g. T5's bias-free RMS norm: no place to put the shift
            raise NotImplementedError(f"SSF cannot merge a shift into {type(inner).__name__} (it has no bias)")
        return inner


def _wanted(module: nn.Module, targets) -> bool:
    linear = isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"
    return ("linear" in targets and linear) or ("layernorm" in targets and is_norm(module))


def build(model, knobs: SSFConfig, family: str):
    head = head_names(model)
    prefix = model.base_model_prefix + "." if backbone(model) is not model else ""  # T5ForConditionalGeneration
    lm_head = model.get_output_embeddings()  # a language model's output layer is not scaled
    names = [prefix + n for n, m in backbone(model).named_modules()
             if n and m is not lm_head and _wanted(m, knobs.targets)]
    for name in names:
        replace_module(model, name, ScaleShift(model.get_submodule(name)))
    return train_only(model, lambda n: n.endswith((".scale", ".shift")) or n in head)


def merge(model):
    for name, module in list(model.named_modules()):
        if isinstance(module, ScaleShift):
            replace_module(model, name, module.merged())
    return model


METHODS.register("ssf", Method(build=build, knobs=SSFConfig, merge=merge))
