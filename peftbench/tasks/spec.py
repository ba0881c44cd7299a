"""A task is one YAML file, `conf/task/<name>.yaml`: what data, which fields, which kind, which metric.

Every kind reads its data the same way (hub id with `dataset`/`subset`, or local files with
`data_dir`, `files` or `data_files`; splits `train_split`/`eval_splits`) and differs in its fields:

| kind | model class | fields | metrics |
|---|---|---|---|
| classification | AutoModelForSequenceClassification | text_fields (1 or 2), label_field, label_names | accuracy, f1, matthews_correlation, pearson, spearmanr |
| generation | AutoModelForCausalLM | template (or one text field), target_field, extract, stop, max_new_tokens | exact_match, rouge1, rouge2, rougel |
| multiple_choice | AutoModelForCausalLM | template, choices_field / choice_fields / choices, label_field (+ label_names) | accuracy, accuracy_norm |
| seq2seq | AutoModelForSeq2SeqLM | template (or one text field), target_field, max_new_tokens | exact_match, rouge1, rouge2, rougel |
| image_classification | AutoModelForImageClassification | image_field, label_field, label_names | accuracy, f1, matthews_correlation |

`template` is a Python format string over the data's columns ("Question: {question}\\nAnswer:");
`target_delimiter` (default " ") goes between the prompt and the answer or each choice. Checks:
`kind_problems` (values, before the run), `check_task_file` (unknown fields, before Hydra composes),
and a template naming a column the data lacks fails when the data loads, naming the column.
"""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError, did_you_mean, unknown_name

TEXT_METRICS = ("exact_match", "rouge1", "rouge2", "rougel")


@dataclass(frozen=True)
class Kind:
    auto_class: str  # the transformers Auto class the model is built with
    metrics: tuple[str, ...]  # the metrics that apply
    fields: tuple[str, ...]  # the kind-specific task fields it reads


KINDS = {
    "classification": Kind("AutoModelForSequenceClassification",
                           ("accuracy", "f1", "matthews_correlation", "pearson", "spearmanr"), ("text_fields",)),
    "generation": Kind("AutoModelForCausalLM", TEXT_METRICS,
                       ("template", "text_fields", "target_field", "extract", "stop", "max_new_tokens")),
    "multiple_choice": Kind("AutoModelForCausalLM", ("accuracy", "accuracy_norm"),
                            ("template", "text_fields", "choices_field", "choice_fields", "choices")),
    "seq2seq": Kind("AutoModelForSeq2SeqLM", TEXT_METRICS,
                    ("template", "text_fields", "target_field", "extract", "stop", "max_new_tokens")),
    "image_classification": Kind("AutoModelForImageClassification", ("accuracy", "f1", "matthews_correlation"),
                                 ("image_field",)),
}
# Kind-specific fields with a non-null default: only flagged as misplaced when changed from it.
_DEFAULTS = {"text_fields": [], "stop": [], "max_new_tokens": 32, "image_field": "image"}
EXTRACT = ("number",)


def template_columns(template: str) -> list[str]:
    """The column names a template's {placeholders} use ('{a} and {b}' -> [a, b])."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def kind_problems(task) -> list[str]:
    """Value checks for the task's kind; each message names the key, the bad value and the fix."""
    if task.kind not in KINDS:
        return [str(unknown_name("task kind", task.kind, KINDS, hint="Set task.kind to one of them."))]
    kind, name, problems = KINDS[task.kind], task.name, []
    for metric in task.metrics:
        if metric not in kind.metrics:
            problems.append(f"task '{name}': metric '{metric}' does not apply to kind {task.kind}. "
                            f"Choose from: {', '.join(kind.metrics)}.")
    for key, default in _DEFAULTS.items():
        if key not in kind.fields and _value(task[key]) != default:
            problems.append(f"task.{key}: not used by kind {task.kind} (only by "
                            f"{', '.join(k for k, v in KINDS.items() if key in v.fields)}); remove it.")
    for key in ("template", "target_field", "choices_field", "choice_fields", "choices", "extract"):
        if task[key] is not None and key not in kind.fields:
            problems.append(f"task.{key}: not used by kind {task.kind} (only by "
                            f"{', '.join(k for k, v in KINDS.items() if key in v.fields)}); remove it.")
    if task.kind in ("generation", "multiple_choice", "seq2seq"):
        problems += _prompt_problems(task)
    if task.kind in ("generation", "seq2seq") and not task.target_field:
        problems.append(f"task '{name}' (kind {task.kind}): set task.target_field, the column with the answer.")
    if task.kind == "multiple_choice":
        given = [k for k in ("choices_field", "choice_fields", "choices") if task[k]]
        if len(given) != 1:
            problems.append(f"task '{name}' (multiple_choice): set exactly one of choices_field (a column of "
                            f"lists), choice_fields (one column per choice) or choices (fixed); got "
                            f"{', '.join(given) or 'none'}.")
    if task.kind == "image_classification" and (not task.label_names or len(task.label_names) < 2):
        problems.append(f"task '{name}' (image_classification): task.label_names must list the >= 2 classes.")
    if task.extract is not None and task.extract not in EXTRACT:
        problems.append(f"task.extract='{task.extract}': choose one of {', '.join(EXTRACT)} (or null: the "
                        "whole answer).")
    if task.max_new_tokens < 1:
        problems.append(f"task.max_new_tokens={task.max_new_tokens}: must be >= 1.")
    return problems


def _value(node):
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node) if OmegaConf.is_config(node) else node


def _prompt_problems(task) -> list[str]:
    if task.template is None:
        if len(task.text_fields) != 1:
            return [f"task '{task.name}' (kind {task.kind}): set task.template (e.g. \"Question: {{question}}"
                    f"\\nAnswer:\") or one text field; got text_fields={list(task.text_fields)}."]
        return []
    try:
        columns = template_columns(task.template)
    except ValueError as exc:
        return [f"task.template={task.template!r}: {exc} (write a literal brace as {{{{ or }}}})."]
    bad = [c for c in columns if not c.isidentifier()]
    if bad:
        return [f"task.template={task.template!r}: placeholder {{{bad[0]}}} is not a column name; use "
                "{column} placeholders only."]
    return []


def check_task_file(path: str | Path) -> list[str]:
    """Unknown fields in a task YAML file, each with the closest valid field and the list of them."""
    from omegaconf import OmegaConf

    from ..config import TaskConfig

    data = OmegaConf.to_container(OmegaConf.load(path))
    valid = [f.name for f in dataclasses.fields(TaskConfig)]
    problems = []
    for key in data or {}:
        if key in valid or key == "defaults" or str(key).startswith("_"):
            continue
        problems.append(f"{path}: unknown task field '{key}'.{did_you_mean(key, valid)} Valid fields: {', '.join(valid)}.")
    return problems


def fill(template: str, row: dict, task: str, origin: str) -> str:
    try:
        return template.format(**row)
    except KeyError as exc:
        column = exc.args[0]
        raise UserError(f"task '{task}', {origin}: the template uses column '{column}', which the data does not "
                        f"have.{did_you_mean(column, row)} Columns there: {', '.join(map(str, row))}.") from None


def normalise(task, df, origin: str):
    """The frame a kind trains and evaluates on: generation/seq2seq `prompt`, `target`; multiple choice
    `prompt`, `choices`, `label`; image classification `image`, `label`."""
    import pandas as pd

    from .loading import _label_ids, require_columns

    needed = [task.label_field] if task.kind in ("multiple_choice", "image_classification") else []
    needed += [task.target_field] if task.kind in ("generation", "seq2seq") else []
    needed += list(task.choice_fields or []) + ([task.choices_field] if task.choices_field else [])
    needed += [task.image_field] if task.kind == "image_classification" else []
    needed += list(task.text_fields) if task.template is None and task.kind != "image_classification" else []
    require_columns(task, df, needed, origin)
    out = pd.DataFrame(index=df.index)
    rows = df.to_dict("records")
    if task.kind == "image_classification":
        folder = Path(task.data_dir).expanduser() if task.data_dir else None
        out["image"] = [_image_ref(v, folder) for v in df[task.image_field]]
        out["label"] = _label_ids(df[task.label_field], list(task.label_names), task.name, origin)
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
        out["label"] = _label_ids(df[task.label_field], list(task.label_names), task.name, origin)
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


def _image_ref(value, folder: Path | None):
    """A file path (relative to data_dir), the hub's {'bytes', 'path'} record, or an array: kept as it
    is; the image is read when its batch is made."""
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
