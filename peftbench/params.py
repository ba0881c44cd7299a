"""Parameter counts, as recorded in run files and printed by every run."""

from __future__ import annotations

import re
from collections import Counter


def count_params(model) -> dict:
    """Trainable and total parameters, counting each tensor once (tied weights are shared tensors)."""
    trainable, total, names = 0, 0, []
    for name, param in model.named_parameters():  # named_parameters() skips duplicate (tied) tensors
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
            names.append(name)
    return {"trainable": trainable, "total": total,
            "trainable_pct": round(100.0 * trainable / total, 6) if total else 0.0, "trainable_names": names}


def summarize_names(names: list[str]) -> list[str]:
    """Group per-layer names: `...layer.*.attention.self.query.lora_A.default.weight x6`."""
    groups = Counter(re.sub(r"\.\d+\.", ".*.", n) for n in names)
    return [f"{pattern} x{count}" if count > 1 else pattern for pattern, count in groups.items()]
