"""LoRA (Hu et al., 2021) through HF peft, the reference implementation; DoRA and rsLoRA are flags."""

from dataclasses import dataclass
from typing import List, Optional

from ..config import MethodConfig
from ..errors import UserError
from . import METHODS, Method

# The attention projections LoRA adapts by default, per family (the paper adapts W_q and W_v).
TARGETS = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "electra": ["query", "value"],
    "deberta-v2": ["query_proj", "value_proj"],
    "distilbert": ["q_lin", "v_lin"],
}


@dataclass
class LoraConfig(MethodConfig):
    r: int = 8
    alpha: float = 16
    dropout: float = 0.1
    target_modules: Optional[List[str]] = None  # None: TARGETS[family]
    bias: str = "none"  # none | all | lora_only
    use_rslora: bool = False
    use_dora: bool = False

    def problems(self) -> list[str]:
        out = []
        if self.r < 1:
            out.append(f"method.r={self.r}: the LoRA rank must be >= 1 (typical: 4, 8, 16).")
        if self.alpha <= 0:
            out.append(f"method.alpha={self.alpha}: must be > 0.")
        if not 0 <= self.dropout < 1:
            out.append(f"method.dropout={self.dropout}: must be in [0, 1).")
        if self.bias not in ("none", "all", "lora_only"):
            out.append(f"method.bias='{self.bias}': must be one of none, all, lora_only.")
        return out


def build(model, knobs: LoraConfig, family: str):
    import peft

    targets = list(knobs.target_modules or TARGETS.get(family, []))
    if not targets:
        raise UserError(f"method lora has no default target modules for model family '{family}' "
                        f"(known: {', '.join(sorted(TARGETS))}). Set method.target_modules=[...].")
    config = peft.LoraConfig(task_type=peft.TaskType.SEQ_CLS, r=knobs.r, lora_alpha=knobs.alpha,
                             lora_dropout=knobs.dropout, target_modules=targets, bias=knobs.bias,
                             use_rslora=knobs.use_rslora, use_dora=knobs.use_dora)
    try:
        return peft.get_peft_model(model, config)
    except ValueError as exc:  # e.g. target modules not found in the model
        raise UserError(f"method lora on family '{family}': {exc}") from exc


METHODS.register("lora", Method(LoraConfig, build))
