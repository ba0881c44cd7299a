"""PEFT methods behind one registry: `METHODS.get(name)` -> Method.

A method registers one builder, `build(model, knobs, family) -> model`, which returns the model with
exactly the parameters that should train set to `requires_grad=True`. Knobs come from
`conf/method/<name>.yaml` plus overrides and are checked before any model is loaded:
- methods written here declare a dataclass (a `MethodConfig` subclass) whose fields are the knobs;
- methods HF `peft` implements (the reference implementations) take the fields of the peft config
  class as knobs, under peft's own names (`lora_alpha`, `num_virtual_tokens`, ...).
"""

from . import (adapter, binary_adapter, bitfit, compacter, full, head, hydra, lofit, lst, mos,  # noqa: F401
               parallel_adapter, peft_methods, prefix, sparse_ft, ssf, svfit, vpt, vqt)  # each registers
from .base import METHODS, Method

__all__ = ["METHODS", "Method"]
