"""LoFiT, localized fine-tuning on LLM representations (Yin et al. 2024), two stages in one run.

Stage 1 (the first `select_steps` optimizer steps): every attention head's output z (its slice of the input
of the attention output projection) is scaled, z -> (1 + A_head) * z, with A learned under an L1 penalty
`l1_lambda` * |A|_1 (added to A's gradient). Then the `top_k` heads with the largest |A_head| (L2 norm),
over all layers, are kept. Stage 2 (the rest of the run): the scalings are dropped and each selected head
learns a bias offset, z -> z + v_head; the stored method is v (top_k x head dim) and the head indices.
Both stages start as the identity (A = 0, v = 0). The stage and the selected heads are buffers, saved with
the trained tensors. Merging folds the stage-2 offsets into the projection's bias, W (z + v) + b =
W z + (b + W v) (stage 1: the scales into W's columns).

Counts: `peftbench params` counts what trains over the run, A (layers x heads x head dim) + v (top_k x head
dim); the paper's figure is v alone. Departures: the paper runs the stages as two trainings (stage 2 from
the original weights with a fresh optimizer); here stage 2 follows stage 1 in the same run, the same
optimizer (A stops receiving gradients), the learning-rate schedule continuing. A starts at 0, not randomly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import MISSING
from torch import nn

from ..config import MethodConfig
from ..errors import UserError
from .base import METHODS, Method, backbone, block_outputs, head_names, replace_module, train_only


@dataclass
class LoFiTConfig(MethodConfig):
    top_k: int = MISSING  # heads kept for stage 2 (the paper: 3-10% of the heads)
    select_steps: int = MISSING  # optimizer steps of stage 1 (head selection by learned scaling)
    l1_lambda: float = MISSING  # L1 penalty on the scalings A in stage 1

    def problems(self) -> list[str]:
        out = [f"method.{k}={getattr(self, k)}: must be >= 1." for k in ("top_k", "select_steps") if getattr(self, k) < 1]
        if self.l1_lambda < 0:
            out.append(f"method.l1_lambda={self.l1_lambda}: must be >= 0.")
        return out


class LoFiTState(nn.Module):
    """What both stages learn, for all layers at once: A (layers, heads, head dim), v (top_k, head dim)."""

    def __init__(self, layers: int, heads: int, head_dim: int, top_k: int, l1_lambda: float, like: torch.Tensor):
        super().__init__()
        self.heads_per_layer = heads
        self.scale = nn.Parameter(like.new_zeros(layers, heads, head_dim))
        self.offset = nn.Parameter(like.new_zeros(top_k, head_dim))
        self.register_buffer("selected", torch.zeros(top_k, dtype=torch.long, device=like.device))
        self.register_buffer("stage", torch.zeros((), dtype=torch.long, device=like.device))
        if l1_lambda:
            self.scale.register_hook(lambda grad: grad + l1_lambda * torch.sign(self.scale.detach()))

    @torch.no_grad()
    def select(self) -> None:
        norms = self.scale.norm(dim=-1).flatten()
        self.selected.copy_(norms.topk(self.selected.numel()).indices.sort().values)
        self.stage.fill_(1)

    def layer_offset(self, layer: int) -> torch.Tensor:
        """This layer's additive offset over its heads (zero for heads not selected); no host sync."""
        layers, heads, width = self.scale.shape
        table = self.offset.new_zeros(layers * heads, width).index_add(0, self.selected, self.offset)
        return table.view(layers, heads, width)[layer].flatten()

    def apply(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Stage 1: x * (1 + A); stage 2: x + v (the stage as a tensor, so no host sync on a GPU)."""
        second = self.stage.to(x.dtype)
        return x * (1 + (1 - second) * self.scale[layer].flatten()) + second * self.layer_offset(layer)


class LoFiTInput(nn.Module):
    """Changes the head outputs entering the attention output projection, then runs it."""

    def __init__(self, inner: nn.Module, state: LoFiTState, layer: int):
        super().__init__()
        self.inner, self.layer = inner, layer
        object.__setattr__(self, "state", state)  # registered once, in the backbone

    def forward(self, x, *args, **kwargs):
        return self.inner(self.state.apply(x, self.layer), *args, **kwargs)

    @property
    def weight(self):
        return self.inner.weight


def n_heads(config) -> int:
    for key in ("num_attention_heads", "n_head", "num_heads"):
        if getattr(config, key, None):
            return getattr(config, key)
    raise UserError(f"method 'lofit': cannot find the number of attention heads in the {type(config).__name__}.")


def in_features(module: nn.Module) -> int:
    return module.in_features if isinstance(module, nn.Linear) else module.weight.shape[0]  # Conv1D: (in, out)


def build(model, knobs: LoFiTConfig, family: str):
    head = head_names(model)
    names = [n for n in block_outputs(model, family, ["attention"], "lofit") if n.startswith(model.base_model_prefix)
             or backbone(model) is model]
    heads = n_heads(model.config)
    width = in_features(model.get_submodule(names[0]))
    if width % heads or knobs.top_k > heads * len(names):
        raise UserError(f"method 'lofit' on model family '{family}': {len(names)} attention layers x {heads} heads "
                        f"of width {width}: method.top_k={knobs.top_k} must be at most {heads * len(names)}.")
    weight = model.get_submodule(names[0]).weight
    state = LoFiTState(len(names), heads, width // heads, knobs.top_k, knobs.l1_lambda, weight)
    backbone(model).lofit = state
    for layer, name in enumerate(names):
        replace_module(model, name, LoFiTInput(model.get_submodule(name), state, layer))

    def after_step(step: int) -> None:
        if int(state.stage) == 0 and step + 1 >= knobs.select_steps:
            state.select()

    model.peftbench_after_step = after_step
    return train_only(model, lambda n: ".lofit." in n or n in head)


@torch.no_grad()
def merge(model):
    for name, module in list(model.named_modules()):
        if not isinstance(module, LoFiTInput):
            continue
        inner, state = module.inner, module.state
        weight = inner.weight if isinstance(inner, nn.Linear) else inner.weight.T  # as (out, in)
        if int(state.stage) == 0:
            weight.mul_(1 + state.scale[module.layer].flatten())  # in place: the Conv1D's transpose is a view
        else:
            if inner.bias is None:
                inner.bias = nn.Parameter(weight.new_zeros(weight.shape[0]))
            inner.bias += weight @ state.layer_offset(module.layer)
        replace_module(model, name, inner)
    del backbone(model).lofit
    model.peftbench_after_step = None
    return model


METHODS.register("lofit", Method(build=build, knobs=LoFiTConfig, merge=merge))
