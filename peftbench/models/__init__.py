"""Build the model and tokenizer a config names (`load_model`, `load_tokenizer`): sequence classifiers
here, the other task kinds' models (causal and seq2seq LMs, image classifiers) in `kinds`, where the
weights come from in `loading`."""

from __future__ import annotations

from omegaconf import DictConfig

from .kinds import load_feature_extractor, load_image_processor, load_kind_model, special_ids
from .loading import check_max_length, family_of, from_pretrained, load_tokenizer, model_config, resolve_path

__all__ = ["check_max_length", "family_of", "from_pretrained", "load_feature_extractor", "load_image_processor",
           "load_model", "load_tokenizer", "model_config", "resolve_path", "special_ids"]


def load_model(model_cfg: DictConfig, num_labels: int, weights: bool = True, kind: str = "classification",
               load_kwargs: dict | None = None):
    """A sequence-classification model with `num_labels` outputs (1: regression).

    `weights=False` builds the architecture with random weights and downloads nothing (parameter
    counts): from `model.arch` if set, else from the checkpoint's config file."""
    from transformers import AutoModelForSequenceClassification

    from .pooling import apply_pooling  # model.pooling: what the classifier reads (default: unchanged)

    pooling = model_cfg.get("pooling", "default")
    if kind != "classification":  # causal LM, seq2seq LM, image classifier: models/kinds.py
        model = load_kind_model(model_cfg, num_labels, weights, kind, load_kwargs)
        return apply_pooling(model, pooling, family_of(model, model_cfg), kind, model_cfg.name)

    problem = "regression" if num_labels == 1 else "single_label_classification"
    if not weights or not model_cfg.name_or_path:  # random init from model.arch
        config = model_config(model_cfg, num_labels=num_labels, problem_type=problem)
        model = AutoModelForSequenceClassification.from_config(config)
    else:
        model = from_pretrained(AutoModelForSequenceClassification, resolve_path(model_cfg.name_or_path),
                                model_cfg.name, num_labels=num_labels, problem_type=problem, **(load_kwargs or {}))
    return apply_pooling(model, pooling, family_of(model, model_cfg), kind, model_cfg.name)
