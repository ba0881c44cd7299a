"""Full fine-tuning: every parameter trains."""

from ..config import MethodConfig
from .base import METHODS, Method, train_only


def build(model, knobs: MethodConfig, family: str):
    return train_only(model, lambda name: True)


METHODS.register("full", Method(build))
