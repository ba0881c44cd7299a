"""Task kind `image_classification`: pixel values from the model's image processor, cross-entropy;
scored by the argmax of the logits (accuracy). Reading images: kinds/image.py."""

from __future__ import annotations

from ...models import load_image_processor
from . import image
from .base import media_loaders


def make_loaders(cfg, data):
    return media_loaders(cfg, data, image, load_image_processor(cfg.model))
