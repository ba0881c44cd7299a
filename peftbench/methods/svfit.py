"""SVFit (Sun et al., 2024, "SVFit: Parameter-Efficient Fine-Tuning of Large Pre-Trained Models Using
Singular Values"): split each target weight by its SVD, W = U S V^T = W_r + W_e, with W_r = U_r S_r V_r^T
the best rank-r approximation and W_e the rest; freeze U_r, V_r and W_e and train only the r singular
values S_r. The model starts as the base model (up to the SVD's rounding); r parameters per matrix.
`merge` writes W_r + W_e back as one weight. U_r, V_r and W_e are rebuilt from the base weights,
not stored: the trained file holds the singular values alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch
from omegaconf import MISSING
from torch import nn
from torch.nn.utils import parametrize

from ..config import MethodConfig
from ..errors import UserError
from .base import METHODS, Method, backbone, head_names, train_only
from .sparse_ft import merge  # the same parametrization removal


@dataclass
class SVFitConfig(MethodConfig):
    r: int = MISSING  # singular values trained per matrix (the top r)
    target_modules: Optional[List[str]] = MISSING  # nn.Linear name suffixes; null: LoRA's defaults for the family

    def problems(self) -> list[str]:
        out = [f"method.r={self.r}: must be >= 1."] if self.r < 1 else []
        return out + (["method.target_modules: name at least one layer."] if self.target_modules == [] else [])


class TopSingularValues(nn.Module):
    """W = U_r diag(s) V_r^T + W_e, s trainable (starting at the top r singular values of W)."""

    def __init__(self, weight: torch.Tensor, r: int):
        super().__init__()
        u, s, vh = torch.linalg.svd(weight.detach().float(), full_matrices=False)
        r = min(r, s.numel())
        top = (u[:, :r] * s[:r]) @ vh[:r]
        self.register_buffer("u", u[:, :r].to(weight.dtype), persistent=False)
        self.register_buffer("vh", vh[:r].to(weight.dtype), persistent=False)
        self.register_buffer("rest", (weight.detach().float() - top).to(weight.dtype), persistent=False)
        self.singular_values = nn.Parameter(s[:r].to(weight.dtype))

    def forward(self, weight):  # the original weight is ignored: it is rebuilt from the parts
        return (self.u * self.singular_values) @ self.vh + self.rest


def default_targets(family: str) -> list[str]:
    """LoRA's default targets for the family (peft's table, peftbench's fallback where it has none)."""
    from .peft_lib import import_peft

    import_peft()  # (without bitsandbytes)
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULTS

    from .peft_methods import FALLBACK_TARGETS

    return PEFT_DEFAULTS.get(family) or FALLBACK_TARGETS["default"].get(family) or []


def build(model, knobs: SVFitConfig, family: str):
    head = head_names(model)
    names = knobs.target_modules or default_targets(family)
    targets = [m for n, m in backbone(model).named_modules()
               if isinstance(m, nn.Linear) and n.split(".")[-1] in names]
    if not targets:
        raise UserError(f"method '{knobs.name}': no nn.Linear layer of model family '{family}' is named "
                        f"{names}. Set method.target_modules=[...] (e.g. BERT: query, value; "
                        "Llama: q_proj, v_proj; GPT-2's Conv1D layers are not supported).")
    for module in targets:
        parametrize.register_parametrization(module, "weight", TopSingularValues(module.weight, knobs.r))
    return train_only(model, lambda n: n.endswith(".singular_values") or n in head)


METHODS.register("svfit", Method(build=build, knobs=SVFitConfig, merge=merge))
