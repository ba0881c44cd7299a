"""Token classification data: CoNLL files (token ... tag per line) and the hub's layout (token lists,
tag ids), read into the same frame."""

import pandas as pd
import pytest

from conftest import make_cfg
from peftbench.errors import UserError
from peftbench.tasks import load_task

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O

Peter\tNNP\tB-NP\tB-PER
Blackburn\tNNP\tI-NP\tI-PER
"""


def task(*overrides):
    return make_cfg("task=conll2003", *overrides).task


def test_conll_files_are_read_as_sentences_and_docstart_is_skipped(tmp_path):
    (tmp_path / "train.txt").write_text(CONLL)
    (tmp_path / "valid.txt").write_text(CONLL.split("\n\n", 2)[2])  # the second sentence only
    data = load_task(task(f"task.data_dir={tmp_path}"))
    assert data.train["tokens"].tolist() == [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]]
    # ids in label_names' order: O, B-PER, I-PER, B-ORG, I-ORG, B-LOC, I-LOC, B-MISC, I-MISC
    assert data.train["tags"].tolist() == [[3, 0, 7, 0], [1, 2]]
    assert data.evals["validation"]["tags"].tolist() == [[1, 2]]
    assert data.num_labels == 9


def test_hub_layout_with_tag_ids_gives_the_same_frame(tmp_path):
    rows = pd.DataFrame({"tokens": [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]],
                         "ner_tags": [[3, 0, 7, 0], [1, 2]]})
    rows.to_json(tmp_path / "train.jsonl", orient="records", lines=True)
    rows.to_json(tmp_path / "validation.jsonl", orient="records", lines=True)
    data = load_task(task(f"task.data_dir={tmp_path}"))
    assert data.train["tags"].tolist() == [[3, 0, 7, 0], [1, 2]]


def test_a_tag_outside_label_names_is_named(tmp_path):
    (tmp_path / "train.txt").write_text("EU NNP B-NP B-CORP\n")
    (tmp_path / "valid.txt").write_text("EU NNP B-NP B-ORG\n")
    with pytest.raises(UserError, match="B-CORP"):
        load_task(task(f"task.data_dir={tmp_path}"))


def test_a_line_without_a_tag_is_refused_with_its_line_number(tmp_path):
    (tmp_path / "train.txt").write_text("EU B-ORG\nrejects\n")
    (tmp_path / "valid.txt").write_text("EU B-ORG\n")
    with pytest.raises(UserError, match="line 2"):
        load_task(task(f"task.data_dir={tmp_path}"))


def test_demo_ner_is_generated_offline_with_iob2_tags():
    data = load_task(make_cfg("task=demo_ner").task)
    assert len(data.train) == 3000 and len(data.evals["validation"]) == 500
    assert all(len(t) == len(g) for t, g in zip(data.train["tokens"], data.train["tags"]))
