"""`model.pooling`: what a BERT-family sequence classifier feeds its classifier, the same for every method.

BERT's classifier reads the pooler (dense + tanh on [CLS]), which sits inside the backbone: a method
that freezes the backbone (every PEFT method) leaves it frozen, while full fine-tuning trains it,
and RoBERTa's classification head holds its own dense layer that every method trains. The choices:

- `default`: the model as transformers builds it (BERT: the pooler in the backbone, frozen unless the
  method trains the backbone).
- `pooler`: the pooler's dense + tanh on [CLS] (pretrained weights) moved into the task head, then
  dropout and the classifier: trained by every method, counted as head.
- `cls`: the raw [CLS] vector (position 0) into the classifier; the pooler is removed.
- `mean`: the attention-masked mean of the last hidden states into the classifier; the pooler is removed.

The pooler's place in the backbone is taken by `SequencePooling` (no parameters), which reads the
attention mask the backbone was called with (a forward pre-hook), so virtual tokens that prompt tuning
prepends (with their mask) are pooled like any token, and position 0 is then the first virtual token.
A removed pooler counts neither as trainable nor in the total.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import KINDS, POOLINGS
from ..errors import UserError

# Why model.pooling is refused on other families: what their classification head already does.
OTHER_HEADS = {
    "roberta": "RoBERTa's classification head already is dense + tanh on <s>, inside `classifier`, trained by "
               "every method",
    "deberta-v2": "DeBERTa-v2's pooler (dense + activation on [CLS]) is a top-level module beside `classifier`",
}
SUPPORTED = ("bert",)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The mean over the positions `mask` keeps (1), per row: (batch, seq, d) -> (batch, d)."""
    if mask is None:
        return hidden.mean(dim=1)
    if mask.shape[-1] != hidden.shape[1]:
        raise RuntimeError(f"model.pooling=mean: attention mask of length {mask.shape[-1]} for {hidden.shape[1]} "
                           "hidden states (a method changed the sequence without its mask).")
    weights = mask.to(torch.float32).unsqueeze(-1)  # summed in fp32 under bf16/fp16 autocast, returned as given
    return ((hidden.float() * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)).to(hidden.dtype)


class SequencePooling(nn.Module):
    """Takes the backbone pooler's place: [CLS] (position 0) or the masked mean; no parameters."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode
        self.mask = None  # the attention mask of the backbone's current call (`capture`)

    def capture(self, module, args, kwargs) -> None:
        self.mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return masked_mean(hidden_states, self.mask) if self.mode == "mean" else hidden_states[:, 0]

    def extra_repr(self) -> str:
        return f"mode={self.mode}"


class PoolerHead(nn.Module):
    """BERT's pooler (dense + tanh) as part of the task head: classifier(dropout(tanh(dense([CLS]))))."""

    def __init__(self, dense: nn.Linear, activation: nn.Module, dropout: nn.Module, out: nn.Linear):
        super().__init__()
        self.dense, self.activation, self.dropout, self.out = dense, activation, dropout, out

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.activation(self.dense(cls))))


def apply_pooling(model, pooling: str, family: str, kind: str, name: str):
    """Set `model.pooling` on a freshly loaded model (before any method): unchanged for `default`."""
    if pooling == "default":
        return model
    if pooling not in POOLINGS:
        raise UserError(f"model.pooling='{pooling}': must be one of {', '.join(POOLINGS)}.")
    if KINDS[kind].pooling == "ignored":  # a head on every token reads no pooled vector: nothing to change
        return model
    if KINDS[kind].pooling == "refused":
        raise UserError(f"model.pooling={pooling}: applies to sequence classifiers, not to task kind '{kind}'. "
                        "Leave model.pooling=default.")
    bert = getattr(model, getattr(model, "base_model_prefix", ""), None)
    pooler = getattr(bert, "pooler", None)
    if family not in SUPPORTED or not isinstance(getattr(pooler, "dense", None), nn.Linear) \
            or not isinstance(getattr(model, "classifier", None), nn.Linear):
        why = f" ({OTHER_HEADS[family]})" if family in OTHER_HEADS else ""
        raise UserError(f"model.pooling={pooling}: model '{name}' is of family '{family}'{why}; the choices "
                        f"pooler, cls and mean apply to families {', '.join(SUPPORTED)} (a BertModel with its "
                        "pooler). Use model.pooling=default on this model.")
    pool = SequencePooling("cls" if pooling == "pooler" else pooling)
    if pooling == "pooler":
        model.classifier = PoolerHead(pooler.dense, pooler.activation, model.dropout, model.classifier)
        model.dropout = nn.Identity()  # the head drops out after the pooler, as BERT's classifier does
    bert.pooler = pool
    bert.register_forward_pre_hook(pool.capture, with_kwargs=True)
    return model


class PooledHead(nn.Module):
    """A model's pooling, dropout and classifier as one module, for a method that runs the backbone itself
    (LST): head(last hidden states) -> logits."""

    def __init__(self, pool: SequencePooling, dropout: nn.Module, classifier: nn.Module):
        super().__init__()
        self.dropout, self.classifier = dropout, classifier
        self.pool = [pool]  # a list: not a submodule (it stays the backbone's, whose hook feeds it the mask)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pool[0](hidden)))


def take_head(model) -> PooledHead | None:
    """With `model.pooling` set: the model's pooling, dropout and classifier, taken out of the model (its
    `classifier` becomes Identity) to be trained by the caller. None under `default`."""
    pool = getattr(getattr(model, getattr(model, "base_model_prefix", ""), None), "pooler", None)
    if not isinstance(pool, SequencePooling):  # model.pooling=default: the model as transformers built it
        return None
    head = PooledHead(pool, model.dropout, model.classifier)
    model.classifier = nn.Identity()
    return head.requires_grad_(True)
