"""Task kind `audio_classification`: input features (AST: log-mel frames) from the model's feature
extractor, cross-entropy; scored by the argmax of the logits (accuracy). Reading audio: kinds/audio.py."""

from __future__ import annotations

from ...models import load_feature_extractor
from . import audio
from .base import media_loaders


def make_loaders(cfg, data):
    return media_loaders(cfg, data, audio, load_feature_extractor(cfg.model))
