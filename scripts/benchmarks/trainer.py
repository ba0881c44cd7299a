"""Section 2b, trainer: peftbench vs HF Trainer + peft on the same model, LoRA, batches (same order),
steps and threads, alternating rounds; per step and per non-padding token."""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path

from .common import base_overrides, compose, epochs, loader_for, peftbench_run, table, warn
from .parity import peft_model


def trainer_steps(cfg, loader, num_labels: int, steps: int, warmup: int, out_dir: Path) -> float:
    """HF `Trainer` + peft LoRA as a user writes it (its defaults: fused AdamW, linear schedule), handed
    the same loader so it trains on the same batches in the same order. Seconds per step after `warmup`
    steps, from the end of step `warmup` to the end of the last, as peftbench's window."""
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    class SameBatches(Trainer):
        def get_train_dataloader(self):
            return self.accelerator.prepare(loader)

    class Clock(TrainerCallback):
        began = ended = 0.0

        def on_step_end(self, args, state, control, **kwargs):
            self.ended = time.perf_counter()
            if state.global_step == warmup:
                self.began = self.ended

    t, clock = cfg.train, Clock()
    targs = TrainingArguments(output_dir=str(out_dir), max_steps=steps, per_device_train_batch_size=t.batch_size,
                              learning_rate=t.lr, weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm,
                              warmup_steps=int(t.warmup_ratio * steps), lr_scheduler_type="linear",
                              logging_steps=t.log_every, save_strategy="no", eval_strategy="no", report_to="none",
                              disable_tqdm=True, use_cpu=True, seed=cfg.seed, dataloader_num_workers=0)
    trainer = SameBatches(model=peft_model(cfg, "lora", num_labels), args=targs, train_dataset=loader.dataset,
                          callbacks=[clock])
    trainer.remove_callback(PrinterCallback)  # its metrics line on stdout; the table has them
    trainer.train()
    return (clock.ended - clock.began) / (steps - warmup)


def window_tokens(loader, steps: int, warmup: int) -> int:
    """Non-padding tokens of the batches of steps warmup+1..steps (the throughput window), epoch by epoch."""
    batches = epochs(loader)
    return sum(int(next(batches)["attention_mask"].sum()) * (i >= warmup) for i in range(steps))


def trainer_parity(args) -> None:
    """Section 2b: peftbench vs HF Trainer + peft on the same model, LoRA, batches (same order), steps and
    threads, alternating rounds; per step and per non-padding token."""
    steps = args.steps
    overrides = [o for o in base_overrides(args, steps) if not o.startswith("train.log_every")] + ["method=lora"]
    cfg = compose(*overrides)
    loader, num_labels = loader_for(cfg)
    tokens, ours, theirs, same = window_tokens(loader, steps, args.warmup), [], [], True
    for r in range(args.rounds):  # ABBA, as section 1
        for side in (("trainer", "peftbench") if r % 2 == 0 else ("peftbench", "trainer")):
            if side == "trainer":
                theirs.append(trainer_steps(cfg, loader, num_labels, steps, args.warmup, Path(args.tmp) / f"hf{r}"))
            else:
                record = peftbench_run(overrides, Path(args.tmp) / f"vs_trainer{r}")
                ours.append(record["throughput"]["train_s_per_step"])
                same = same and record["throughput"]["window"]["tokens"] == tokens
            gc.collect()
    ratios = [h / p for h, p in zip(theirs, ours)]
    rate = tokens / (steps - args.warmup)
    rows = [[r + 1, f"{h * 1000:.1f}", f"{p * 1000:.1f}", f"{rate / h:.0f}", f"{rate / p:.0f}", f"{q:.3f}"]
            for r, (h, p, q) in enumerate(zip(theirs, ours, ratios))]
    ratio = statistics.median(ratios)
    rows.append(["median", f"{statistics.median(theirs) * 1000:.1f}", f"{statistics.median(ours) * 1000:.1f}",
                 f"{rate / statistics.median(theirs):.0f}", f"{rate / statistics.median(ours):.0f}", f"{ratio:.3f}"])
    table(f"2b. Parity with HF Trainer + peft ({args.model} + lora, batch {args.batch}, {steps} steps, "
          f"{args.warmup} warm-up, the same batches in the same order: {tokens:,} non-padding tokens in the window"
          f"{'' if same else ' (peftbench counted otherwise!)'})",
          ["round", "Trainer ms/step", "peftbench ms/step", "Trainer tokens/s", "peftbench tokens/s",
           "peftbench speed / Trainer's"], rows)
    if not same:
        warn("peftbench's window counted other tokens than the batches handed to Trainer")
    if ratio < 1.0:
        warn(f"peftbench trains at {ratio:.3f}x Trainer's tokens/s (median of paired rounds; target >= 1.00)")
