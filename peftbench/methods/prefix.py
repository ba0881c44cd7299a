"""Prefix tuning for encoders (Li & Liang, 2021; P-Tuning v2, Liu et al., 2022, is the same mechanism
for NLU): n learned key and value vectors are prepended to the keys and values of every self-attention
layer, so every token can attend to them; the backbone stays frozen.

Li & Liang train the prefixes through a reparameterisation, P = MLP(P') with P' an n x d matrix and a
two-layer tanh MLP (hidden width `encoder_hidden`) that outputs all layers' keys and values at once;
after training only P is kept. Here `fold_prefix` computes P once and drops P' and the MLP: the run's
`trainable.safetensors` holds the L x 2 x n x d prefixes alone (`peftbench params` shows that stored
count beside the trained one). `reparameterize=false` trains P directly (P-Tuning v2's default).

How the prefixes get in: transformers 5 encoders no longer take `past_key_values`, but their
self-attention calls a registered attention function. Each adapted layer is pointed at
`prefix_attention`, which prepends its prefixes to the keys and values (and opens the mask for
them), then calls the model's own attention function (sdpa or eager). DeBERTa-v2 computes its
disentangled attention itself: `_DebertaPrefix` hooks into it instead. Decoders and encoder-decoders
are refused (use `prefix_tuning_peft`).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import torch
from omegaconf import MISSING
from torch import nn

from ..config import MethodConfig
from ..errors import UserError
from .base import METHODS, Method, backbone, head_names, hidden_size, train_only

IMPLEMENTATION = "peftbench_prefix"
# The self-attention modules (those that call the attention interface) per encoder family.
SELF_ATTENTION = {"bert": r"attention\.self$", "vit": r"layers?\.\d+\.attention$", "deberta-v2": r"attention\.self$"}
for _alias in ("roberta", "xlm-roberta", "electra"):
    SELF_ATTENTION[_alias] = SELF_ATTENTION["bert"]


@dataclass
class PrefixConfig(MethodConfig):
    num_virtual_tokens: int = MISSING  # n, prefix length per layer
    reparameterize: bool = MISSING  # Li & Liang's MLP during training, folded into the prefixes for storage
    encoder_hidden: int = MISSING  # the MLP's hidden width (Li & Liang: 512)

    def problems(self) -> list[str]:
        out = []
        if self.num_virtual_tokens < 1:
            out.append(f"method.num_virtual_tokens={self.num_virtual_tokens}: must be >= 1 (the prefix length).")
        if self.encoder_hidden < 1:
            out.append(f"method.encoder_hidden={self.encoder_hidden}: must be >= 1.")
        return out


class PrefixEncoder(nn.Module):
    """All layers' key and value prefixes, (L, 2, n, d): trained directly, or as MLP(P') until folded."""

    def __init__(self, layers: int, n: int, d: int, heads: int, reparameterize: bool, hidden: int, dtype):
        super().__init__()
        self.shape, self.heads = (layers, 2, n, d), heads
        if reparameterize:
            self.embedding = nn.Parameter(torch.randn(n, d, dtype=dtype))
            self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, layers * 2 * d)).to(dtype)
        else:
            self.prefix = nn.Parameter(torch.randn(*self.shape, dtype=dtype))

    @property
    def folded(self) -> bool:
        return not hasattr(self, "mlp")

    def prefixes(self) -> torch.Tensor:
        if self.folded:
            return self.prefix
        layers, _, n, d = self.shape
        return self.mlp(self.embedding).view(n, layers, 2, d).permute(1, 2, 0, 3)

    def layer(self, index: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer `index`'s keys and values as the attention function takes them: (batch, heads, n, d/heads)."""
        _, _, n, d = self.shape
        kv = self.prefixes()[index].view(2, n, self.heads, d // self.heads).transpose(1, 2)
        return kv[0].expand(batch, -1, -1, -1), kv[1].expand(batch, -1, -1, -1)

    @torch.no_grad()
    def fold(self) -> None:
        """Replace P' and the MLP by the prefixes they compute (what Li & Liang keep after training)."""
        if not self.folded:
            value = self.prefixes().detach().clone()
            del self.mlp, self.embedding
            self.prefix = nn.Parameter(value)

    def stored_numel_change(self) -> int:
        """Stored minus trained parameter count: what folding removes (the MLP and P') and adds (P)."""
        if self.folded:
            return 0
        return self.prefix_numel() - sum(p.numel() for p in self.parameters())

    def prefix_numel(self) -> int:
        layers, two, n, d = self.shape
        return layers * two * n * d

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + "prefix" in state_dict:  # a stored (folded) file: fold first, then take its values
            self.fold()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def prefix_attention(module, query, key, value, attention_mask, **kwargs):
    """Prepend the layer's prefixes to keys and values; every query may attend to them."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    k, v = module.peftbench_prefix(query.shape[0])
    key, value = torch.cat([k.to(key.dtype), key], dim=2), torch.cat([v.to(value.dtype), value], dim=2)
    if attention_mask is not None:  # bool (True = attend) or additive float (0 = attend)
        open_ = torch.ones if attention_mask.dtype == torch.bool else torch.zeros
        pad = open_(*attention_mask.shape[:-1], k.shape[2], dtype=attention_mask.dtype, device=attention_mask.device)
        attention_mask = torch.cat([pad, attention_mask], dim=-1)
    inner = ALL_ATTENTION_FUNCTIONS.get_interface(module.peftbench_attention, None)
    if inner is None:  # "eager": the model's own module-level function
        import sys

        inner = sys.modules[type(module).__module__].eager_attention_forward
    return inner(module, query, key, value, attention_mask, **kwargs)


class _DebertaPrefix:
    """DeBERTa-v2's disentangled attention is its own code: prefixes go in through its key and value
    projections (only for the layer's hidden states, not the relative-position embeddings they also
    project), the mask opens n columns, and the relative-position bias, which a prefix has no position
    for, is computed for the tokens alone and is zero on the prefix columns (as P-Tuning v2 does)."""

    def __init__(self, module, layer: "_LayerPrefix"):
        self.layer, self.hidden = layer, None
        self.bias = module.disentangled_attention_bias
        module.register_forward_pre_hook(self.before, with_kwargs=True)
        module.key_proj.register_forward_hook(lambda m, a, out: self.prepend(a[0], out, 0))
        module.value_proj.register_forward_hook(lambda m, a, out: self.prepend(a[0], out, 1))
        module.disentangled_attention_bias = self.relative_bias

    def before(self, module, args, kwargs):
        self.hidden = args[0] if args else kwargs["hidden_states"]
        mask = args[1] if len(args) > 1 else kwargs.get("attention_mask")
        if mask is None:  # DeBERTa-v2's encoder always passes one; nothing to open otherwise
            return None
        n = self.layer.encoder.shape[2]
        mask = torch.cat([torch.ones(*mask.shape[:-1], n, dtype=mask.dtype, device=mask.device), mask], dim=-1)
        if len(args) > 1:
            return (args[0], mask, *args[2:]), kwargs
        return args, {**kwargs, "attention_mask": mask}

    def prepend(self, x, out, which: int):
        if x is not self.hidden:  # the relative-position embeddings, projected by the same layer
            return out
        kv = self.layer(out.shape[0])[which]  # (batch, heads, n, d/heads) -> (batch, n, d)
        return torch.cat([kv.transpose(1, 2).reshape(out.shape[0], kv.shape[2], -1).to(out.dtype), out], dim=1)

    def relative_bias(self, query_layer, key_layer, relative_pos, rel_embeddings, scale_factor):
        n = self.layer.encoder.shape[2]
        score = self.bias(query_layer, key_layer[:, n:], relative_pos, rel_embeddings, scale_factor)
        return torch.nn.functional.pad(score, (n, 0)) if torch.is_tensor(score) else score


def _register_implementation() -> None:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface

    if IMPLEMENTATION not in ALL_ATTENTION_FUNCTIONS:
        AttentionInterface.register(IMPLEMENTATION, prefix_attention)


def self_attention_modules(model, family: str, method: str) -> list[nn.Module]:
    if family not in SELF_ATTENTION or model.config.is_encoder_decoder or getattr(model.config, "is_decoder", False):
        hint = " For causal and seq2seq LMs use method=prefix_tuning_peft." if family not in SELF_ATTENTION else ""
        raise UserError(f"method '{method}' puts prefixes into encoder self-attention; model family '{family}' is "
                        f"not supported. Supported: {', '.join(sorted(SELF_ATTENTION))}.{hint}")
    pattern = re.compile(SELF_ATTENTION[family])
    found = [m for n, m in model.named_modules() if pattern.search(n)]
    if not found or not all(hasattr(m, "config") or family == "deberta-v2" for m in found):
        raise UserError(f"method '{method}': found no self-attention modules of family '{family}' that call the "
                        "attention interface (transformers 5 layout expected).")
    return found


def add_prefixes(model, family: str, knobs) -> PrefixEncoder:
    """Attach a PrefixEncoder to the backbone and route every self-attention layer through it."""
    attention = self_attention_modules(model, family, knobs.name)
    config = model.config
    dtype = next(model.parameters()).dtype
    encoder = PrefixEncoder(len(attention), knobs.num_virtual_tokens, hidden_size(model),
                            config.num_attention_heads, knobs.reparameterize, knobs.encoder_hidden, dtype)
    backbone(model).prefix_encoder = encoder
    _register_implementation()
    for index, module in enumerate(attention):
        if family == "deberta-v2":
            _DebertaPrefix(module, _LayerPrefix(encoder, index))
            continue
        module.peftbench_attention = module.config._attn_implementation
        module.config = copy.copy(module.config)  # this layer alone calls prefix_attention
        module.config._attn_implementation = IMPLEMENTATION
        module.peftbench_prefix = _LayerPrefix(encoder, index)
    model.peftbench_fold = fold_prefix
    return encoder


class _LayerPrefix:
    """A callable, not a module (so the encoder is not registered once per layer)."""

    def __init__(self, encoder: PrefixEncoder, index: int):
        self.encoder, self.index = encoder, index

    def __call__(self, batch: int):
        return self.encoder.layer(self.index, batch)


def fold_prefix(model):
    """Fold every reparameterised prefix encoder into plain prefixes (before the trained tensors are stored)."""
    for module in model.modules():
        if isinstance(module, PrefixEncoder):
            module.fold()
    return model


def build(model, knobs: PrefixConfig, family: str):
    head = head_names(model)
    add_prefixes(model, family, knobs)
    return train_only(model, lambda n: ".prefix_encoder." in n or n in head)


METHODS.register("prefix_tuning", Method(build=build, knobs=PrefixConfig))
