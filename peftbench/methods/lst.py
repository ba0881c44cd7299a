"""Ladder side-tuning (Sung, Cho & Bansal, 2022): a small side network reads the frozen backbone's
hidden states and learns the task; nothing backpropagates through the backbone, which runs under
`torch.no_grad()`, so its activations are never kept for a backward pass. That is LST's memory claim.

Side network: width d / reduction_factor; each backbone layer's output is projected down and mixed
into the side stream with a learned gate mu_i = sigmoid(alpha_i / T), then one small transformer
layer per backbone layer. The side output is projected up (starting at zero) and added to the
backbone's last hidden state; a new classifier reads the first token (with `model.pooling` set, the
model's own pooling and classifier read it instead, trained here as every method trains them). The
paper initialises the side layers from a pruned copy of the backbone; here they start random (a
simplification).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import MISSING
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from ..config import MethodConfig
from ..errors import UserError
from ..models.pooling import take_head
from .base import METHODS, Method, backbone, hidden_size, task_loss

ENCODERS = ("bert", "roberta", "xlm-roberta", "electra", "deberta-v2", "vit")  # ViT: image tokens, [CLS] first


@dataclass
class LSTConfig(MethodConfig):
    reduction_factor: int = MISSING
    gate_temperature: float = MISSING
    side_heads: int = MISSING
    dropout: float = MISSING

    def problems(self) -> list[str]:
        out = []
        if self.reduction_factor < 1:
            out.append(f"method.reduction_factor={self.reduction_factor}: must be >= 1.")
        if self.gate_temperature <= 0:
            out.append(f"method.gate_temperature={self.gate_temperature}: must be > 0.")
        return out


class LadderSideModel(nn.Module):
    def __init__(self, model, knobs: LSTConfig):
        super().__init__()
        config = model.config
        d, layers = hidden_size(model), config.num_hidden_layers
        ds = max(knobs.side_heads, d // knobs.reduction_factor // knobs.side_heads * knobs.side_heads)
        head = take_head(model)  # model.pooling set: the model's pooling and head, else a new classifier on [CLS]
        self.model = model.requires_grad_(False)  # the whole task model, frozen; its head is unused
        self.config = config
        self.temperature = knobs.gate_temperature
        self.down = nn.ModuleList(nn.Linear(d, ds) for _ in range(layers + 1))
        self.gates = nn.Parameter(torch.zeros(layers))
        self.side = nn.ModuleList(
            nn.TransformerEncoderLayer(ds, knobs.side_heads, 4 * ds, knobs.dropout, batch_first=True)
            for _ in range(layers))
        self.up = nn.Linear(ds, d)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.dropout = nn.Dropout(knobs.dropout)
        self.pooled = head is not None
        self.classifier = head if self.pooled else nn.Linear(d, config.num_labels)

    def forward(self, input_ids=None, attention_mask=None, labels=None, **inputs):
        given = {"input_ids": input_ids, "attention_mask": attention_mask, **inputs}  # ViT: pixel_values
        with torch.no_grad():  # no graph through the backbone: LST's memory saving
            hidden = backbone(self.model)(**{k: v for k, v in given.items() if v is not None},
                                          output_hidden_states=True).hidden_states
        pad = None if attention_mask is None else attention_mask == 0
        h = self.down[0](hidden[0])
        for i, layer in enumerate(self.side):
            mu = torch.sigmoid(self.gates[i] / self.temperature)
            h = layer(mu * self.down[i + 1](hidden[i + 1]) + (1 - mu) * h, src_key_padding_mask=pad)
        final = hidden[-1] + self.up(h)
        logits = self.classifier(final) if self.pooled else self.classifier(self.dropout(final[:, 0]))
        return SequenceClassifierOutput(loss=task_loss(logits, labels, self.config.num_labels), logits=logits)


def build(model, knobs: LSTConfig, family: str):
    if family not in ENCODERS:
        raise UserError(f"method lst supports encoder families {', '.join(ENCODERS)}, not '{family}'.")
    return LadderSideModel(model, knobs)


METHODS.register("lst", Method(build=build, knobs=LSTConfig))
