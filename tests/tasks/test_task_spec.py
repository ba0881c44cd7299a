"""Tasks as YAML files: the example files validate, and each kind of mistake ends in a message that
names the bad value and the valid ones."""

import pytest

import taskdata
from conftest import make_cfg
from peftbench.config import CONF_DIR, check_config, group_options
from peftbench.errors import UserError
from peftbench.methods import METHODS
from peftbench.metrics import METRICS
from peftbench.methods.counting import build_counted
from peftbench.tasks import load_task
from peftbench.config import check_task_file

EXAMPLES = {  # task -> (kind, hub id, a model of the right type)
    "gsm8k": ("generation", "openai/gsm8k", "tiny-gpt2"),
    "boolq": ("multiple_choice", "google/boolq", "tiny-llama"),
    "piqa": ("multiple_choice", "baber/piqa", "tiny-gpt2"),
    "samsum": ("seq2seq", "knkarthick/samsum", "tiny-t5"),
    "cifar10": ("image_classification", "uoft-cs/cifar10", "tiny-vit"),
    "esc50": ("audio_classification", None, "tiny-ast"),  # local files only (ESC-50 layout)
}


def problems(*overrides):
    cfg = make_cfg(*overrides)
    return check_config(cfg, METHODS.get(cfg.method.name), METRICS.names())[1]


@pytest.mark.parametrize("task", group_options("task"))
def test_every_task_file_has_only_known_fields_and_valid_values(task):
    assert check_task_file(CONF_DIR / "task" / f"{task}.yaml") == []
    model = EXAMPLES.get(task, (None, None, "tiny"))[2]
    assert problems(f"task={task}", f"model={model}") == []


@pytest.mark.parametrize("task", EXAMPLES)
def test_example_tasks_name_their_hub_dataset_and_kind(task):
    kind, hub_id, _ = EXAMPLES[task]
    cfg = make_cfg(f"task={task}")
    assert (cfg.task.kind, cfg.task.dataset, cfg.task.name, cfg.task.version) == (kind, hub_id, task, "1")
    assert (CONF_DIR / "task" / f"{task}.yaml").read_text().startswith(f"# peftbench run task={task}")


def test_unknown_field_in_a_task_file_is_named_with_the_closest_and_the_valid_ones(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nkind: generation\ntempalte: '{q}'\ntarget_feild: a\nmetrics: [exact_match]\n")
    first, second = check_task_file(path)
    assert "unknown task field 'tempalte'. Did you mean 'template'?" in first
    assert "unknown task field 'target_feild'. Did you mean 'target_field'?" in second
    assert "Valid fields: name, dataset, subset," in first and "kind" in first


def test_unknown_kind_lists_the_kinds():
    [message] = problems("task=gsm8k", "task.kind=generaton")
    assert message == ("Unknown task kind 'generaton'. Did you mean 'generation'? Available: audio_classification, "
                       "classification, generation, image_classification, multiple_choice, seq2seq, token_classification. Set task.kind to one of them.")


def test_metric_of_another_kind_and_misplaced_fields_are_refused():
    found = problems("task=gsm8k", "task.metrics=[accuracy]", "task.main_metric=accuracy")
    assert found == ["task 'gsm8k': metric 'accuracy' does not apply to kind generation. "
                     "Choose from: exact_match, rouge1, rouge2, rougel."]
    found = problems("task=demo", "+task.template='{sentence}'", "task.extract=number")
    assert any(p.startswith("task.template: not used by kind classification (only by generation, "
                            "multiple_choice, seq2seq)") for p in found)
    assert any(p.startswith("task.extract: not used by kind classification") for p in found)


def test_kind_fields_are_required():
    assert any("set task.target_field" in p for p in problems("task=samsum", "task.target_field=null"))
    found = problems("task=piqa", "task.choice_fields=null")
    assert any("set exactly one of choices_field" in p and "got none" in p for p in found)
    found = problems("task=gsm8k", "task.template=null")
    assert any("set task.template" in p for p in found)
    assert any("task.extract='last'" in p for p in problems("task=gsm8k", "task.extract=last"))
    assert any("task.template=" in p and "{" in p for p in problems("task=gsm8k", "task.template='{question'"))


def test_template_with_a_missing_column_names_it_and_the_columns(tmp_path):
    data = taskdata.gsm8k(tmp_path / "gsm8k")
    cfg = make_cfg("task=gsm8k", f"task.data_dir={data}", "task.template='Q: {questoin}'")
    with pytest.raises(UserError, match=r"the template uses column 'questoin', which the data does not have\. "
                                        r"Did you mean 'question'\? Columns there: question, answer\."):
        load_task(cfg.task)


def test_missing_target_column_is_named(tmp_path):
    data = taskdata.samsum(tmp_path / "samsum")
    cfg = make_cfg("task=samsum", f"task.data_dir={data}", "task.target_field=abstract")
    with pytest.raises(UserError, match="missing column.s. abstract. Columns there: id, dialogue, summary"):
        load_task(cfg.task)


def test_frames_per_kind_and_data_files(tmp_path):
    data = taskdata.piqa(tmp_path / "piqa")
    piqa = load_task(make_cfg("task=piqa", f"task.data_dir={data}").task).evals["validation"]
    assert list(piqa.columns) == ["prompt", "choices", "label"]
    assert piqa["prompt"][0] == "Question: dry a wet cup number 0\nAnswer:"
    assert piqa["choices"][0] == ["use a towel", "put it in the sea for an hour"] and piqa["label"].tolist()[:2] == [0, 1]
    data = taskdata.boolq(tmp_path / "boolq")
    boolq = load_task(make_cfg("task=boolq", f"task.data_dir={data}").task).train
    assert boolq["choices"][0] == ["no", "yes"] and boolq["label"].tolist()[:2] == [1, 0]  # 0 is even: yes
    data = taskdata.samsum(tmp_path / "samsum")
    (data / "train.jsonl").rename(data / "my_train.jsonl")
    cfg = make_cfg("task=samsum", f"task.data_dir={data}", "+task.data_files={train: my_train.jsonl, "
                   "validation: validation.jsonl}")
    loaded = load_task(cfg.task)
    assert loaded.source.startswith("data_files:") and len(loaded.train) == 12
    assert loaded.train["prompt"][0].startswith("summarize: Anna:") and loaded.train["target"][0] == "Anna and Ben meet at 0."
    data = taskdata.cifar10(tmp_path / "cifar10")
    images = load_task(make_cfg("task=cifar10", f"task.data_dir={data}").task).train
    assert images["label"].tolist()[:4] == [3, 1, 2, 3]  # "cat" -> 3 by label_names, ids as they are
    assert images["image"][0] == str(data / "img0.npy")


@pytest.mark.parametrize("model, task, needs", [("tiny-t5", "gsm8k", "decoder-only"),
                                                ("tiny-gpt2", "samsum", "encoder-decoder"),
                                                ("tiny-gpt2", "cifar10", "image model")])
def test_a_model_of_the_wrong_type_for_the_kind_is_refused(model, task, needs):
    with pytest.raises(UserError, match=f"model '{model}' cannot be built as .*task kind .* Use (a|an) {needs}"):
        build_counted(make_cfg(f"model={model}", f"task={task}"), 2)


def test_cli_names_a_misspelt_task_field(monkeypatch, tmp_path):
    from peftbench.config import check_group_choices

    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "mine.yaml").write_text("name: mine\nkindd: generation\n")
    monkeypatch.setattr("peftbench.config.choices.CONF_DIR", tmp_path)
    monkeypatch.setattr("peftbench.config.choices.group_options", lambda group, folder=None: ["mine"])
    with pytest.raises(UserError, match="unknown task field 'kindd'. Did you mean 'kind'?"):
        check_group_choices(["task=mine"])
