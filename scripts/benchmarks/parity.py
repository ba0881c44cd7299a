"""Section 2, parity: LoRA, IA3 and prefix tuning applied with `peft` + the plain loop vs through
peftbench: trainable count, per-step loss under one seed, throughput ratio."""

from __future__ import annotations

import statistics
from pathlib import Path

from .common import base_overrides, compose, loader_for, peftbench_run, plain_loop, table, warn


PEFT_CONFIGS = {  # the same knobs as peftbench/conf/method/<name>.yaml, written out as a peft user would
    "lora": ("LoraConfig", {"r": 8, "lora_alpha": 16, "lora_dropout": 0.1}),
    "ia3": ("IA3Config", {}),
    "prefix_tuning_peft": ("PrefixTuningConfig", {"num_virtual_tokens": 20}),
}


def peft_model(cfg, method: str, num_labels: int):
    """The model with `method` applied by `peft` itself, as a peft user writes it."""
    import peft
    from accelerate.utils import set_seed
    from transformers import AutoModelForSequenceClassification

    from peftbench.models import resolve_path

    set_seed(cfg.seed)
    model = AutoModelForSequenceClassification.from_pretrained(resolve_path(cfg.model.name_or_path),
                                                               num_labels=num_labels) \
        if cfg.model.name_or_path else _random_init(cfg, num_labels)
    class_name, kwargs = PEFT_CONFIGS[method]
    return peft.get_peft_model(model, getattr(peft, class_name)(task_type=peft.TaskType.SEQ_CLS, **kwargs))


def direct_peft(cfg, method: str, loader, num_labels: int, steps: int, warmup: int):
    model = peft_model(cfg, method, num_labels)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    try:
        seconds, losses = plain_loop(model, loader, cfg, steps, warmup)
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return trainable, None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    return trainable, (seconds, losses), None


def _random_init(cfg, num_labels):
    from transformers import AutoModelForSequenceClassification

    from peftbench.models import model_config

    return AutoModelForSequenceClassification.from_config(model_config(cfg.model, num_labels=num_labels))


def parity(args) -> None:
    from peftbench.errors import UserError

    steps, rows = args.steps, []
    for method in PEFT_CONFIGS:
        overrides = base_overrides(args, steps) + [f"method={method}", "train.warmup_ratio=0.06"]
        cfg = compose(*overrides)
        loader, num_labels = loader_for(cfg)
        trainable, direct, direct_error = direct_peft(cfg, method, loader, num_labels, steps, args.warmup)
        try:
            record = peftbench_run(overrides, Path(args.tmp) / f"parity_{method}")
            if direct is not None:  # ABBA: peftbench again, then peft again, for the throughput ratio
                second = peftbench_run(overrides, Path(args.tmp) / f"parity_{method}_2")
                again = direct_peft(cfg, method, loader, num_labels, steps, args.warmup)[1]
        except UserError as exc:
            rows.append([method, f"{trainable:,}", "refused", "-", "-",
                         f"peftbench refuses: {str(exc).split(': ', 1)[-1].split('. ')[0]}; "
                         f"peft alone: {direct_error or 'trains'}"])
            continue
        ours = [loss for _, loss in record["loss_history"]]
        same = "yes" if record["params"]["trainable"] == trainable else f"no ({record['params']['trainable']:,})"
        if direct is None:
            rows.append([method, f"{trainable:,}", same, "-", "-", f"peft direct fails: {direct_error}"])
            continue
        diff = max(abs(a - b) for a, b in zip(ours, direct[1], strict=True))
        speed = statistics.mean([direct[0] / record["throughput"]["train_s_per_step"],
                                 again[0] / second["throughput"]["train_s_per_step"]])
        rows.append([method, f"{trainable:,}", same, f"{diff:.2e}", f"{speed:.3f}", ""])
        if speed < 0.97:
            warn(f"{method}: peftbench throughput is {speed:.3f} of peft + a plain loop (target >= 0.97)")
        if diff > 1e-4:
            warn(f"{method}: the loss curves differ by up to {diff:.2e}")
    table(f"2. Parity with peft + a plain loop ({args.model}, {steps} steps, seed 42; throughput: mean of 2 "
          "alternating pairs, peft time / peftbench time per step)",
          ["method", "trainable (peft)", "same count", "max |loss diff|", "throughput ratio", "note"], rows)
