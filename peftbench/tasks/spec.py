"""What a task's data means: the columns a task file names, turned into the frame its kind trains on
(labels as ids, regression targets as floats, prompts from templates, choices, image references).

The task-file schema and each kind's fields and metrics are in peftbench/config/kinds.py. `template`
is a Python format string over the data's columns ("Question: {question}\\nAnswer:");
`target_delimiter` (default " ") goes between the prompt and the answer or each choice.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from ..errors import UserError, did_you_mean


def fill(template: str, row: dict, task: str, origin: str) -> str:
    try:
        return template.format(**row)
    except KeyError as exc:
        column = exc.args[0]
        raise UserError(f"task '{task}', {origin}: the template uses column '{column}', which the data does not "
                        f"have.{did_you_mean(column, row)} Columns there: {', '.join(map(str, row))}.") from None


def normalise(task, df, origin: str):
    """The frame a kind trains and evaluates on: generation/seq2seq `prompt`, `target`; multiple choice
    `prompt`, `choices`, `label`; image classification `image`, `label`; audio classification `audio`, `label`."""
    media = {"image_classification": ("image", task.image_field), "audio_classification": ("audio", task.audio_field)}
    needed = [task.label_field] if task.kind in ("multiple_choice", *media) else []
    needed += [task.target_field] if task.kind in ("generation", "seq2seq") else []
    needed += list(task.choice_fields or []) + ([task.choices_field] if task.choices_field else [])
    needed += [media[task.kind][1]] if task.kind in media else []
    needed += list(task.text_fields) if task.template is None and task.kind not in media else []
    require_columns(task, df, needed, origin)
    out = pd.DataFrame(index=df.index)
    rows = df.to_dict("records")
    if task.kind in media:  # images and audio: references, read when their batch is made
        folder = Path(task.data_dir).expanduser() if task.data_dir else None
        column, field = media[task.kind]
        out[column] = [_file_ref(v, folder) for v in df[field]]
        out["label"] = label_ids(df[task.label_field], list(task.label_names), task.name, origin)
        return out.reset_index(drop=True)
    if task.template is not None:
        out["prompt"] = [fill(task.template, row, task.name, origin) for row in rows]
    else:
        out["prompt"] = df[task.text_fields[0]].astype(str)
    if task.kind in ("generation", "seq2seq"):
        out["target"] = df[task.target_field].astype(str)
        return out.reset_index(drop=True)
    choices = _choices(task, df)
    out["choices"] = choices
    if task.label_names:
        out["label"] = label_ids(df[task.label_field], list(task.label_names), task.name, origin)
    else:
        out["label"] = _choice_ids(df[task.label_field], choices, task.name, origin)
    return out.reset_index(drop=True)


def _choices(task, df) -> list[list[str]]:
    if task.choices:
        return [list(map(str, task.choices))] * len(df)
    if task.choice_fields:
        return [[str(row[c]) for c in task.choice_fields] for row in df.to_dict("records")]
    return [[str(c) for c in value] for value in df[task.choices_field]]


def _choice_ids(values, choices: list[list[str]], task: str, origin: str) -> list[int]:
    """Labels as choice indices (0-based, ints or digit strings)."""
    ids = []
    for row, (value, options) in enumerate(zip(values, choices)):
        key = str(value).strip()
        key = key[:-2] if key.endswith(".0") else key
        if not key.isdigit() or int(key) >= len(options):
            raise UserError(f"task '{task}', {origin}: label '{value}' in row {row} is not a choice index "
                            f"0..{len(options) - 1} (set task.label_names if labels are names).")
        ids.append(int(key))
    return ids


def _file_ref(value, folder: Path | None):
    """A file path (relative to data_dir), the hub's {'bytes', 'path'} / {'array', 'sampling_rate'}
    record, or an array: kept as it is; the image or audio is read when its batch is made."""
    if isinstance(value, str) and folder is not None and not Path(value).is_absolute():
        return str(folder / value)
    return value


def read_data_files(task, read_file) -> dict:
    """`data_files: {split: file}`: each split from its own file (relative to data_dir if set)."""
    folder = Path(task.data_dir).expanduser() if task.data_dir else Path(".")
    raw = {}
    for split, name in task.data_files.items():
        path = Path(name).expanduser()
        path = path if path.is_absolute() else folder / path
        if not path.is_file():
            raise UserError(f"task.data_files.{split}={name}: no such file ({path}).")
        raw[split] = read_file(task, path)
    return raw


def require_columns(task: DictConfig, df: pd.DataFrame, needed: list[str], origin: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise UserError(f"task '{task.name}', {origin}: missing column(s) {', '.join(missing)}. "
                        f"Columns there: {', '.join(map(str, df.columns))}. "
                        "Map a file column with task.column_aliases='{file_column: field}'.")


def where(row: int, first_line: int | None) -> str:
    """`line 7` (the file's line, when the rows came from a file with lines), else `row 5` (0-based)."""
    return f"line {row + first_line}" if first_line else f"row {row}"


def label_ids(values: pd.Series, names: list[str], task: str, origin: str, first_line: int | None = None) -> list[int]:
    lookup = {name: i for i, name in enumerate(names)} | {str(i): i for i in range(len(names))}
    ids, bad = [], []
    for row, value in enumerate(values):
        key = str(value).strip()
        key = key[:-2] if key.endswith(".0") else key  # 1.0 -> 1 from float columns
        if key in lookup:
            ids.append(lookup[key])
        else:
            bad.append((row, value))
    if bad:
        row, value = bad[0]
        hint = " (-1 marks hidden test labels: evaluate on a labelled split)" if str(value).strip() == "-1" else ""
        raise UserError(f"task '{task}', {origin}: label '{value}' in {where(row, first_line)} is not one of "
                        f"{', '.join(names)} (or 0..{len(names) - 1}); {len(bad)} row(s) like it{hint}.")
    return ids


def floats(values: pd.Series, task: str, origin: str, first_line: int | None = None) -> list[float]:
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        row = int(numbers.isna().to_numpy().nonzero()[0][0])
        raise UserError(f"task '{task}', {origin}: label '{values.iloc[row]}' in {where(row, first_line)} is not a "
                        "number (this task is a regression).")
    return numbers.astype(float).tolist()
