"""Linear probe: only the task head trains; the backbone (pooler included) stays frozen."""

from ..config import MethodConfig
from . import METHODS, Method, head_names, train_only


def build(model, knobs: MethodConfig, family: str):
    head = head_names(model)
    return train_only(model, lambda name: name in head)


METHODS.register("head", Method(build))
