"""Visual query tuning (Tu, Mai & Chao, CVPR 2023, arXiv:2212.03220): t learnable query tokens per layer
of a frozen ViT-style encoder "summarise" that layer's tokens; a new linear head reads the final [CLS]
feature concatenated with every layer's query outputs.

The query tokens only add rows to the attention's queries Q, not to its keys K or values V: each layer's
query outputs are that layer's own computation (layer norm, attention over the layer's input tokens,
residual, layer norm, MLP, residual) on the query rows, and the encoder's features stay intact. So the
backbone runs once under `torch.no_grad()` and nothing back-propagates through it: each query's graph is
one layer deep. That is VQT's memory claim (measure it with scripts/vqt_memory.py).

Counts: L*t*d query parameters; the head (1 + L*t)*d*classes + classes, counted as the task head. The
queries start uniform in +-sqrt(6 / (3 * patch^2 + d)) as VPT's prompts (the authors' code); the backbone
stays in eval mode (no dropout), as in the authors' code. Not the base model at init: the head is new.
On the Audio Spectrogram Transformer the "[CLS] feature" is its own pooled output ([CLS] and distillation
token averaged). Departure: no feature normalisation or feature selection (the authors' options).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import MISSING
from torch import nn
from torch.nn import functional as F
from transformers.modeling_outputs import SequenceClassifierOutput

from ..config import MethodConfig
from .base import METHODS, Method, hidden_size, task_loss
from .vpt import prompt_init, vit_parts


@dataclass
class VQTConfig(MethodConfig):
    num_tokens: int = MISSING  # t, query tokens per layer (the paper: 1 to 20)
    dropout: float = MISSING  # on the query tokens

    def problems(self) -> list[str]:
        out = []
        if self.num_tokens < 1:
            out.append(f"method.num_tokens={self.num_tokens}: must be >= 1.")
        if not 0 <= self.dropout < 1:
            out.append(f"method.dropout={self.dropout}: must be in [0, 1).")
        return out


def query_block(layer, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """A pre-norm ViT layer's output for the rows `q`, attending to the tokens `x` only (keys, values)."""
    attention = layer.attention
    batch, t, _ = q.shape
    heads, head_dim = attention.num_attention_heads, attention.head_dim

    def split(states):  # (B, n, H*hd) -> (B, H, n, hd)
        return states.view(batch, states.shape[1], heads, head_dim).transpose(1, 2)

    h = layer.layernorm_before(x)
    queries = split(attention.q_proj(layer.layernorm_before(q)))
    out = F.scaled_dot_product_attention(queries, split(attention.k_proj(h)), split(attention.v_proj(h)),
                                         scale=attention.scaling)
    q = q + attention.o_proj(out.transpose(1, 2).reshape(batch, t, heads * head_dim))
    return q + layer.mlp(layer.layernorm_after(q))


class VisualQueryModel(nn.Module):
    def __init__(self, model, knobs: VQTConfig, family: str):
        super().__init__()
        body, layers, self.lead = vit_parts(model, family, knobs.name)
        d, self.t = hidden_size(model), knobs.num_tokens
        self.model = model.requires_grad_(False).eval()  # the whole task model, frozen; its head is unused
        self.config = model.config
        self.queries = nn.Parameter(torch.empty(len(layers), self.t, d))
        prompt_init(model, self.queries)
        self.dropout = nn.Dropout(knobs.dropout)
        self.classifier = nn.Linear((1 + len(layers) * self.t) * d, model.config.num_labels)

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()  # the frozen encoder never drops out (the authors' code)
        return self

    def forward(self, pixel_values=None, input_values=None, labels=None, **_):
        inputs = pixel_values if pixel_values is not None else input_values
        body = getattr(self.model, self.model.base_model_prefix)
        layers = getattr(body, "layers", None) or body.encoder.layer
        with torch.no_grad():  # the encoder's features, with no graph: VQT's memory saving
            x = body.embeddings(inputs.to(self.queries.dtype))
            inputs_per_layer = []
            for layer in layers:
                inputs_per_layer.append(x)
                x = layer(x, None)
            cls = body.layernorm(x)[:, :self.lead].mean(1)
        queries = self.dropout(self.queries)
        summaries = [query_block(layer, x_i, queries[i].expand(x_i.shape[0], -1, -1)).flatten(1)
                     for i, (layer, x_i) in enumerate(zip(layers, inputs_per_layer))]
        logits = self.classifier(torch.cat([cls, *summaries], dim=1))
        return SequenceClassifierOutput(loss=task_loss(logits, labels, self.config.num_labels), logits=logits)


def build(model, knobs: VQTConfig, family: str):
    return VisualQueryModel(model, knobs, family)


METHODS.register("vqt", Method(build=build, knobs=VQTConfig))
