"""PEFT methods behind one registry: `METHODS.get(name)` -> Method(knobs, build).

A method is one module that registers one builder, `build(model, knobs, family) -> model`, which
returns the model with exactly the parameters that should train set to `requires_grad=True`. `knobs`
is the method's dataclass (a `MethodConfig`), filled from `conf/method/<name>.yaml` and overrides.
Methods HF `peft` implements wrap `peft`; the others are written here, one small file each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import Registry


@dataclass(frozen=True)
class Method:
    knobs: type  # a MethodConfig subclass
    build: Callable  # (model, knobs, family) -> model


METHODS = Registry("method")


def head_names(model) -> set[str]:
    """Parameters outside the backbone (`model.base_model_prefix`): the task head, e.g. `classifier.*`."""
    prefix = model.base_model_prefix + "."
    return {n for n, _ in model.named_parameters() if not n.startswith(prefix)}


def train_only(model, keep: Callable[[str], bool]):
    """Freeze everything, then unfreeze the parameters whose name `keep` accepts."""
    for name, param in model.named_parameters():
        param.requires_grad = keep(name)
    return model


from . import bitfit, full, head, lora  # noqa: E402,F401  (each registers itself)
