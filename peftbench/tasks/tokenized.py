"""Tokenised splits, cached: a sweep tokenises each task once, not once per run.

`tokenize(df, tokenizer, text_fields, max_length, cache_dir)` returns a `TokenizedSplit` (a map-style
dataset of unpadded examples, as `tokenizer.pad` takes them) and where it came from: `memory` (an
earlier run in this process), `disk` (`<cache_dir>/tokenized/<key>.npz`, written by any earlier run,
e.g. another job of a joblib or SLURM sweep), or `miss` (tokenised now, then stored in both).
`cached(recipe_key(recipe, df, tokenizer), cache_dir, build)` does the same for any features built
from a frame (the other task kinds: peftbench/kinds), `recipe` saying how they are built.

The key hashes what the tokens depend on: the data itself (every text field and label of the loaded
split, so edited files, another generator argument or another subsample are new keys, while a touched
but unchanged file is not), the text fields, `max_length`, the tokenizer (its full serialised
definition for fast tokenizers: vocabulary, normaliser, special-token template, truncation side) and
the transformers/tokenizers versions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd

from .. import runfile

log = logging.getLogger("peftbench")

ENCODING_VERSION = 2  # bump when the encoding below changes, to invalidate every cached split
MEMORY_ENTRIES = 8  # splits kept in this process (a GLUE sweep: 8 tasks x train/eval fit in a few)
_MEMORY: OrderedDict[str, "TokenizedSplit"] = OrderedDict()


class TokenizedSplit:
    """Examples as dicts of token lists and integers (`{input_ids: [...], attention_mask: [...],
    labels: x}` for classification; prompts, answers and choice indices for the other kinds), stored
    as one flat int32 array plus offsets per list field and one array per integer field (compact in
    memory and on disk)."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.fields = [str(k) for k in arrays["fields"]]
        self.scalars = [str(k) for k in arrays["scalars"]]
        self._n = int(arrays["n"])

    @classmethod
    def from_features(cls, features: list[dict]) -> "TokenizedSplit":
        names = list(features[0]) if features else []
        ragged = [k for k in names if isinstance(features[0][k], list)]
        scalars = [k for k in names if k not in ragged]
        arrays = {"fields": np.array(ragged, dtype=str), "scalars": np.array(scalars, dtype=str),
                  "n": np.array(len(features))}
        for name in ragged:
            rows = [f[name] for f in features]
            lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
            arrays[f"{name}.offsets"] = np.concatenate([[0], np.cumsum(lengths)])
            arrays[f"{name}.values"] = np.fromiter((x for r in rows for x in r), dtype=np.int32,
                                                   count=int(lengths.sum()))
        for name in scalars:
            arrays[f"{name}.scalar"] = np.asarray([f[name] for f in features])
        return cls(arrays)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> dict:
        out = {}
        for name in self.fields:
            offsets = self.arrays[f"{name}.offsets"]
            out[name] = self.arrays[f"{name}.values"][offsets[i]:offsets[i + 1]].tolist()
        for name in self.scalars:
            out[name] = self.arrays[f"{name}.scalar"][i].item()
        return out


def encode(df: pd.DataFrame, tokenizer, text_fields, max_length: int) -> TokenizedSplit:
    """Tokenise a frame (one or two text fields + `label`), unpadded, truncated to `max_length`."""
    texts = [df[f].tolist() for f in text_fields]
    enc = dict(tokenizer(*texts, truncation=True, max_length=max_length))
    labels = df["label"].tolist()
    return TokenizedSplit.from_features([{**{k: v[i] for k, v in enc.items()}, "labels": labels[i]}
                                         for i in range(len(labels))])


def cache_key(df: pd.DataFrame, tokenizer, text_fields, max_length: int) -> str:
    """The key of a classification split (see `recipe_key`)."""
    return recipe_key({"text_fields": list(text_fields), "max_length": max_length,
                       "label_dtype": str(df["label"].dtype)}, df[[*text_fields, "label"]], tokenizer)


def recipe_key(recipe: dict, df: pd.DataFrame, tokenizer) -> str:
    """Hash of how the features are made (`recipe`), the frame they are made from and the tokenizer."""
    import tokenizers
    import transformers

    h = hashlib.sha256()
    h.update(json.dumps([ENCODING_VERSION, recipe, transformers.__version__, tokenizers.__version__],
                        sort_keys=True, default=str).encode())
    h.update(tokenizer_fingerprint(tokenizer).encode())
    lists = [c for c in df.columns if df[c].map(lambda v: isinstance(v, (list, tuple, np.ndarray))).any()]
    frame = df.assign(**{c: df[c].map(lambda v: json.dumps(list(v), default=str)) for c in lists})
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
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
    return cached(cache_key(df, tokenizer, text_fields, max_length), cache_dir,
                  lambda: encode(df, tokenizer, text_fields, max_length))


def cached(key: str, cache_dir: str | Path | None, build) -> tuple[TokenizedSplit, str]:
    """The split stored under `key` (memory, then disk), or `build()`'s features, then stored in both."""
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key], "memory"
    path = Path(cache_dir).expanduser() / "tokenized" / f"{key}.npz" if cache_dir else None
    split, how = None, "miss"
    if path is not None and path.is_file():
        try:
            with np.load(path) as npz:  # allow_pickle=False: a cache file is data, never code
                split, how = TokenizedSplit({k: npz[k] for k in npz.files}), "disk"
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("token cache %s is damaged (%s: %s): tokenising again and replacing it", path,
                        type(exc).__name__, exc)  # a cut-short .npz is a BadZipFile, which no OSError catches
            split = None
    if split is None:
        built = build()
        split = built if isinstance(built, TokenizedSplit) else TokenizedSplit.from_features(built)
        if path is not None:
            try:
                _save(path, split)
            except OSError as exc:  # a full disk, a read-only cache: the cache is optional, the run goes on
                log.warning("token cache %s not written (%s): the run goes on without it", path, exc)
    _MEMORY[key] = split
    while len(_MEMORY) > MEMORY_ENTRIES:
        _MEMORY.popitem(last=False)
    return split, how


def _save(path: Path, split: TokenizedSplit) -> None:
    """Temp file + rename: jobs of a sweep that tokenise the same split at once never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = runfile.mkstemp_shared(path, ".npz")
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
