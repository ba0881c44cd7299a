"""Causal and seq2seq language models: training features with the loss on the answer only, greedy
batched generation, and multiple choice scored by the log-likelihood of each choice: what the kinds
generation, multiple_choice and seq2seq share.

Prompt and answer are tokenised apart and concatenated (as lm-evaluation-harness does), so the
boundary is exact: the prompt's tokens are labelled -100 and only the answer's tokens, plus the end
of sequence, carry loss. Too long an example loses the start of its prompt, never its answer.
"""

from __future__ import annotations

import torch

from ... import metrics
from ...metrics import EXTRACTORS
from ...models import special_ids
from ...tasks.tokenized import cached, recipe_key
from ..batches import check_gathered

IGNORE = -100


def prompt_ids(tokenizer, text: str) -> list[int]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = special_ids(tokenizer)["bos"]
    return ([bos] if bos is not None else []) + ids


def answer_ids(tokenizer, text: str, eos: bool = True) -> list[int]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids + [special_ids(tokenizer)["eos"]] if eos else ids


def join(prompt: list[int], answer: list[int], max_length: int) -> tuple[list[int], int]:
    """(prompt + answer, prompt length) within max_length: the prompt loses its start first."""
    answer = answer[:max_length]
    keep = max_length - len(answer)
    prompt = prompt[len(prompt) - keep:] if keep > 0 else []
    return prompt + answer, len(prompt)


def causal_features(df, tokenizer, delimiter: str, max_length: int) -> list[dict]:
    """Training features for causal LMs (`prompt`, `target` columns): labels -100 on the prompt."""
    out = []
    for prompt, target in zip(df["prompt"], df["target"]):
        ids, n_prompt = join(prompt_ids(tokenizer, prompt), answer_ids(tokenizer, delimiter + target), max_length)
        out.append({"input_ids": ids, "attention_mask": [1] * len(ids),
                    "labels": [IGNORE] * n_prompt + ids[n_prompt:]})
    return out


def seq2seq_features(df, tokenizer, max_length: int, with_labels: bool = True) -> list[dict]:
    """Encoder inputs (the tokenizer's own special tokens) and decoder labels (answer + eos) for
    training; for evaluation the example's index instead of labels."""
    enc = tokenizer(list(df["prompt"]), truncation=True, max_length=max_length)
    out = []
    for i, target in enumerate(df["target"]):
        feature = {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i]}
        if with_labels:
            feature["labels"] = answer_ids(tokenizer, target)[-max_length:]
        else:
            feature["index"] = i
        out.append(feature)
    return out


def prompt_features(df, tokenizer, max_length: int) -> list[dict]:
    """Generation inputs for causal LMs: the prompt alone (its end kept), and the example's index."""
    return [{"input_ids": ids[-max_length:], "attention_mask": [1] * len(ids[-max_length:]), "index": i}
            for i, ids in enumerate(prompt_ids(tokenizer, p) for p in df["prompt"])]


def choice_features(df, tokenizer, delimiter: str, max_length: int) -> list[dict]:
    """One sequence per (example, choice): prompt + choice, with the choice's token count and its
    length in characters (for the length-normalised score)."""
    eos = special_ids(tokenizer)["eos"]
    out = []
    for i, (prompt, choices) in enumerate(zip(df["prompt"], df["choices"])):
        context = prompt_ids(tokenizer, prompt) or [eos]  # the first choice token needs a context
        for j, choice in enumerate(choices):
            answer = answer_ids(tokenizer, delimiter + choice, eos=False)
            ids, n_prompt = join(context, answer, max_length)
            out.append({"input_ids": ids, "attention_mask": [1] * len(ids), "example": i, "choice": j,
                        "n_answer": len(ids) - n_prompt, "chars": max(1, len(delimiter + choice))})
    return out


def collate(features: list[dict], pad_id: int, left: bool = False) -> dict:
    """Pad to the longest sequence: input_ids with pad_id, attention_mask with 0, labels with -100;
    `left=True` pads on the left (decoder-only generation). Other keys become tensors as they are."""
    width = max(len(f["input_ids"]) for f in features)
    batch: dict = {}
    for key, fill in (("input_ids", pad_id), ("attention_mask", 0), ("labels", IGNORE)):
        if key not in features[0]:
            continue
        size = width if key != "labels" else max(len(f[key]) for f in features)
        rows = [[fill] * (size - len(f[key])) + f[key] if left else f[key] + [fill] * (size - len(f[key]))
                for f in features]
        batch[key] = torch.tensor(rows)
    for key in features[0]:
        if key not in batch:
            batch[key] = torch.tensor([f[key] for f in features])
    return batch


def continuation_logprobs(model, batch) -> torch.Tensor:
    """Sum of log p(token | everything before it) over each sequence's last `n_answer` tokens
    (right-padded batch). The last input_ids.shape[1] logits are used, so virtual tokens that a
    prompt-tuning method puts in front do not shift the positions."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    logits = model(input_ids=ids, attention_mask=mask).logits[:, -ids.shape[1]:]
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    length = mask.sum(-1, keepdim=True)
    pos = torch.arange(ids.shape[1] - 1, device=ids.device)[None]  # logits[p] predicts ids[p + 1]
    scored = (pos >= length - batch["n_answer"][:, None] - 1) & (pos < length - 1)
    return (logp * scored).sum(-1)


@torch.no_grad()
def generate(model, batch, tokenizer, max_new_tokens: int, decoder_only: bool) -> torch.Tensor:
    """Greedy decoding, at most max_new_tokens new tokens: the new tokens only, right-padded."""
    ids = special_ids(tokenizer)
    out = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                         pad_token_id=ids["pad"], eos_token_id=ids["eos"])
    width = batch["input_ids"].shape[1]
    if decoder_only and out.shape[1] >= width and torch.equal(out[:, :width], batch["input_ids"]):
        out = out[:, width:]  # the prompt comes back in front of the answer
    return out


def decode(tokenizer, rows, stop: list[str]) -> list[str]:
    texts = tokenizer.batch_decode(rows, skip_special_tokens=True)
    out = []
    for text in texts:
        for s in stop:
            text = text.split(s)[0]
        out.append(text.strip())
    return out


def answers(texts: list[str], extract: str | None) -> list[str]:
    return [EXTRACTORS[extract](t) for t in texts] if extract else list(texts)


def cached_features(cfg, tokenizer, cache: dict):
    """`features(split, df, build, *args, **kwargs)`: `build(df, tokenizer, *args, **kwargs)` cached like
    classification's splits (tasks/tokenized.py); `cache[split]` says where each came from."""
    def features(split, df, build, *args, **kwargs):
        recipe = {"kind": cfg.task.kind, "features": build.__name__, "args": args, "kwargs": kwargs}
        out, cache[split] = cached(recipe_key(recipe, df, tokenizer), cfg.cache_dir,
                                   lambda: build(df, tokenizer, *args, **kwargs))
        return out

    return features


def score_generated(model, loader, accelerator, suffix, task, tokenizer, refs, decoder_only):
    """Greedy decoding of every example, then the task's metrics on the answers (after `extract`)."""
    pad = special_ids(tokenizer)["pad"]
    unwrapped = accelerator.unwrap_model(model)
    texts: dict[int, str] = {}
    for batch in loader:
        new = generate(unwrapped, batch, tokenizer, task.max_new_tokens, decoder_only)
        new = accelerator.pad_across_processes(new, dim=1, pad_index=pad)
        new, index = accelerator.gather_for_metrics((new, batch["index"]))
        texts.update(zip(index.tolist(), decode(tokenizer, new.cpu(), list(task.stop))))
    check_gathered(len(texts), len(refs))
    preds = answers([texts[i] for i in range(len(refs))], task.extract)
    golds = answers(refs, task.extract)
    return {m + suffix: metrics.METRICS.get(m)(preds, golds) for m in task.metrics}
