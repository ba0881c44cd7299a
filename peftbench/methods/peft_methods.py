"""Methods that HF peft implements, wrapped, not re-implemented: peft is the reference users trust.

The knobs of `method=<name>` are the fields of peft's config class under peft's own names (see
`peftbench/conf/method/<name>.yaml`; add any other field with `+method.<field>=...`). `target_modules: null`
takes peft's default for the model family (BERT/RoBERTa LoRA: query, value; IA3: key, value,
output.dense). Variants are YAML files over the same class: dora, rslora, pissa and olora are LoRA
with `use_dora`, `use_rslora` or `init_lora_weights` set.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

from ..errors import UserError, did_you_mean
from .base import METHODS, Method, head_modules
from .hooks import attach_hooks
from .peft_lib import bitsandbytes_hidden, import_peft, require_peft

# peft calls transformers 5's deprecated `is_gradient_checkpointing` on every wrap: one FutureWarning per
# model built, noise on every run and bench round that says nothing about the user's run
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

# name -> peft config class; the YAML file of the same name sets the knobs.
CLASSES = {
    "lora": "LoraConfig", "dora": "LoraConfig", "rslora": "LoraConfig", "pissa": "LoraConfig",
    "olora": "LoraConfig", "adalora": "AdaLoraConfig", "ia3": "IA3Config", "loha": "LoHaConfig",
    "lokr": "LoKrConfig", "vera": "VeraConfig", "oft": "OFTConfig", "boft": "BOFTConfig",
    "fourierft": "FourierFTConfig", "ln_tuning": "LNTuningConfig", "hra": "HRAConfig",
    "vblora": "VBLoRAConfig", "randlora": "RandLoraConfig", "c3a": "C3AConfig", "shira": "ShiraConfig",
    "road": "RoadConfig", "miss": "MissConfig", "waveft": "WaveFTConfig", "delora": "DeloraConfig",
    "prompt_tuning": "PromptTuningConfig", "prefix_tuning_peft": "PrefixTuningConfig",
    "p_tuning": "PromptEncoderConfig",
    # Newer peft methods, wrapped with peft's defaults (each trains the tiny BERT in the tests).
    "adamss": "AdamssConfig", "beft": "BeftConfig", "deft": "DeftConfig", "frod": "FrodConfig",
    "glora": "GloraConfig", "gralora": "GraloraConfig", "hira": "HiraConfig", "lily": "LilyConfig",
    "osf": "OSFConfig", "peanut": "PeanutConfig", "psoft": "PsoftConfig", "pvera": "PveraConfig",
    "supertuning": "SupertuningConfig", "tinylora": "TinyLoraConfig", "unilora": "UniLoraConfig",
}
# Set by peftbench, not knobs: the task type follows the model class (`task_type_of`); the rest is bookkeeping.
RESERVED = {"task_type", "peft_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision",
            "inference_mode"}
# Methods whose weights fold into the base model (peft's merge_and_unload).
MERGEABLE = {"lora", "dora", "rslora", "pissa", "olora", "adalora", "ia3", "loha", "lokr", "vera", "oft", "boft",
             "fourierft", "hra", "vblora", "randlora", "c3a", "shira", "road", "miss", "waveft", "delora",
             "adamss", "beft", "deft", "frod", "glora", "gralora", "hira", "osf", "peanut", "psoft",
             "pvera", "supertuning", "tinylora", "unilora", "ln_tuning"}


def _positive(x) -> bool:
    return x > 0


def _fraction(x) -> bool:
    return 0 <= x < 1


CHECKS = (
    ("r", _positive, "must be >= 1 (the rank; typical: 4, 8, 16)"),
    ("lora_alpha", _positive, "must be > 0"),
    ("lora_dropout", _fraction, "must be in [0, 1)"),
    ("num_virtual_tokens", _positive, "must be >= 1 (prompt length)"),
    ("total_step", _positive, "must be >= 1 (AdaLoRA's budget schedule needs the training length)"),
)


def config_class(class_name: str):
    return getattr(import_peft(), class_name)


def knob_names(class_name: str, method: str | None = None) -> list[str]:
    """The knobs of peft's config class; first, a clear error where the installed peft lacks the method."""
    if method is not None:
        require_peft(method)
    fields = dataclasses.fields(config_class(class_name))
    return ["name", "default_lr", *(f.name for f in fields if f.init and f.name not in RESERVED)]


_SIMPLE = {"int": int, "float": float, "bool": bool, "str": str}


def knob_types(class_name: str) -> dict[str, type]:
    """Knobs whose peft annotation is a plain int/float/bool/str (peft writes them as strings)."""
    fields = dataclasses.fields(config_class(class_name))
    return {f.name: _SIMPLE[f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")]
            for f in fields if (f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")) in _SIMPLE}


# Where peft's per-model-type defaults have no entry: the attention query/value projections (LayerNorms
# for ln_tuning) of the families peftbench knows. Anything else needs method.target_modules.
# IA3 also needs to know which of its targets are feed-forward layers (scaled on the input side).
IA3_FALLBACK = {"vit": {"target_modules": ["key", "value", "output.dense", "k_proj", "v_proj", "fc2"],
                        "feedforward_modules": ["output.dense", "fc2"]}}
FALLBACK_TARGETS = {
    # ViT: transformers 5 names the projections q_proj/v_proj (4.x: query/value); either matches.
    "default": {"vit": ["query", "value", "q_proj", "v_proj"], "deberta-v2": ["query_proj", "value_proj"]},
    "LNTuningConfig": {**{f: ["LayerNorm"] for f in ("bert", "roberta", "xlm-roberta", "electra", "deberta-v2")},
                       "vit": ["layernorm_before", "layernorm_after"]},
}
for _table in (IA3_FALLBACK, *FALLBACK_TARGETS.values()):  # the Audio Spectrogram Transformer has ViT's layers
    if "vit" in _table:
        _table["audio-spectrogram-transformer"] = _table["vit"]


def check_targets(model, targets, method: str, family: str) -> None:
    """Every name in a `method.target_modules` list must match a layer (as peft matches: the whole module
    name or a dotted suffix of it); peft itself skips a misspelt name when another one matches."""
    if not isinstance(targets, (list, tuple)) or not targets:
        return  # null (peft's default), or a regex / "all-linear" string: peft checks those
    import torch

    kinds = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d)
    layers = [n for n, m in model.named_modules() if isinstance(m, kinds) or type(m).__name__ == "Conv1D"]
    bad = [t for t in targets if not any(n == t or n.endswith("." + t) for n in layers)]
    if bad:
        leaves = sorted({n.split(".")[-1] for n in layers})
        raise UserError(f"method.target_modules={list(targets)}: {', '.join(repr(t) for t in bad)} "
                        f"match{'es' if len(bad) == 1 else ''} no layer of this {family} model."
                        f"{did_you_mean(bad[0], leaves)} Layer names {method} can adapt here: {', '.join(leaves)} "
                        "(a dotted suffix such as attention.output.dense picks one of several).")


def check_targets_early(cfg) -> None:
    """`check_targets` before the data loads: on the model built on the meta device (no weights, no memory)."""
    from omegaconf import OmegaConf

    targets = cfg.method.get("target_modules")
    if cfg.method.name not in CLASSES or not OmegaConf.is_list(targets) or not targets:
        return  # null (peft's default), a regex / "all-linear" string, or a method written here
    import torch

    from ..models import family_of, load_model

    try:
        with torch.device("meta"):
            model = load_model(cfg.model, 2, weights=False, kind=cfg.task.kind)
    except Exception:  # noqa: BLE001  (a model that cannot be built this way: the check runs when it is built)
        return
    check_targets(model, list(targets), cfg.method.name, family_of(model, cfg.model))


def build(model, knobs: dict, family: str, class_name: str):
    kwargs = {k: v for k, v in knobs.items() if k not in ("name", "default_lr")}
    check_targets(model, kwargs.get("target_modules"), knobs["name"], family)
    try:
        return _build(model, kwargs, class_name)
    except (ValueError, TypeError, KeyError, NotImplementedError) as exc:
        targets = FALLBACK_TARGETS.get(class_name, FALLBACK_TARGETS["default"]).get(family)
        no_default = "target_modules" in str(exc) and kwargs.get("target_modules") is None
        if no_default and class_name == "IA3Config" and family in IA3_FALLBACK:
            return _build(model, {**kwargs, **IA3_FALLBACK[family]}, class_name)
        if no_default and targets:
            return _build(model, {**kwargs, "target_modules": targets}, class_name)
        hint = (f" peft has no default target modules for model type '{model.config.model_type}': set "
                "method.target_modules=[...] (names of the Linear layers to adapt)." if no_default else "")
        raise UserError(f"method '{knobs['name']}' ({class_name}) on model family '{family}': {exc}{hint}") from exc


PROMPT_LEARNING = {"PromptTuningConfig", "PrefixTuningConfig", "PromptEncoderConfig"}
PEFT_HEADS = {"classifier", "score"}  # the head modules peft's SEQ_CLS (and TOKEN_CLS) models train and save themselves


def task_type_of(model) -> str | None:
    """peft's task type for the model's class: CAUSAL_LM (GPT-2, Llama, ...), SEQ_2_SEQ_LM (T5, ...),
    SEQ_CLS (sequence classification), TOKEN_CLS (token classification); None for image and audio classifiers, which peft has no task type for."""
    from transformers.models.auto import modeling_auto as auto

    def classes(mapping) -> set[str]:
        return {c for v in mapping.values() for c in ((v,) if isinstance(v, str) else v)}

    name = type(model).__name__
    if name in classes(auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES):
        return "CAUSAL_LM"
    if name in classes(auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES):
        return "SEQ_2_SEQ_LM"
    if name in classes(auto.MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES):
        return "TOKEN_CLS"
    if name in classes(auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES) | classes(
            auto.MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES):
        return None
    return "SEQ_CLS"


def _build(model, kwargs: dict, class_name: str):
    peft = import_peft()
    task_type = task_type_of(model)
    if task_type is None:  # image classifiers: peft's generic model; the new head trains via modules_to_save
        if class_name in PROMPT_LEARNING:
            raise UserError(f"{class_name.removesuffix('Config')} prepends virtual tokens to a text model's input; "
                            f"peft defines it for text task types, not for {type(model).__name__}. Use lora, "
                            "ia3, an adapter, ssf or bitfit on image and audio models.")
    head = list(head_modules(model))
    # peft trains and saves the heads it knows (SEQ_CLS: classifier, score); a head with more modules
    # (DeBERTa-v2's pooler beside its classifier) is trained whole, as the methods written here train it
    if (task_type is None or set(head) - PEFT_HEADS) and "modules_to_save" in {
            f.name for f in dataclasses.fields(config_class(class_name))}:
        kwargs = {"modules_to_save": head, **kwargs}
    config = config_class(class_name)(task_type=task_type, **kwargs)
    with bitsandbytes_hidden():  # (a quantised model imported it already: then nothing is hidden)
        model = peft.get_peft_model(model, config)
    if class_name == "AdaLoraConfig":  # AdaLoRA reallocates ranks during training, after each step
        attach_hooks(model, after_step=model.base_model.update_and_allocate)
    if class_name == "PrefixTuningConfig" and task_type == "SEQ_CLS" and not _takes_past_key_values(model):
        # Counting parameters still works; training would fail inside peft at the first step.
        attach_hooks(model, cannot_train=(
            f"prefix tuning feeds the prefix as past_key_values, which {type(model.base_model).__name__} "
            "(transformers " + _version("transformers") + ") does not accept. Use method=prefix_tuning "
            "(written here, for encoders), method=p_tuning or method=prompt_tuning on this model."))
    return model


def _takes_past_key_values(model) -> bool:
    """peft's own test (PeftModelForSequenceClassification): the model's or its backbone's forward."""
    import inspect

    base = model.base_model
    if "past_key_values" in inspect.signature(base.forward).parameters:
        return True
    inner = base.get_submodule(getattr(model, "transformer_backbone_name", base.base_model_prefix))
    return "past_key_values" in inspect.signature(inner.forward).parameters


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def merge_and_unload(model):
    """Fold the adapter into the base weights (peft's merge_and_unload): same outputs, no extra modules."""
    return model.merge_and_unload()


def toggle(model, merged: bool) -> None:
    """Fold the adapter into the base weights and back out (peft's merge_adapter / unmerge_adapter)."""
    model.merge_adapter() if merged else model.unmerge_adapter()


for _name, _cls in CLASSES.items():
    _merges = _name in MERGEABLE
    METHODS.register(_name, Method(
        build=functools.partial(build, class_name=_cls), valid_keys=functools.partial(knob_names, _cls, _name),
        types=functools.partial(knob_types, _cls), checks=CHECKS, merge=merge_and_unload if _merges else None,
        toggle=toggle if _merges else None))

