"""The training loop, top to bottom: tokenise, batch, train with AdamW + linear warmup/decay on
`accelerate`, evaluate at the end (and every `train.eval_every` steps), and count what was trained on.

Throughput counts only the training steps: evaluation time is excluded, and tokens are the
non-padding tokens (attention_mask == 1) of the training batches, summed over processes.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import metrics
from .errors import UserError

log = logging.getLogger("peftbench")


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf: the run stops instead of training through it."""


def encode(df, tokenizer, text_fields, max_length: int) -> list[dict]:
    """Tokenise a frame (one or two text fields + `label`) into per-example features, unpadded."""
    texts = [df[f].tolist() for f in text_fields]
    enc = tokenizer(*texts, truncation=True, max_length=max_length)
    labels = df["label"].tolist()
    return [{**{k: v[i] for k, v in enc.items()}, "labels": labels[i]} for i in range(len(df))]


def make_loader(features: list[dict], tokenizer, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """Batches padded to their longest example (dynamic padding)."""
    def collate(batch):
        return tokenizer.pad(batch, return_tensors="pt")

    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(features, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, generator=generator)


@dataclass
class FitResult:
    metrics: dict  # the final evaluation
    best: dict | None  # {"step", "metric", "score", "metrics"}: the best evaluation by metric_for_best
    eval_history: list = field(default_factory=list)  # [{"step": s, **metrics}]
    loss_history: list = field(default_factory=list)  # [[step, mean loss since the last record]]
    steps: int = 0
    samples: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0


@torch.no_grad()
def evaluate(model, eval_loaders: dict, task, accelerator) -> dict:
    """Metrics on every eval split; predictions are gathered across processes without duplicates."""
    if task.kind != "classification":  # generation, multiple choice, seq2seq, images: peftbench/kinds
        from .kinds import evaluate as evaluate_kind

        return evaluate_kind(model, eval_loaders, task, accelerator)
    model.eval()
    regression = not task.label_names
    out = {}
    for loader, suffix in eval_loaders.values():
        preds, refs = [], []
        for batch in loader:
            labels = batch.pop("labels")
            logits = model(**batch).logits
            pred = logits.squeeze(-1).float() if regression else logits.argmax(-1)
            pred, labels = accelerator.gather_for_metrics((pred, labels))
            preds.append(pred.cpu())
            refs.append(labels.cpu())
        out.update(metrics.compute(task.metrics, torch.cat(preds).numpy(), torch.cat(refs).numpy(), suffix))
    model.train()
    return out


def fit(model, train_loader, eval_loaders: dict, cfg, accelerator, best_metric: str) -> FitResult:
    t = cfg.train
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UserError(f"method '{cfg.method.name}' left no trainable parameters on model '{cfg.model.name}'.")
    optimizer = torch.optim.AdamW([
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": t.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},  # biases, norms
    ], lr=t.lr)
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    eval_loaders = {s: (accelerator.prepare(loader), suffix) for s, (loader, suffix) in eval_loaders.items()}
    steps_per_epoch = max(1, math.ceil(len(train_loader) / t.grad_accum))
    total = t.max_steps if t.max_steps > 0 else max(1, math.ceil(t.epochs * steps_per_epoch))
    # The scheduler is stepped by hand once per optimizer step (not prepared: accelerate would step it
    # once per process), so warmup and decay are in optimizer steps whatever the process count.
    from transformers import get_linear_schedule_with_warmup
    scheduler = get_linear_schedule_with_warmup(optimizer, int(t.warmup_ratio * total), total)

    result = FitResult(metrics={}, best=None)
    show_bar = accelerator.is_main_process and sys.stderr.isatty()
    bar = tqdm(total=total, desc="train", unit="step", dynamic_ncols=True, disable=not show_bar)
    log.info("training %d steps (%d per epoch, batch %d x %d accumulation x %d processes)", total,
             steps_per_epoch, t.batch_size, t.grad_accum, accelerator.num_processes)
    after_step = getattr(accelerator.unwrap_model(model), "peftbench_after_step", None)  # AdaLoRA's allocator
    window, samples, tokens = [], 0, 0
    model.train()
    start = time.perf_counter()
    while result.steps < total:
        for batch in train_loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                if not torch.isfinite(loss):
                    raise NonFiniteLoss(f"loss is {loss.item()} at step {result.steps + 1}: lower train.lr, "
                                        "check the labels, or use hardware.mixed_precision=no.")
                accelerator.backward(loss)
                if accelerator.sync_gradients and t.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(params, t.max_grad_norm)
                optimizer.step()
                if after_step is not None and accelerator.sync_gradients:
                    after_step(result.steps)
                optimizer.zero_grad()
            samples += batch["labels"].shape[0]
            tokens += int(batch["attention_mask"].sum()) if "attention_mask" in batch else 0  # images: none
            window.append(loss.detach())
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            result.steps += 1
            step = result.steps
            if step % t.log_every == 0 or step == total:
                mean_loss = torch.stack(window).float().mean().item()
                window = []
                result.loss_history.append([step, round(mean_loss, 6)])
                lr = scheduler.get_last_lr()[0]
                bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.1e}", refresh=False)
                if not show_bar and accelerator.is_main_process:
                    rate = samples / max(time.perf_counter() - start - result.eval_seconds, 1e-9)
                    log.info("step %d/%d  loss %.4f  lr %.2e  %.1f samples/s", step, total, mean_loss, lr, rate)
            bar.update(1)
            if step == total or (t.eval_every and step % t.eval_every == 0):
                _eval_and_track(model, eval_loaders, cfg, accelerator, result, best_metric)
            if step >= total:
                break
    bar.close()
    result.train_seconds = time.perf_counter() - start - result.eval_seconds
    counts = accelerator.reduce(torch.tensor([samples, tokens], device=accelerator.device), reduction="sum")
    result.samples, result.tokens = (int(x) for x in counts.tolist())
    return result


def _eval_and_track(model, eval_loaders, cfg, accelerator, result: FitResult, best_metric: str) -> None:
    started = time.perf_counter()
    scores = evaluate(model, eval_loaders, cfg.task, accelerator)
    result.eval_seconds += time.perf_counter() - started
    result.metrics = scores
    result.eval_history.append({"step": result.steps, **scores})
    log.info("eval at step %d: %s", result.steps, "  ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    if result.best is None or scores[best_metric] > result.best["score"]:
        result.best = {"step": result.steps, "metric": best_metric, "score": scores[best_metric],
                       "metrics": scores}
