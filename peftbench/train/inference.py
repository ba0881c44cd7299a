"""Inference cost of the trained model (`train.inference_cost=true`): per-example latency of the forward
pass at batch 1 and at `train.eval_batch_size`, with the method unmerged and then merged into the base
weights (`Method.merge`, for every method that registers one), and whether the merged model's outputs
equal the unmerged ones. Users choose between keeping an adapter separate and merging it on this figure.

Protocol: the first `train.inference_examples` examples of the first eval split, batched as evaluation
batches them (padded to the batch's longest example), labels left out. `REPEATS` rounds time the
unmerged model; for a method that can fold in and back out (`Method.toggle`: peft's merge_adapter /
unmerge_adapter) each round also times it merged, so a machine whose load changes during the
measurement favours neither; each timed pass follows an untimed one; the figure is the median pass time
divided by the examples, in ms. On CUDA the clock synchronises the device. Forward pass only: generation
tasks time one pass over the prompt, not decoding; seq2seq tasks (which need decoder inputs) are not timed.

Finally `Method.merge` merges in place (one more timed round, and the merged outputs compared with
the unmerged ones), so this runs last, after the trained tensors are saved: merging a large model into a
copy would need twice its memory.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.utils.data import DataLoader, Subset

REPEATS = 3
INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids", "pixel_values")


def _batches(loader, examples: int, batch_size: int, device) -> list[dict]:
    subset = Subset(loader.dataset, range(min(examples, len(loader.dataset))))
    out = []
    for batch in DataLoader(subset, batch_size=batch_size, collate_fn=loader.collate_fn):
        out.append({k: v.to(device) for k, v in batch.items() if k in INPUT_KEYS})
    return out


@torch.no_grad()
def _time(model, batches: list[dict], sync, autocast) -> tuple[float, torch.Tensor]:
    """(seconds of one timed pass over `batches` after an untimed one, the last batch's logits)."""
    def one_pass():
        with autocast():
            for batch in batches:
                logits = model(**batch).logits
        return logits

    one_pass()  # warm-up: lazy initialisation, allocator growth, a just-merged weight's first use
    sync()
    began = time.perf_counter()
    logits = one_pass()
    sync()
    return time.perf_counter() - began, logits.float()


MERGE_ERRORS = (AttributeError, ValueError, NotImplementedError, TypeError)  # peft's answers for its methods


def merge(model, method):
    """(merged model, None) through `method.merge`, in place; (None, reason) where the method does not
    merge (`Method.merge` is None) or its merge refuses this model."""
    if method.merge is None:
        return None, "the method does not fold into the base weights (it registers no Method.merge)"
    try:
        return method.merge(model), None
    except MERGE_ERRORS as exc:
        return None, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"


def measure_inference(model, loader, cfg, accelerator, method) -> dict:
    """The run file's `inference` block (README.md, "Run files"); `loader`: the first eval split's loader;
    `method`: the run's `Method` record."""
    t = cfg.train
    if cfg.task.kind == "seq2seq":
        return {"skipped": "seq2seq tasks: the forward pass needs decoder inputs; not timed"}
    device = accelerator.device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    model = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    model.eval()
    sizes = {"batch_1": 1, "eval_batch": t.eval_batch_size}
    batches = {name: _batches(loader, t.inference_examples, size, device) for name, size in sizes.items()}
    examples = sum(len(next(iter(b.values()))) for b in batches["batch_1"])

    def one_round(m, out: dict) -> torch.Tensor:
        logits = None
        for name, bs in batches.items():
            seconds, logits = _time(m, bs, sync, accelerator.autocast)
            out.setdefault(name, []).append(seconds)
        return logits  # the eval-batch pass's last batch

    def per_example(out: dict) -> dict:
        return {name: round(1000 * statistics.median(s) / examples, 4) for name, s in out.items()}

    unmerged, merged, before = _alternate(model, method, one_round)
    merged_model, reason = merge(model, method)
    rounds = ("rounds that alternate unmerged and merged" if merged else "rounds of the unmerged model"
              + (", then one round merged" if merged_model is not None else ""))  # no Method.toggle, or no merge
    record = {"examples": examples, "eval_batch_size": t.eval_batch_size, "repeats": REPEATS,
              "unmerged_ms_per_example": per_example(unmerged), "merged_ms_per_example": None,
              "merge": reason or method.merge.__name__, "merged_max_abs_diff": None,
              "measured": f"forward pass, median over {rounds}, per example"}
    if merged_model is not None:
        merged_model.eval()
        after = one_round(merged_model, merged)  # the merged model: one more round, and its outputs
        record["merged_ms_per_example"] = per_example(merged)
        record["merged_max_abs_diff"] = float((after - before).abs().max())
    return record


def _alternate(model, method, one_round) -> tuple[dict, dict, torch.Tensor]:
    """(unmerged pass times, merged pass times, the unmerged outputs) over REPEATS rounds; the merged
    times only where `method.toggle` folds the method in and back out (else merged is timed at the end)."""
    unmerged, merged, before = {}, {}, None
    alternate = method.toggle is not None
    for _ in range(REPEATS):
        before = one_round(model, unmerged)
        if alternate:
            try:
                method.toggle(model, True)
            except MERGE_ERRORS:
                alternate = False  # Method.merge below says why
                continue
            one_round(model, merged)
            method.toggle(model, False)
    return unmerged, merged if alternate else {}, before
