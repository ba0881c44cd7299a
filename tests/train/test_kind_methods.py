"""Methods on each task kind's model: peft gets the task type of the model class (CAUSAL_LM,
SEQ_2_SEQ_LM; none for image classifiers, whose new head trains through modules_to_save), and each
method either trains there (finite loss, gradients on its own parameters only, generation works) or
stops with a clear message."""

import pytest
import torch

from conftest import make_cfg
from peftbench.errors import UserError
from peftbench.train.kinds import lm
from peftbench.methods.peft_methods import task_type_of
from peftbench.models import load_tokenizer
from peftbench.methods.counting import build_counted
from peftbench.methods.hooks import hooks_of
from test_method_invariants import TINY_KNOBS

KINDS = {"tiny-gpt2": "gsm8k", "tiny-llama": "gsm8k", "tiny-t5": "samsum", "tiny-vit": "cifar10"}
METHODS = ["lora", "ia3", "prompt_tuning", "prefix_tuning_peft", "p_tuning", "adapter_houlsby", "compacter", "bitfit", "ssf",
           "head"]
PROMPT_LEARNING = ("prompt_tuning", "prefix_tuning_peft", "p_tuning")
REFUSALS = {
    **{(m, "tiny-vit"): "prepends virtual tokens to a text model's input" for m in PROMPT_LEARNING},
    **{("head", m): "trains only a task head" for m in ("tiny-gpt2", "tiny-llama", "tiny-t5")},
    ("bitfit", "tiny-llama"): "found nothing to train",  # no biases
    ("bitfit", "tiny-t5"): "found nothing to train",
}


def _batch(model_name):
    if model_name == "tiny-vit":
        return {"pixel_values": torch.randn(2, 3, 32, 32), "labels": torch.tensor([1, 7])}
    ids = torch.randint(1000, 5000, (2, 6))
    labels = ids.clone()
    labels[:, :3] = -100  # the prompt
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


@pytest.mark.parametrize("model_name", KINDS)
@pytest.mark.parametrize("method", METHODS)
def test_method_on_kind(method, model_name):
    cfg = make_cfg(f"model={model_name}", f"task={KINDS[model_name]}", f"method={method}", *TINY_KNOBS.get(method, []))
    torch.manual_seed(0)
    refusal = REFUSALS.get((method, model_name))
    if refusal:
        with pytest.raises(UserError, match=refusal):
            build_counted(cfg, 10)
        return
    model, _, counts = build_counted(cfg, 10)
    assert not hooks_of(model).cannot_train
    batch = _batch(model_name)
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert [n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None] == []
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)
    if model_name == "tiny-vit":
        assert counts["head"] == 32 * 10 + 10  # the new classifier trains
        return
    assert counts["head"] == 0  # the LM head stays frozen
    tokenizer = load_tokenizer(cfg.model)
    prompt = {k: batch[k] for k in ("input_ids", "attention_mask")}
    out = lm.generate(model, prompt, tokenizer, max_new_tokens=3, decoder_only=model_name != "tiny-t5")
    assert out.shape[0] == 2 and out.shape[1] <= 3 + (model_name == "tiny-t5")  # T5 starts with its start token


@pytest.mark.parametrize("model_name, task_type", [("tiny-gpt2", "CAUSAL_LM"), ("tiny-llama", "CAUSAL_LM"),
                                                   ("tiny-t5", "SEQ_2_SEQ_LM"), ("tiny-vit", None)])
def test_peft_task_type_follows_the_model_class(model_name, task_type):
    model, _, _ = build_counted(make_cfg(f"model={model_name}", f"task={KINDS[model_name]}", "method=lora"), 10)
    assert task_type_of(model.get_base_model()) == task_type
    assert model.peft_config["default"].task_type == task_type
    classifier, _, _ = build_counted(make_cfg(f"model={model_name}", "method=lora"), 2) if model_name != "tiny-vit" \
        else (None, None, None)
    if classifier is not None:
        assert classifier.peft_config["default"].task_type == "SEQ_CLS"
