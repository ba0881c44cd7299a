"""PEFT methods behind one registry: `METHODS.get(name)` -> Method.

A method registers one builder, `build(model, knobs, family) -> model`, which returns the model with
exactly the parameters that should train set to `requires_grad=True`. Knobs come from
`peftbench/conf/method/<name>.yaml` plus overrides and are checked before any model is loaded:
- methods written here declare a dataclass (a `MethodConfig` subclass) whose fields are the knobs;
- methods HF `peft` implements (the reference implementations) take the fields of the peft config
  class as knobs, under peft's own names (`lora_alpha`, `num_virtual_tokens`, ...).
Installed plugin packages add theirs through the `peftbench.methods` entry points (peftbench/plugins.py).
"""

from . import (adapter, binary_adapter, bitfit, compacter, full, head, hydra, lofit, lst, mos,  # noqa: F401
               parallel_adapter, peft_methods, prefix, pst, sparse_ft, ssf, svfit, triadaptlora, vpt,  # each registers
               vqt)
from .base import METHODS, Method


def register_plugins() -> None:
    """Register the methods of installed plugin packages (peftbench/plugins.py), each under its entry
    point's name; a name peftbench (or another plugin) has already is refused with both origins."""
    from importlib import import_module

    from ..errors import UserError
    from ..plugins import clash, declared

    for plugin in (p for p in declared() if p.group == "method"):
        if plugin.name in METHODS:
            raise UserError(clash(plugin, "peftbench itself" if plugin.name in BUILT_IN else "another plugin"))
        module, _, attr = plugin.value.partition(":")
        try:
            method = getattr(import_module(module), attr) if attr else None
        except Exception as exc:  # the plugin's own bug or a missing dependency: name the plugin
            raise UserError(f"method '{plugin.name}' from {plugin.origin} failed to load: "
                            f"{type(exc).__name__}: {exc}") from None
        if not isinstance(method, Method):
            raise UserError(f"method '{plugin.name}' from {plugin.origin}: the entry point must name a "
                            f"peftbench.methods.Method (module:attribute), not {type(method).__name__}.")
        METHODS.register(plugin.name, method)


BUILT_IN = frozenset(METHODS.names())
METHODS.defer(register_plugins)  # at the first lookup: a plugin's module may import this package first

__all__ = ["METHODS", "Method"]
