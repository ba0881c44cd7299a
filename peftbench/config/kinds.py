"""Task kinds and the task-file schema checks: which fields, metrics and model class each kind has.

A task is one YAML file, `peftbench/conf/task/<name>.yaml` (schema: `TaskConfig`). Every kind reads its data the
same way and differs in its fields:

| kind | model class | fields | metrics |
|---|---|---|---|
| classification | AutoModelForSequenceClassification | text_fields (1 or 2), label_field, label_names | accuracy, f1, matthews_correlation, pearson, spearmanr |
| generation | AutoModelForCausalLM | template (or one text field), target_field, extract, stop, max_new_tokens | exact_match, rouge1, rouge2, rougel |
| multiple_choice | AutoModelForCausalLM | template, choices_field / choice_fields / choices, label_field (+ label_names) | accuracy, accuracy_norm |
| seq2seq | AutoModelForSeq2SeqLM | template (or one text field), target_field, max_new_tokens | exact_match, rouge1, rouge2, rougel |
| image_classification | AutoModelForImageClassification | image_field, label_field, label_names | accuracy, f1, matthews_correlation |
| audio_classification | AutoModelForAudioClassification | audio_field, label_field, label_names | accuracy, f1, matthews_correlation |
| token_classification | AutoModelForTokenClassification | text_fields (the token-list column), label_field (tags), label_names | entity_f1, entity_precision, entity_recall, token_accuracy |

Checks: `kind_problems` (values, before the run), `check_task_file` (unknown fields, before Hydra
composes); a template naming a column the data lacks fails when the data loads (tasks/spec.py).
"""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass
from pathlib import Path

from ..errors import did_you_mean, unknown_name
from .schema import TaskConfig

TEXT_METRICS = ("exact_match", "rouge1", "rouge2", "rougel")


@dataclass(frozen=True)
class Kind:
    auto_class: str  # the transformers Auto class the model is built with
    metrics: tuple[str, ...]  # the metrics that apply
    fields: tuple[str, ...]  # the kind-specific task fields it reads
    new_head: bool = False  # the head is built for the task's labels (num_labels), not taken from the checkpoint
    # model.pooling: "applies" (a head on one vector per sequence), "ignored" (a head on every token: the
    # model file's choice has no meaning there) or "refused" (a kind whose model has no such head)
    pooling: str = "refused"


KINDS = {
    "classification": Kind("AutoModelForSequenceClassification",
                           ("accuracy", "f1", "matthews_correlation", "pearson", "spearmanr"), ("text_fields",),
                           pooling="applies"),
    "generation": Kind("AutoModelForCausalLM", TEXT_METRICS,
                       ("template", "text_fields", "target_field", "extract", "stop", "max_new_tokens")),
    "multiple_choice": Kind("AutoModelForCausalLM", ("accuracy", "accuracy_norm"),
                            ("template", "text_fields", "choices_field", "choice_fields", "choices")),
    "seq2seq": Kind("AutoModelForSeq2SeqLM", TEXT_METRICS,
                    ("template", "text_fields", "target_field", "extract", "stop", "max_new_tokens")),
    "image_classification": Kind("AutoModelForImageClassification", ("accuracy", "f1", "matthews_correlation"),
                                 ("image_field",), new_head=True),
    "audio_classification": Kind("AutoModelForAudioClassification", ("accuracy", "f1", "matthews_correlation"),
                                 ("audio_field",), new_head=True),
    "token_classification": Kind("AutoModelForTokenClassification",
                                 ("entity_f1", "entity_precision", "entity_recall", "token_accuracy"),
                                 ("text_fields",), new_head=True, pooling="ignored"),
}
# Kind-specific fields with a non-null default: only flagged as misplaced when changed from it.
_DEFAULTS = {"text_fields": [], "stop": [], "max_new_tokens": 32, "image_field": "image", "audio_field": "audio"}
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
    problems += _span_problems(task)
    if task.kind in ("image_classification", "audio_classification", "token_classification") and (not task.label_names
                                                                          or len(task.label_names) < 2):
        problems.append(f"task '{name}' ({task.kind}): task.label_names must list the >= 2 classes.")
    if task.extract is not None and task.extract not in EXTRACT:
        problems.append(f"task.extract='{task.extract}': choose one of {', '.join(EXTRACT)} (or null: the "
                        "whole answer).")
    if task.max_new_tokens < 1:
        problems.append(f"task.max_new_tokens={task.max_new_tokens}: must be >= 1.")
    return problems


def _span_problems(task) -> list[str]:
    """Token classification: one column of token lists."""
    fields = list(task.text_fields)
    if task.kind == "token_classification" and len(fields) > 1:
        return [f"task '{task.name}' (token_classification): task.text_fields names the one column of token "
                f"lists; got {fields}. Set task.text_fields=[tokens]."]
    return []


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

    data = OmegaConf.to_container(OmegaConf.load(path))
    valid = [f.name for f in dataclasses.fields(TaskConfig)]
    problems = []
    for key in data or {}:
        if key in valid or key == "defaults" or str(key).startswith("_"):
            continue
        problems.append(f"{path}: unknown task field '{key}'.{did_you_mean(key, valid)} Valid fields: {', '.join(valid)}.")
    return problems
