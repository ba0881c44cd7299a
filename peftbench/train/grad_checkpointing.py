"""`train.gradient_checkpointing=true`: transformers' own activation checkpointing on the model a method
was applied to, so each layer's activations are recomputed in the backward pass instead of kept.

The well-known pitfall: with reentrant checkpointing (the default of older transformers and of many
recipes) a checkpointed block whose inputs do not require grad hands no gradient to the parameters inside
it, and under PEFT the embeddings are frozen, so adapters and LoRA matrices silently stop training.
Here checkpointing is non-reentrant (PyTorch's recommendation) *and* the embedding output is made to
require grad (`enable_input_require_grads`), so either way every trainable tensor gets its gradient
(tests/test_large.py checks it tensor by tensor, for LoRA, prompt tuning and the Houlsby adapter).

Prefix tuning is refused: peft hands the prefix to the model as `past_key_values`, and a model
checkpointing its layers turns the cache off (`use_cache=False`), which drops the prefix.
"""

from __future__ import annotations

from ..errors import UserError

# peft methods whose trained state reaches the model as past key values (a cache checkpointing turns off)
PAST_KEY_VALUE_TYPES = ("PREFIX_TUNING",)


def _past_key_value_method(model) -> bool:
    configs = getattr(model, "peft_config", None)
    return isinstance(configs, dict) and any(str(getattr(c, "peft_type", "")).split(".")[-1] in PAST_KEY_VALUE_TYPES
                                             for c in configs.values())


def transformers_model(model):
    """The transformers model under a peft wrapper (or the model itself); None for a model of our own
    (LST's side network wraps its backbone)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner if hasattr(inner, "supports_gradient_checkpointing") else None


def enable_gradient_checkpointing(model, method: str, reentrant: bool = False) -> None:
    """Checkpoint every layer of `model` (a built model x method) and make its inputs require grad."""
    if _past_key_value_method(model):
        raise UserError(f"train.gradient_checkpointing=true does not work with method={method}: peft passes the "
                        "prefix as past_key_values, which a checkpointing model drops (use_cache=False). Use "
                        "train.gradient_checkpointing=false, or method=prompt_tuning / p_tuning.")
    inner = transformers_model(model)
    if inner is None or not inner.supports_gradient_checkpointing:
        name = type(inner if inner is not None else model).__name__
        raise UserError(f"train.gradient_checkpointing=true: {name} (method={method}) does not support "
                        "transformers' gradient checkpointing. Use train.gradient_checkpointing=false.")
    kwargs = {"use_reentrant": reentrant}
    if hasattr(inner, "activation_checkpointing_enable"):  # transformers >= 5 (the old name is deprecated)
        inner.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    inner.enable_input_require_grads()  # the embeddings' output requires grad: frozen embeddings still pass it
    if getattr(inner.config, "use_cache", None):
        inner.config.use_cache = False  # a KV cache is useless in training and clashes with checkpointing
