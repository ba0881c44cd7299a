"""Linear probe: only the task head trains; the backbone (pooler included) stays frozen."""

from ..config import MethodConfig
from ..errors import UserError
from .base import METHODS, Method, head_names, train_only


def build(model, knobs: MethodConfig, family: str):
    head = head_names(model)
    if not head:
        raise UserError(f"method 'head' trains only a task head, and {type(model).__name__} has none (a language "
                        "model's output layer is pretrained). Use a method that adapts the model, e.g. lora.")
    return train_only(model, lambda name: name in head)


METHODS.register("head", Method(build))
