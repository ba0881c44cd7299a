"""Bottleneck adapters: Houlsby et al. (2019) and Pfeiffer et al. (2021), one mechanism, two placements.

An adapter maps h -> h + up(f(down(h))) with a bottleneck of d / reduction_factor units; `up` starts
at zero, so the model starts as the base model. Houlsby: after the attention output and the
feed-forward output of every block, layer norms trained too. Pfeiffer: after the feed-forward output
only. Each adapter has 2*m*d + m + d parameters (m the bottleneck, d the hidden size).
Simplification: Pfeiffer's exact placement relative to the residual and layer norm (AdapterHub's
`original_ln_before`/`residual_before_ln`) is not modelled; the adapter sits on the sub-layer output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

from omegaconf import MISSING
from torch import nn

from ..config import MethodConfig
from .base import METHODS, Method, block_outputs, head_names, hidden_size, replace_module, train_only

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU, "tanh": nn.Tanh}


@dataclass
class AdapterConfig(MethodConfig):
    reduction_factor: float = MISSING  # bottleneck m = hidden size / reduction_factor
    non_linearity: str = MISSING
    placement: List[str] = MISSING
    train_layer_norm: bool = MISSING

    def problems(self) -> list[str]:
        out = []
        if self.reduction_factor <= 0:
            out.append(f"method.reduction_factor={self.reduction_factor}: must be > 0.")
        if self.non_linearity not in ACTIVATIONS:
            out.append(f"method.non_linearity='{self.non_linearity}': choose one of {', '.join(ACTIVATIONS)}.")
        if not self.placement:
            out.append("method.placement: give at least one of attention, ffn.")
        return out


class Bottleneck(nn.Module):
    def __init__(self, d: int, m: int, activation: str):
        super().__init__()
        self.down, self.act, self.up = nn.Linear(d, m), ACTIVATIONS[activation](), nn.Linear(m, d)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h):
        return h + self.up(self.act(self.down(h)))


class WithAdapter(nn.Module):
    """The wrapped sub-layer output, then the adapter."""

    def __init__(self, inner: nn.Module, adapter: nn.Module):
        super().__init__()
        self.inner, self.adapter = inner, adapter

    def forward(self, x, *args, **kwargs):
        return self.adapter(self.inner(x, *args, **kwargs))

    @property
    def weight(self):  # model code that reads the wrapped layer's weight (T5 checks its dtype) still can
        return self.inner.weight


def is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm) or "LayerNorm" in type(module).__name__ or "RMSNorm" in type(
        module).__name__


def norm_names(model) -> set[str]:
    return {f"{m}.{p}" for m, mod in model.named_modules() if is_norm(mod) for p, _ in mod.named_parameters(
        recurse=False)}


def insert(model, family: str, knobs, make_adapter) -> nn.Module:
    """Wrap each placement's module with an adapter; train adapters, the head and (optionally) norms."""
    head = head_names(model)
    norms = norm_names(model) if knobs.train_layer_norm else set()
    for name in block_outputs(model, family, knobs.placement, knobs.name):
        replace_module(model, name, WithAdapter(model.get_submodule(name), make_adapter()))
    keep = head | norms  # neither lives inside a wrapped module, so their names do not change
    return train_only(model, lambda n: ".adapter." in n or n in keep)


def build(model, knobs: AdapterConfig, family: str):
    d = hidden_size(model)
    m = max(1, int(d // knobs.reduction_factor))
    dtype = next(model.parameters()).dtype
    return insert(model, family, knobs, lambda: Bottleneck(d, m, knobs.non_linearity).to(dtype))


METHODS.register("adapter_houlsby", Method(build=build, knobs=AdapterConfig))
METHODS.register("adapter_pfeiffer", Method(build=build, knobs=AdapterConfig))  # its YAML: placement [ffn], no norms
