"""The contract between a method and the rest of a run, in one place.

A method is a `Method` record (methods/base.py): `build` and its knobs, plus what the run calls on the
method as a whole (`merge`, `toggle`: folding into the base weights, used by train/inference.py). What a
built model needs from the training loop is per model (a closure over the model's own state), so a
method attaches it to the model it builds with `attach_hooks(model, name=...)`, and the loop and the
pipeline read it with `hooks_of(model)`. Only the names `ModelHooks` declares can be attached; nothing
else of peftbench's is set on a model (tests/methods/test_hooks.py holds the package to it).

Two more parts of the contract live on modules and on the model's output, where they are used:
- `StoredCounts`: a module of the method may say how what it stores differs from what trains
  (methods/counting.py sums them over `model.modules()`).
- A method that brings its own task head returns `.loss` from its forward as the model would;
  `methods.base.task_loss` is the head's loss (MSE for regression, else cross-entropy).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

from ..errors import UserError

ATTRIBUTE = "peftbench_hooks"  # the one attribute peftbench sets on a model


@dataclass
class ModelHooks:
    """What a built model may ask of the run; each hook is optional (None: nothing to do)."""

    fold: Optional[Callable] = None
    """`fold(model)`: called once after training, before the trained tensors are saved
    (`train.save_trainable`), to fold away a part that trains but is not kept (prefix tuning's
    reparameterisation MLP). The stored count it leads to is the modules' `StoredCounts`."""

    bind_optimizer: Optional[Callable] = None
    """`bind_optimizer(optimizer)`: called once by the loop with the (unwrapped) AdamW before the first
    step, for methods that touch the optimizer's state (SpIEL resets the moments of regrown entries)."""

    after_step: Optional[Callable] = None
    """`after_step(step)`: called by the loop after each optimizer step, `step` being the steps done
    before it (AdaLoRA's rank allocator, SpIEL's drop-and-grow, LoFiT's head selection)."""

    cannot_train: Optional[str] = None
    """Why this model x method can be counted but not trained: `peftbench params` prints it and a run
    stops with it before training."""


HOOK_NAMES = tuple(f.name for f in dataclasses.fields(ModelHooks))


def attach_hooks(model, **hooks):
    """Set hooks on `model` (keeping those attached before); returns the model. A name `ModelHooks` does
    not declare is refused, so every hook the loop may call is listed there with what it does."""
    unknown = sorted(set(hooks) - set(HOOK_NAMES))
    if unknown:
        raise UserError(f"hook(s) {', '.join(unknown)}: not declared in peftbench/methods/hooks.py ModelHooks. "
                        f"Declared: {', '.join(HOOK_NAMES)}; declare a new hook there with its docstring.")
    current = model.__dict__.get(ATTRIBUTE) or ModelHooks()
    object.__setattr__(model, ATTRIBUTE, dataclasses.replace(current, **hooks))
    return model


def hooks_of(model) -> ModelHooks:
    """The hooks attached to `model` (an empty `ModelHooks` when none were)."""
    return model.__dict__.get(ATTRIBUTE) or ModelHooks()


class StoredCounts(Protocol):
    """Methods a module of a method may define, for the counts in run files and `peftbench params`."""

    def stored_numel_change(self) -> int:
        """Entries the stored tensors have minus those that train (negative: a part folded away)."""

    def stored_bits(self) -> int:
        """Bits the module's trained tensors take as stored (low-bit methods: binary adapters)."""
