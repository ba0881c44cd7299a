"""File layouts of the span task kinds, read into the hub's column layout, and their frames checked.

- CoNLL (`.txt`, `.conll`, `.iob`): one token per line, the token first and its tag last, separated by
  tabs or spaces (CoNLL-2003's `EU NNP B-NP B-ORG`); a blank line between sentences; `-DOCSTART-` lines
  skipped. Read as the hub's layout: a column of token lists and a column of tag lists.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from .spec import label_ids, require_columns

CONLL_SUFFIXES = (".txt", ".conll", ".iob")
SPAN_KINDS = ("token_classification",)


def read_conll(path: Path, tokens: str = "tokens", tags: str = "ner_tags") -> pd.DataFrame:
    """A CoNLL file as a frame of sentences: `tokens` (token lists) and `tags` (tag lists)."""
    sentences, words, labels = [], [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            parts = line.split()
            if parts and parts[0] == "-DOCSTART-":
                continue
            if not parts:
                if words:
                    sentences.append((words, labels))
                words, labels = [], []
                continue
            if len(parts) < 2:
                raise UserError(f"{path}: line {number} ({line.strip()!r}) has a token but no tag. CoNLL files hold "
                                "the token first and its tag last on each line, a blank line between sentences.")
            words.append(parts[0])
            labels.append(parts[-1])
    if words:
        sentences.append((words, labels))
    if not sentences:
        raise UserError(f"{path}: no sentences (CoNLL layout: token ... tag per line, blank lines between sentences).")
    return pd.DataFrame(sentences, columns=[tokens, tags])


def as_list(value) -> list:
    """A hub list cell (a numpy array after `to_pandas`), a JSON list, or a list: as a list."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value.split()
    return list(value)


def span_frame(task, df: pd.DataFrame, origin: str) -> pd.DataFrame:
    """The frame a span kind trains on. token_classification: `tokens` (lists of str), `tags` (lists of
    label ids: names, or ids as the hub stores them)."""
    column = (list(task.text_fields) or ["tokens"])[0]
    require_columns(task, df, [column, task.label_field], origin)
    tokens = [[str(t) for t in as_list(v)] for v in df[column]]
    names = list(task.label_names)
    tags = []
    for row, (words, value) in enumerate(zip(tokens, df[task.label_field])):
        ids = label_ids(pd.Series(as_list(value), dtype=object), names, task.name, f"{origin}, row {row}")
        if len(ids) != len(words):
            raise UserError(f"task '{task.name}', {origin}: row {row} has {len(words)} tokens but {len(ids)} "
                            "tags; each token needs one tag.")
        tags.append(ids)
    return pd.DataFrame({"tokens": tokens, "tags": tags})
