"""What every method shares: the `Method` record, the `METHODS` registry, and the helpers methods use
to find the task head, the backbone and the places in a transformer block where they hook in."""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass
from typing import Callable

from omegaconf import MISSING, DictConfig, OmegaConf

from ..config import MethodConfig
from ..errors import Registry, UserError

COMMON = ("name", "default_lr")


@dataclass(frozen=True)
class Method:
    build: Callable  # (model, knobs, family) -> model
    knobs: type = MethodConfig  # the knobs dataclass (methods written here)
    valid_keys: Callable | None = None  # () -> knob names, for methods whose knobs are not a dataclass
    checks: tuple = ()  # (key, predicate, requirement) value checks for valid_keys methods
    types: Callable | None = None  # () -> {knob: type}, checked before `checks` (valid_keys methods)
    merge: Callable | None = None  # (model) -> model with the method folded into the base weights

    def check(self, node: DictConfig):
        """(knobs, problems): every unknown key and bad value, each message naming the key."""
        valid = list(self.valid_keys()) if self.valid_keys else [f.name for f in dataclasses.fields(self.knobs)]
        problems = [_unknown_key(key, node.name, valid) for key in node.keys() if key not in valid]
        if problems:
            return None, problems
        if self.valid_keys:
            knobs = OmegaConf.to_container(node, resolve=True)
            types = self.types() if self.types else {}
            problems = [f"method.{key}={value!r}: expected {types[key].__name__}." for key, value in knobs.items()
                        if value is not None and key in types and not _is_a(value, types[key])]
            bad = {p.split("=")[0] for p in problems}
            problems += [f"method.{key}={knobs[key]}: {need}." for key, ok, need in self.checks
                         if knobs.get(key) is not None and f"method.{key}" not in bad and not ok(knobs[key])]
            return knobs, problems
        missing = [f.name for f in dataclasses.fields(self.knobs) if f.default == MISSING and f.name not in node]
        if missing:  # the knobs' defaults live in the method's YAML only (tests/test_defaults.py)
            return None, [f"method '{node.name}': no value for {', '.join(missing)}. Set them in its YAML "
                          f"(conf/method/{node.name}.yaml), or on the command line: +method.{missing[0]}=..."]
        try:
            knobs = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(self.knobs), node))
        except Exception as exc:  # omegaconf ValidationError: a knob of the wrong type
            return None, [f"method '{node.name}': {str(exc).splitlines()[0]}"]
        return knobs, knobs.problems()


def _is_a(value, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _unknown_key(key: str, method: str, valid: list[str]) -> str:
    """The message for a misspelt knob; `alpah` also matches the last part of `lora_alpha`."""
    def score(name: str) -> float:
        return max(difflib.SequenceMatcher(None, str(key), part).ratio() for part in (name, *name.split("_")))

    best = max(valid, key=score, default=None)
    hint = f" Did you mean '{best}'?" if best is not None and score(best) >= 0.6 else ""
    return f"method.{key}: not a knob of method '{method}'.{hint} Valid: {', '.join(valid)}."


METHODS = Registry("method")


def head_modules(model) -> tuple[str, ...]:
    """Top-level modules outside the backbone (`model.base_model_prefix`): the task head, e.g. classifier."""
    if model.get_output_embeddings() is not None:  # a language model: its LM head is pretrained, not a task head
        return ()
    return tuple(name for name, module in model.named_children()
                 if name != model.base_model_prefix and any(True for _ in module.parameters()))


def head_names(model) -> set[str]:
    """Parameter names of the task head (`head_modules`), e.g. `classifier.*`."""
    head = head_modules(model)
    return {n for n, _ in model.named_parameters() if n.split(".")[0] in head}


def train_only(model, keep: Callable[[str], bool]):
    """Freeze everything, then unfreeze the parameters whose name `keep` accepts."""
    for name, param in model.named_parameters():
        param.requires_grad = keep(name)
    return model


def backbone(model):
    """The encoder inside a task model (`model.bert`, `model.roberta`, ...)."""
    return getattr(model, model.base_model_prefix, model)  # T5ForConditionalGeneration: the whole model


# Where methods written here hook into a transformer block, per family: the attention output
# projection and the feed-forward output projection (Houlsby et al. put adapters after both).
BLOCK_OUTPUTS = {
    "bert": {"attention": r"attention\.output\.dense$", "ffn": r"layer\.\d+\.output\.dense$"},
    "gpt2": {"attention": r"attn\.c_proj$", "ffn": r"mlp\.c_proj$"},
    "llama": {"attention": r"self_attn\.o_proj$", "ffn": r"mlp\.down_proj$"},
    "t5": {"attention": r"SelfAttention\.o$", "ffn": r"DenseReluDense\.wo$"},
}
# ViT in transformers 5: attention.o_proj and mlp.fc2 (4.x: BERT's names, matched as well).
BLOCK_OUTPUTS["vit"] = {"attention": r"attention\.(o_proj|output\.dense)$", "ffn": r"mlp\.fc2$|layer\.\d+\.output\.dense$"}
BLOCK_OUTPUTS["audio-spectrogram-transformer"] = BLOCK_OUTPUTS["vit"]  # AST: ViT's layers over spectrogram patches
for _alias in ("roberta", "xlm-roberta", "electra", "deberta-v2"):
    BLOCK_OUTPUTS[_alias] = BLOCK_OUTPUTS["bert"]
for _alias in ("mistral", "qwen2", "qwen3"):
    BLOCK_OUTPUTS[_alias] = BLOCK_OUTPUTS["llama"]


def block_outputs(model, family: str, placement, method: str) -> list[str]:
    """Names of the modules after which `method` inserts itself, for each placement it asks for."""
    if family not in BLOCK_OUTPUTS:
        raise UserError(f"method '{method}' does not know where to insert itself in model family '{family}'. "
                        f"Supported: {', '.join(sorted(BLOCK_OUTPUTS))}.")
    unknown = [p for p in placement if p not in BLOCK_OUTPUTS[family]]
    if unknown:
        raise UserError(f"method.placement: unknown {unknown}; choose from {sorted(BLOCK_OUTPUTS[family])}.")
    patterns = [re.compile(BLOCK_OUTPUTS[family][p]) for p in placement]
    names = [n for n, _ in model.named_modules() if any(p.search(n) for p in patterns)]
    if not names:
        raise UserError(f"method '{method}': no module of model family '{family}' matches {placement}.")
    return names


def replace_module(model, name: str, new) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def task_loss(logits, labels, num_labels: int):
    """The task head's loss for methods that bring their own head: MSE for regression, else cross-entropy."""
    from torch.nn import functional as F

    if labels is None:
        return None
    return F.mse_loss(logits.squeeze(-1), labels.float()) if num_labels == 1 else F.cross_entropy(logits, labels)


def hidden_size(model) -> int:
    config = model.config
    return getattr(config, "hidden_size", None) or config.d_model
