"""train.forgetting: the general-text loss is the per-token mean of next-token cross-entropy (checked against
transformers' own causal-LM loss), "before" is the base model's even under prompt tuning, and a run records
after - before; classification tasks are refused."""

import math

import pytest
import torch

from conftest import TINY, TINY_MODEL, make_cfg
from peftbench.errors import UserError
from peftbench.methods.counting import build_counted
from peftbench.models import load_tokenizer
from peftbench.run.runner import run
from peftbench.train.forgetting import GENERAL_TEXT, mean_token_loss, read_lines


def _model(method):
    torch.manual_seed(0)
    cfg = make_cfg("model=tiny-llama", "task=gsm8k", f"method={method}")
    model, _, _ = build_counted(cfg, 10)
    return model, load_tokenizer(cfg.model)


def test_the_shipped_general_text_is_a_few_hundred_plain_lines():
    lines, source = read_lines(None)
    assert len(lines) == 300 and len(set(lines)) == 300 and source.startswith("general_text.txt sha256:")
    assert GENERAL_TEXT.stat().st_size > 30_000


def test_mean_token_loss_is_transformers_causal_lm_loss_weighted_by_tokens():
    model, tokenizer = _model("full")
    lines = ["The river flows past the old mill.", "Bees carry pollen from flower to flower, and many fruits grow.",
             "Salt was valuable."]
    loss, tokens = mean_token_loss(model, tokenizer, lines, max_length=64, batch_size=2, device=torch.device("cpu"))
    total, count = 0.0, 0
    for text in lines:  # one line at a time, no padding: transformers' mean over the line's predicted tokens
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        with torch.no_grad():
            total += model(input_ids=ids, labels=ids).loss.item() * (ids.shape[1] - 1)
        count += ids.shape[1] - 1
    assert tokens == count and loss == pytest.approx(total / count, rel=1e-5)


def test_before_is_the_base_model_even_under_prompt_tuning(tmp_path):
    from peftbench.train.forgetting import Forgetting
    from accelerate import Accelerator

    model, tokenizer = _model("prompt_tuning")
    text = tmp_path / "text.txt"
    text.write_text("\n".join(read_lines(None)[0][:20]))
    cfg = make_cfg("model=tiny-llama", "task=gsm8k", "method=prompt_tuning", "train.batch_size=16",
                   f"train.forgetting_text={text}")
    forgetting = Forgetting(cfg, Accelerator(cpu=True))
    forgetting.before(model)
    lines, _ = read_lines(text)
    assert len(lines) == 20 and forgetting.source.startswith("text.txt sha256:")
    base, _ = mean_token_loss(model.get_base_model(), tokenizer, lines, 64, 16, torch.device("cpu"))
    with_prompt, _ = mean_token_loss(model, tokenizer, lines, 64, 16, torch.device("cpu"))
    assert forgetting.loss_before == pytest.approx(base, rel=1e-7)
    assert abs(with_prompt - base) > 1e-5  # the virtual tokens change the loss: they are not counted


def test_a_causal_lm_run_records_forgetting(tmp_path):
    from taskdata import gsm8k

    text = tmp_path / "text.txt"
    text.write_text("\n".join(read_lines(None)[0][:30]))
    record = run(make_cfg(*TINY_MODEL, "model=tiny-llama", "task=gsm8k", f"task.data_dir={gsm8k(tmp_path / 'data')}",
                          "task.max_new_tokens=4", "method=full", "train.lr=1e-2", "train.max_steps=6",
                          "train.forgetting=true", f"train.forgetting_text={text}"), tmp_path / "run")
    f = record["forgetting"]
    assert f["lines"] == 30 and f["tokens"] > 500 and math.isfinite(f["loss_before"])
    assert math.log(30522) - 1 < f["loss_before"] < math.log(30522) + 1  # a random-init model: about ln(vocab)
    assert f["loss_after"] != f["loss_before"]  # full fine-tuning at a high rate moved the model
    assert f["forgetting"] == pytest.approx(f["loss_after"] - f["loss_before"], abs=2e-6)


def test_a_classification_task_is_refused(tmp_path):
    with pytest.raises(UserError, match="train.forgetting=true needs a causal LM task"):
        run(make_cfg(*TINY, "train.forgetting=true"), tmp_path)
