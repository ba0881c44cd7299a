"""Visual prompt tuning (Jia et al., ECCV 2022, arXiv:2203.12119): learned prompt tokens in a frozen
ViT-style encoder, trained with the task head.

VPT-Shallow (`deep: false`): p prompts inserted once, after the [CLS] token of the first layer's input,
carried through every layer: [x, P, E]. VPT-Deep (`deep: true`, the paper's main variant): every layer i
gets its own p prompts, which replace the previous layer's outputs at those positions: [x_i, _, E_i] =
L_i([x_{i-1}, P_{i-1}, E_{i-1}]). Prompts get no position embedding and start uniform in +-sqrt(6 / (3 *
patch^2 + d)) (the authors' xavier-style init); dropout on the prompts as in their configs. Counts:
p*d (shallow), L*p*d (deep). The model does not start as the base model: the tokens attend to the prompts.

Applies to encoders that prepend [CLS]-style tokens to patch embeddings: ViT, and the Audio Spectrogram
Transformer (its [CLS] and distillation tokens stay first, the prompts follow them; not in the paper).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from omegaconf import MISSING
from torch import nn

from ..config import MethodConfig
from ..errors import UserError
from .base import METHODS, Method, backbone, head_names, hidden_size, train_only

# Families whose backbone is embeddings -> layers -> layernorm, with this many leading tokens ([CLS], ...).
LEADING_TOKENS = {"vit": 1, "audio-spectrogram-transformer": 2}


@dataclass
class VPTConfig(MethodConfig):
    num_tokens: int = MISSING  # p, prompts per layer (deep) or in all (shallow)
    deep: bool = MISSING  # VPT-Deep: new prompts at every layer; false: VPT-Shallow
    dropout: float = MISSING  # on the prompts

    def problems(self) -> list[str]:
        out = []
        if self.num_tokens < 1:
            out.append(f"method.num_tokens={self.num_tokens}: must be >= 1.")
        if not 0 <= self.dropout < 1:
            out.append(f"method.dropout={self.dropout}: must be in [0, 1).")
        return out


def vit_parts(model, family: str, method: str):
    """(backbone, its layers, leading tokens) of a ViT-style encoder, or a refusal naming the method."""
    if family not in LEADING_TOKENS:
        raise UserError(f"method {method} adds tokens to a ViT-style image or audio encoder (families "
                        f"{', '.join(LEADING_TOKENS)}); model family '{family}' is not one. Use a prompt method "
                        "for text models instead (prompt_tuning, p_tuning).")
    body = backbone(model)
    layers = getattr(body, "layers", None) or body.encoder.layer  # transformers 5 / 4.x
    return body, layers, LEADING_TOKENS[family]


def prompt_init(model, tokens: torch.Tensor) -> None:
    """Uniform in +-sqrt(6 / (3 * patch^2 + d)), the VPT and VQT authors' init."""
    patch = model.config.patch_size
    area = patch * patch if isinstance(patch, int) else math.prod(patch)
    bound = math.sqrt(6.0 / (3 * area + hidden_size(model)))
    nn.init.uniform_(tokens, -bound, bound)


class VisualPrompts(nn.Module):
    def __init__(self, model, layers: int, knobs: VPTConfig, lead: int):
        super().__init__()
        self.tokens = nn.Parameter(torch.empty(layers if knobs.deep else 1, knobs.num_tokens, hidden_size(model)))
        prompt_init(model, self.tokens)
        self.dropout, self.lead, self.p = nn.Dropout(knobs.dropout), lead, knobs.num_tokens

    def prompts(self, i: int, like: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.tokens[i]).to(like.dtype).expand(like.shape[0], -1, -1)

    def insert(self, module, args, out):  # forward hook on the embeddings: [x, P_0, E]
        return torch.cat([out[:, :self.lead], self.prompts(0, out), out[:, self.lead:]], dim=1)

    def replacer(self, i: int):
        def hook(module, args, kwargs):  # forward pre-hook on layer i >= 1: its prompts replace the last ones
            x = args[0] if args else kwargs["hidden_states"]
            x = torch.cat([x[:, :self.lead], self.prompts(i, x), x[:, self.lead + self.p:]], dim=1)
            return ((x, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": x})
        return hook


def build(model, knobs: VPTConfig, family: str):
    body, layers, lead = vit_parts(model, family, knobs.name)
    head = head_names(model)
    model.vpt_prompts = VisualPrompts(model, len(layers), knobs, lead).to(next(model.parameters()).dtype)
    body.embeddings.register_forward_hook(model.vpt_prompts.insert)
    if knobs.deep:
        for i, layer in enumerate(layers):
            if i > 0:
                layer.register_forward_pre_hook(model.vpt_prompts.replacer(i), with_kwargs=True)
    return train_only(model, lambda n: n.startswith("vpt_prompts.") or n in head)


METHODS.register("vpt", Method(build=build, knobs=VPTConfig))
