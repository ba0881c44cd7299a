import json

import pytest

from conftest import make_cfg
from peftbench.errors import UserError
from peftbench.tasks import load_task
from peftbench.tasks.synthetic import sentiment, write_glue_tsv


def task_cfg(name, data_dir, *overrides):
    return make_cfg(f"task={name}", f"task.data_dir={data_dir}", *overrides).task


def test_sst2_from_glue_tsv_files(tmp_path):
    write_glue_tsv(tmp_path, n_train=50, n_eval=20)
    data = load_task(task_cfg("glue/sst2", tmp_path))
    assert len(data.train) == 50 and len(data.evals["validation"]) == 20
    assert set(data.train["label"]) <= {0, 1} and data.num_labels == 2
    assert data.source == f"data_dir:{tmp_path}"


def test_cola_headerless_tsv(tmp_path):
    rows = ["gj04\t1\t\tThe sailors rode the breeze clear of the rocks.",
            "gj04\t0\t*\tThe more we study verbs, the crazier they get get.",
            'gj04\t1\t\tShe said "hello" to me.']
    for name in ("train.tsv", "dev.tsv"):
        (tmp_path / name).write_text("\n".join(rows) + "\n")
    data = load_task(task_cfg("glue/cola", tmp_path))
    assert data.train["label"].tolist() == [1, 0, 1]
    assert data.train["sentence"][2] == 'She said "hello" to me.'  # GLUE TSVs are unquoted


def test_mnli_text_labels_aliases_and_two_dev_sets(tmp_path):
    header = "index\tsentence1\tsentence2\tgold_label\n"
    (tmp_path / "train.tsv").write_text(header + "0\tA man sleeps.\tA person rests.\tentailment\n"
                                                 "1\tA man sleeps.\tA man runs.\tcontradiction\n")
    (tmp_path / "dev_matched.tsv").write_text(header + "0\tIt rains.\tIt is wet.\tneutral\n")
    (tmp_path / "dev_mismatched.tsv").write_text(header + "0\tIt snows.\tIt is hot.\tcontradiction\n")
    data = load_task(task_cfg("glue/mnli", tmp_path))
    assert data.train["label"].tolist() == [0, 2] and data.num_labels == 3
    assert list(data.train.columns) == ["premise", "hypothesis", "label"]
    assert data.evals["validation_matched"]["label"].tolist() == [1]
    assert data.evals["validation_mismatched"]["label"].tolist() == [2]


def test_stsb_regression_from_csv(tmp_path):
    for name in ("train.csv", "dev.csv"):
        (tmp_path / name).write_text("sentence1,sentence2,score\nA cat.,A cat.,5.0\nA cat.,A car.,1.25\n")
    data = load_task(task_cfg("glue/stsb", tmp_path))
    assert data.train["label"].tolist() == [5.0, 1.25] and data.num_labels == 1


def test_rte_from_jsonl_with_label_ids(tmp_path):
    lines = [{"sentence1": "a", "sentence2": "b", "label": 1}, {"sentence1": "c", "sentence2": "d", "label": 0}]
    for name in ("train.jsonl", "validation.jsonl"):
        (tmp_path / name).write_text("\n".join(json.dumps(x) for x in lines))
    assert load_task(task_cfg("glue/rte", tmp_path)).train["label"].tolist() == [1, 0]


def test_missing_files_list_what_was_looked_for_and_found(tmp_path):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\nok\t1\n")
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(UserError) as info:
        load_task(task_cfg("glue/sst2", tmp_path))
    message = str(info.value)
    assert "no validation file" in message and "dev.tsv" in message and "notes.txt, train.tsv" in message


def test_missing_folder(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        load_task(task_cfg("glue/sst2", tmp_path / "nope"))


def test_label_mismatch_names_the_label_and_the_valid_ones(tmp_path):
    for name in ("train.tsv", "dev.tsv"):
        (tmp_path / name).write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tc\td\tmaybe\n")
    with pytest.raises(UserError, match=r"label 'maybe' in line 3 is not one of entailment, not_entailment"):
        load_task(task_cfg("glue/rte", tmp_path))  # the file's line number: the header is line 1


def test_a_bad_label_in_a_file_without_header_names_its_line(tmp_path):
    for name in ("train.tsv", "dev.tsv"):  # CoLA's TSVs have no header
        (tmp_path / name).write_text("gj04\t1\t\tA fine sentence.\ngj04\t7\t*\tSentence bad a.\n")
    with pytest.raises(UserError, match=r"label '7' in line 2 is not one of"):
        load_task(task_cfg("glue/cola", tmp_path))


def test_hidden_test_labels_are_explained(tmp_path):
    for name in ("train.tsv", "dev.tsv"):
        (tmp_path / name).write_text("sentence\tlabel\nfine\t-1\n")
    with pytest.raises(UserError, match="hidden test labels"):
        load_task(task_cfg("glue/sst2", tmp_path))


def test_missing_column_suggests_an_alias(tmp_path):
    for name in ("train.csv", "dev.csv"):
        (tmp_path / name).write_text("text,label\nfine,1\n")
    with pytest.raises(UserError, match=r"missing column\(s\) sentence. Columns there: text, label"):
        load_task(task_cfg("glue/sst2", tmp_path))


def test_subsampling_is_deterministic(tmp_path):
    write_glue_tsv(tmp_path, n_train=100, n_eval=10)
    cfg = task_cfg("glue/sst2", tmp_path, "task.max_train_samples=30")
    a, b = load_task(cfg, seed=1), load_task(cfg, seed=1)
    assert len(a.train) == 30 and a.train.equals(b.train)
    assert not a.train.equals(load_task(cfg, seed=2).train)


def test_demo_data_is_fixed_balanced_and_holds_out_words():
    a, b = sentiment(n_train=400, n_eval=400), sentiment(n_train=400, n_eval=400)
    assert a["train"].equals(b["train"])
    assert 0.4 < a["train"]["label"].mean() < 0.6
    train_words = set(" ".join(a["train"]["sentence"]).split())
    eval_words = set(" ".join(a["validation"]["sentence"]).split())
    assert eval_words - train_words  # some adjectives are seen only at evaluation


def test_hub_without_network_is_a_clear_error():
    cfg = make_cfg("task=glue/sst2").task
    with pytest.raises(UserError, match="Without network, point task.data_dir at local files"):
        load_task(cfg)


def test_a_local_hub_folder_that_cannot_load_names_the_folder(tmp_path):
    (tmp_path / "README.md").write_text("# no data files here\n")
    cfg = make_cfg("task=glue/sst2", f"task.dataset={tmp_path}").task
    with pytest.raises(UserError, match=f"cannot load '{tmp_path}' \\(sst2\\) from the folder {tmp_path}: "):
        load_task(cfg)
