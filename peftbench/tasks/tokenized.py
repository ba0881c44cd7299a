"""Tokenised splits, cached: a sweep tokenises each task once, not once per run.

`tokenize(df, tokenizer, text_fields, max_length, cache_dir)` returns a `TokenizedSplit` (a map-style
dataset of unpadded examples, as `tokenizer.pad` takes them) and where it came from: `memory` (an
earlier run in this process), `disk` (`<cache_dir>/tokenized/<key>.npz`, written by any earlier run,
e.g. another job of a joblib or SLURM sweep), or `miss` (tokenised now, then stored in both).

The key hashes what the tokens depend on: the data itself (every text field and label of the loaded
split, so edited files, another generator argument or another subsample are new keys, while a touched
but unchanged file is not), the text fields, `max_length`, the tokenizer (its full serialised
definition for fast tokenizers: vocabulary, normaliser, special-token template, truncation side) and
the transformers/tokenizers versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd

ENCODING_VERSION = 1  # bump when the encoding below changes, to invalidate every cached split
MEMORY_ENTRIES = 8  # splits kept in this process (a GLUE sweep: 8 tasks x train/eval fit in a few)
_MEMORY: OrderedDict[str, "TokenizedSplit"] = OrderedDict()


class TokenizedSplit:
    """Examples as `{input_ids: [...], attention_mask: [...], ..., labels: x}`, stored as one flat
    int32 array plus offsets per field (compact in memory and on disk)."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.fields = [str(k) for k in arrays["fields"]]
        self._labels = arrays["labels"]

    @classmethod
    def from_encoding(cls, enc: dict[str, list[list[int]]], labels: list) -> "TokenizedSplit":
        arrays = {"fields": np.array(list(enc)), "labels": np.asarray(labels)}
        for name, rows in enc.items():
            lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
            arrays[f"{name}.offsets"] = np.concatenate([[0], np.cumsum(lengths)])
            arrays[f"{name}.values"] = np.fromiter((x for r in rows for x in r), dtype=np.int32,
                                                   count=int(lengths.sum()))
        return cls(arrays)

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, i: int) -> dict:
        out = {}
        for name in self.fields:
            offsets = self.arrays[f"{name}.offsets"]
            out[name] = self.arrays[f"{name}.values"][offsets[i]:offsets[i + 1]].tolist()
        out["labels"] = self._labels[i].item()
        return out


def encode(df: pd.DataFrame, tokenizer, text_fields, max_length: int) -> TokenizedSplit:
    """Tokenise a frame (one or two text fields + `label`), unpadded, truncated to `max_length`."""
    texts = [df[f].tolist() for f in text_fields]
    enc = tokenizer(*texts, truncation=True, max_length=max_length)
    return TokenizedSplit.from_encoding(dict(enc), df["label"].tolist())


def cache_key(df: pd.DataFrame, tokenizer, text_fields, max_length: int) -> str:
    import tokenizers
    import transformers

    h = hashlib.sha256()
    h.update(json.dumps([ENCODING_VERSION, list(text_fields), max_length, str(df["label"].dtype),
                         transformers.__version__, tokenizers.__version__]).encode())
    h.update(tokenizer_fingerprint(tokenizer).encode())
    h.update(pd.util.hash_pandas_object(df[[*text_fields, "label"]], index=False).to_numpy().tobytes())
    return h.hexdigest()[:24]


def tokenizer_fingerprint(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # minus the truncation/padding state, which each call to the tokenizer sets
        definition = json.loads(backend.to_str())
        definition = json.dumps({k: v for k, v in definition.items() if k not in ("truncation", "padding")},
                                sort_keys=True)
    else:
        definition = repr(sorted(tokenizer.get_vocab().items()))
    extra = [type(tokenizer).__name__, tokenizer.truncation_side, tokenizer.padding_side,
             str(tokenizer.all_special_tokens)]
    return hashlib.sha256((definition + json.dumps(extra)).encode()).hexdigest()


def tokenize(df: pd.DataFrame, tokenizer, text_fields, max_length: int,
             cache_dir: str | Path | None) -> tuple[TokenizedSplit, str]:
    """(split, 'memory' | 'disk' | 'miss'); `cache_dir` None keeps only the in-process cache."""
    key = cache_key(df, tokenizer, text_fields, max_length)
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key], "memory"
    path = Path(cache_dir).expanduser() / "tokenized" / f"{key}.npz" if cache_dir else None
    split, how = None, "miss"
    if path is not None and path.is_file():
        try:
            with np.load(path) as npz:
                split, how = TokenizedSplit({k: npz[k] for k in npz.files}), "disk"
        except (OSError, ValueError, KeyError):  # a damaged file: tokenise again and replace it
            split = None
    if split is None:
        split = encode(df, tokenizer, text_fields, max_length)
        if path is not None:
            _save(path, split)
    _MEMORY[key] = split
    while len(_MEMORY) > MEMORY_ENTRIES:
        _MEMORY.popitem(last=False)
    return split, how


def _save(path: Path, split: TokenizedSplit) -> None:
    """Temp file + rename: jobs of a sweep that tokenise the same split at once never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **split.arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def clear_memory() -> None:
    """Forget the in-process cache (tests, benchmarks)."""
    _MEMORY.clear()
