"""Parameter counts, as recorded in run files, printed by every run and by `peftbench params`
(the command itself is in peftbench/cli.py).

Papers count a method's parameters differently: the LoRA paper's "0.3M" for roberta-base is the
adapter alone, while a trained classifier also learns its head. So counts keep the two apart:
`method` (what the method adds or unfreezes in the backbone) and `head` (the task head, trained by
most methods), and percentages are of the base model (before the method added anything).
"""

from __future__ import annotations

import re
from collections import Counter

from ..errors import UserError
from ..models.quantization import param_count, prepare_kbit, quantization_kwargs
from .base import METHODS, head_modules

# peft wraps the model (`base_model.model.`) and copies trained heads (`modules_to_save.default`).
_PEFT_WRAPPING = (re.compile(r"^base_model\.(model\.)?"), re.compile(r"\.(modules_to_save|original_module)(\.default)?"))


def canonical_name(name: str) -> str:
    """The parameter's name in the unwrapped model: peft's wrapper prefixes and head copies removed."""
    for pattern in _PEFT_WRAPPING:
        name = pattern.sub("", name)
    return name


def count_params(model, head: tuple[str, ...] = (), base_total: int | None = None) -> dict:
    """Trainable and total parameters, each tensor counted once (tied weights are shared tensors).

    `head`: the task head's top-level module names (`head_modules` of the model before the method);
    `base_total`: the parameter count of that model. Percentages are of `base_total` (default: total)."""
    trainable, head_trainable, total, names = 0, 0, 0, []
    for name, param in model.named_parameters():  # named_parameters() skips duplicate (tied) tensors
        n = param_count(param)  # a packed 4-bit weight counts its layer's parameters, not its bytes
        total += n
        if param.requires_grad:
            trainable += n
            names.append(name)
            if canonical_name(name).split(".")[0] in head:
                head_trainable += n
    base = base_total or total

    def pct(n: int) -> float:
        return round(100.0 * n / base, 6) if base else 0.0

    return {"trainable": trainable, "total": total, "base_total": base, "trainable_pct": pct(trainable),
            "method": trainable - head_trainable, "method_pct": pct(trainable - head_trainable),
            "head": head_trainable, "head_modules": list(head), "trainable_names": names}


def summarize_names(names: list[str]) -> list[str]:
    """Group per-layer names: `...layer.*.attention.self.query.lora_A.default.weight x6`."""
    groups = Counter(re.sub(r"\.\d+\.", ".*.", n) for n in names)
    return [f"{pattern} x{count}" if count > 1 else pattern for pattern, count in groups.items()]


def build_counted(cfg, num_labels: int, weights: bool = True, knobs=None):
    """(model with the method applied, knobs, counts): `knobs` as the config check returned them, or the
    method's knobs checked here when not given (`peftbench params`)."""
    from ..models import family_of, load_model

    method = METHODS.get(cfg.method.name)
    if knobs is None:
        knobs, problems = method.check(cfg.method)
        if problems:
            raise UserError(f"{len(problems)} problem(s) in method '{cfg.method.name}':\n"
                            + "\n".join(f"  - {p}" for p in problems))
    quantized = quantization_kwargs(cfg.model, cfg.hardware) if weights else {}  # model.quantization=4bit|8bit
    model = load_model(cfg.model, num_labels, weights=weights, kind=cfg.task.kind, load_kwargs=quantized)
    family = family_of(model, cfg.model)
    head = head_modules(model)
    base_total = sum(param_count(p) for p in model.parameters())
    if quantized:
        model = prepare_kbit(model, cfg.train.gradient_checkpointing)
    model = method.build(model, knobs, family)
    counts = count_params(model, head, base_total)
    counts["family"] = family
    # What the run stores when it differs from what trains (prefix tuning folds its MLP away).
    change = sum(m.stored_numel_change() for m in model.modules() if hasattr(m, "stored_numel_change"))
    counts["method_stored"] = counts["method"] + change
    stored = [m.stored_bits() for m in model.modules() if hasattr(m, "stored_bits")]  # low-bit methods
    if stored:
        counts["method_stored_bits"] = sum(stored)
    if counts["method"] == 0 and cfg.method.name != "head":
        raise UserError(f"method '{cfg.method.name}' found nothing to train in model '{cfg.model.name}' ({family}) "
                        f"besides the task head (e.g. bitfit on a model without biases, or target modules that "
                        "match no layer). Check method.target_modules, or use method=head for a linear probe.")
    return model, knobs, counts


def build_offline(cfg, num_labels: int):
    """Build on the meta device (no memory, no init); a method whose set-up reads weight values
    (BOFT, PiSSA's SVD, sparse masks) falls back to a random-init build on the CPU."""
    import torch

    try:
        with torch.device("meta"):
            return build_counted(cfg, num_labels, weights=False)
    except UserError as exc:
        if exc.__cause__ is None:  # our own check (bad knob, unsupported family): same answer on the CPU
            raise
    except Exception:  # noqa: BLE001  (a set-up step that needs real values)
        pass
    return build_counted(cfg, num_labels, weights=False)


def format_counts(cfg, num_labels: int, p: dict, note: str | None, names: bool) -> str:
    width = len(f"{p['total']:,}")

    def line(label: str, n: int, extra: str = "") -> str:
        return f"  {label:<22}{n:>{width},}  {extra}".rstrip()

    head = ", ".join(p["head_modules"]) or "none"
    lines = [
        f"{cfg.model.name} ({p['family']}, {num_labels} label{'s' if num_labels > 1 else ''}) + {cfg.method.name}:",
        line("base model", p["base_total"]),
        line("method, trainable", p["method"], f"{p['method_pct']:.4f}% of base (the method's own parameters)"),
        line("head, trainable", p["head"], f"task head ({head}); papers usually leave it out"),
        *([line("method, stored", p["method_stored"], "after training (training-only parts folded away)")]
          if p.get("method_stored", p["method"]) != p["method"] else []),
        line("trainable in all", p["trainable"], f"{p['trainable_pct']:.4f}% of base"),
        line("total now", p["total"], "base + what the method adds" if p["total"] != p["base_total"] else ""),
    ]
    if "method_stored_bits" in p:
        bits = p["method_stored_bits"]
        lines.insert(3, line("method, stored bits", bits, f"{bits / 8 / 1024:.2f} KiB as stored ("
                                                         f"{p['method'] * 4 / 1024:.2f} KiB in fp32)"))
    if names:
        lines += ["  trainable tensors:", *(f"    {n}" for n in summarize_names(p["trainable_names"]))]
    if note:
        lines.append(f"  note: counts only; this combination cannot train: {note}")
    return "\n".join(lines)
