"""Image classification data: images read when their batch is made (a file path, the hub's
{'bytes', 'path'} record, raw bytes or an array) and turned into pixel values by the model's image
processor (resize, rescale, normalise)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from ...errors import UserError


def read_image(ref):
    """A PIL image or an HxWx3 uint8 array."""
    from PIL import Image

    if isinstance(ref, dict):
        ref = ref.get("bytes") or ref.get("path")
    if isinstance(ref, (bytes, bytearray)):
        return Image.open(io.BytesIO(ref)).convert("RGB")
    if isinstance(ref, str):
        path = Path(ref)
        if not path.is_file():
            raise UserError(f"image file {ref}: not found (image paths are relative to task.data_dir).")
        if path.suffix == ".npy":
            ref = np.load(path)
        else:
            return Image.open(path).convert("RGB")
    array = np.asarray(ref)
    if array.ndim == 2:  # grey: three equal channels
        array = np.stack([array] * 3, axis=-1)
    if array.dtype != np.uint8:
        array = np.clip(array * (255 if array.max() <= 1 else 1), 0, 255).astype(np.uint8)
    return array


def features(df) -> list[dict]:
    return [{"image": image, "labels": int(label)} for image, label in zip(df["image"], df["label"])]


def collate(batch: list[dict], processor) -> dict:
    pixels = processor([read_image(f["image"]) for f in batch], return_tensors="pt")["pixel_values"]
    return {"pixel_values": pixels, "labels": torch.tensor([f["labels"] for f in batch])}
