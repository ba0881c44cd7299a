"""Task kind token_classification: first-subword labels, word-level scoring, and runs on the tiny model
with a peft method (lora), an in-house one (bitfit) and full fine-tuning, reported by `peftbench report`."""

import json

import pandas as pd
import pytest

import taskdata
from conftest import make_cfg
from peftbench.models import load_tokenizer
from peftbench.run.runner import run
from peftbench.train.kinds.token_classification import collate, word_features


def test_only_the_first_subword_of_a_word_carries_its_tag():
    tokenizer = load_tokenizer(make_cfg("model=tiny").model)
    df = pd.DataFrame({"tokens": [["Okafor", "flew", "home"]], "tags": [[1, 0, 0]]})
    [f] = word_features(df, tokenizer, max_length=32)
    pieces = tokenizer.convert_ids_to_tokens(f["input_ids"])
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]" and len(pieces) > 5  # Okafor: ok ##af ##or
    word_of = tokenizer(["Okafor", "flew", "home"], is_split_into_words=True).word_ids()
    expected = [-100 if w is None or (i and word_of[i - 1] == w) else [1, 0, 0][w] for i, w in enumerate(word_of)]
    assert f["labels"] == expected == [-100, 1, -100, -100, 0, 0, -100]
    batch = collate([f, {**f, "input_ids": f["input_ids"][:3], "attention_mask": [1] * 3,
                         "token_type_ids": [0] * 3, "labels": f["labels"][:3]}], pad_id=0, keep_index=True)
    assert batch["labels"][1].tolist()[3:] == [-100] * (len(f["labels"]) - 3) and "index" in batch


@pytest.mark.parametrize("method", ["lora", "bitfit"])
def test_token_classification_runs_with_a_peft_and_an_in_house_method(tmp_path, method):
    record = run(make_cfg(*taskdata.QUICK, "model=tiny", "task=demo_ner", f"method={method}",
                          "task.max_train_samples=40", "task.max_eval_samples=20"), tmp_path / "run")
    assert record["status"] == "ok" and record["main_metric"] == "entity_f1"
    assert set(record["metrics"]) == {"entity_f1", "entity_precision", "entity_recall", "token_accuracy"}
    assert record["params"]["head"] > 0  # the tagger's head trains under both


def test_the_demo_learns_entities_and_the_report_shows_entity_f1(tmp_path, capsys):
    from peftbench.cli import main

    cfg = make_cfg("hardware=cpu", "model=tiny", "task=demo_ner", "method=full", "train.lr=3e-3",
                   "train.epochs=1", "task.generator_args.n_train=1500", "task.generator_args.n_eval=200",
                   "train.save_trainable=false", f"results_dir={tmp_path}")
    record = run(cfg, tmp_path / "runs" / "ner")
    # all-O predictions score 0; a random-init 2-layer tagger finds most entities after one epoch
    assert record["metrics"]["entity_f1"] > 0.3, record["metrics"]
    assert json.loads((tmp_path / "runs" / "ner" / "run.json").read_text())["status"] == "ok"
    main(["report", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert "demo_ner entity_f1" in out and f"{record['metrics']['entity_f1'] * 100:.1f} (n=1)" in out
