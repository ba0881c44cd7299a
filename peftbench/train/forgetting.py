"""Forgetting of a causal LM (`train.forgetting=true`), as peft's method comparison defines it
(method_comparison/MetaMathQA/run.py): the mean per-token cross-entropy of next-token prediction on a
held-out general-text set after training, minus the same on the base model before training. Positive:
the fine-tuned model predicts general text worse than the base model did.

The mean is over tokens, not over lines (a long line weighs more), every real token after the first of
each line is predicted, padding is left out. "Before" is measured on the base model: inside peft's
`disable_adapter()` (so prompt tuning's virtual tokens, which start far from neutral, do not count as
forgetting), and for full fine-tuning and the methods written here on the model before training (the
latter are the identity at init: tests/methods/test_method_invariants.py).

The text: `general_text.txt` beside this file, 300 lines of plain English sentences generated from
templates by scripts/make_general_text.py (its docstring says how); `train.forgetting_text=<file>`
takes another file, one text per line. peft's comparison uses 100 Wikipedia articles instead, which
needs a hub; the figures of the two are not comparable.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import torch

from ..errors import UserError

GENERAL_TEXT = Path(__file__).with_name("general_text.txt")
CAUSAL_KINDS = ("generation", "multiple_choice")  # the task kinds trained on a causal LM


def read_lines(path: str | Path | None) -> tuple[list[str], str]:
    """(non-empty lines, '<file name> sha256:<first 12>') of the general-text file."""
    path = Path(path).expanduser() if path else GENERAL_TEXT
    if not path.is_file():
        raise UserError(f"train.forgetting_text={path}: no such file. Give a text file, one text per line "
                        "(or null for peftbench's own general_text.txt).")
    text = path.read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise UserError(f"train.forgetting_text={path}: the file has no text.")
    return lines, f"{path.name} sha256:{hashlib.sha256(text.encode()).hexdigest()[:12]}"


@torch.no_grad()
def mean_token_loss(model, tokenizer, lines: list[str], max_length: int, batch_size: int, device,
                    autocast=contextlib.nullcontext) -> tuple[float, int]:
    """(mean next-token cross-entropy over every predicted token of `lines`, tokens predicted)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(lines), batch_size):
        encoded = [tokenizer(t, truncation=True, max_length=max_length)["input_ids"] for t in lines[start:start + batch_size]]
        width = max(len(ids) for ids in encoded)
        ids = torch.tensor([x + [pad] * (width - len(x)) for x in encoded], device=device)
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in encoded], device=device)
        with autocast():
            logits = model(input_ids=ids, attention_mask=mask).logits
        logits = logits[:, -width:].float()  # prompt tuning prepends virtual tokens: keep the text's positions
        losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
        real = mask[:, 1:].bool()
        total += losses[real].sum().item()
        count += int(real.sum())
    model.train(was_training)
    return total / max(count, 1), count


class Forgetting:
    """`before(model)` ahead of training, `after(model)` once it ends; `record()` -> the run file's block."""

    def __init__(self, cfg, accelerator):
        if cfg.task.kind not in CAUSAL_KINDS:
            raise UserError(f"train.forgetting=true needs a causal LM task (kind {' or '.join(CAUSAL_KINDS)}); "
                            f"task '{cfg.task.name}' is {cfg.task.kind}. Use train.forgetting=false.")
        from ..models import load_tokenizer

        self.lines, self.source = read_lines(cfg.train.forgetting_text)
        self.tokenizer = load_tokenizer(cfg.model)
        self.accelerator, self.max_length, self.batch_size = accelerator, cfg.model.max_length, cfg.train.batch_size
        self.loss_before = self.loss_after = None
        self.tokens = 0

    def _loss(self, model) -> float:
        if next(model.parameters()).device != self.accelerator.device:  # before training: not prepared yet
            model.to(self.accelerator.device)  # (a bitsandbytes model is placed as it loads, and refuses .to)
        loss, self.tokens = mean_token_loss(model, self.tokenizer, self.lines, self.max_length, self.batch_size,
                                            self.accelerator.device, self.accelerator.autocast)
        return loss

    def before(self, model) -> None:
        base = model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()
        with base:
            self.loss_before = self._loss(model)

    def after(self, model) -> None:
        self.loss_after = self._loss(self.accelerator.unwrap_model(model))

    def record(self) -> dict:
        return {"forgetting": round(self.loss_after - self.loss_before, 6), "loss_before": round(self.loss_before, 6),
                "loss_after": round(self.loss_after, 6), "text": self.source, "lines": len(self.lines),
                "tokens": self.tokens,
                "measured": "mean per-token cross-entropy on the general text: after training minus the base model "
                            "(peft method_comparison's forgetting)"}
