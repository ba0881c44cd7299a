"""BitFit (Ben Zaken, Ravfogel & Goldberg, 2022): train only the bias terms, plus the task head."""

from dataclasses import dataclass

from omegaconf import MISSING

from ..config import MethodConfig
from .base import METHODS, Method, head_names, train_only


@dataclass
class BitFitConfig(MethodConfig):
    train_head: bool = MISSING  # the paper trains the classifier too


def build(model, knobs: BitFitConfig, family: str):
    head = head_names(model)
    if knobs.train_head:
        return train_only(model, lambda name: name in head or name.endswith(".bias"))
    return train_only(model, lambda name: name not in head and name.endswith(".bias"))


METHODS.register("bitfit", Method(build, BitFitConfig))
