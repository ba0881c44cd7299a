"""train.gradient_checkpointing: the same losses and gradients as without it, and every trainable tensor
gets a non-zero gradient (the frozen-embeddings pitfall), for LoRA, prompt tuning and the Houlsby adapter
on an encoder and a decoder; prefix tuning is refused with the reason."""

import pytest
import torch
from omegaconf import OmegaConf

from conftest import TINY, make_cfg
from peftbench.errors import UserError
from peftbench.methods.counting import build_counted
from peftbench.run.runner import run
from peftbench.run.sweep import config_hash
from peftbench.train.grad_checkpointing import enable_gradient_checkpointing

# tanh: with d=32 the Houlsby bottleneck has 2 units, and two dead ReLUs would hide a missing gradient
HOULSBY = ["method=adapter_houlsby", "method.non_linearity=tanh"]
CASES = [("tiny", ["method=lora"]), ("tiny", ["method=prompt_tuning"]), ("tiny", HOULSBY),
         ("tiny-llama", ["method=lora"]), ("tiny-llama", ["method=prompt_tuning"]), ("tiny-llama", HOULSBY)]


def _model_and_batch(model_name, method):
    task = [] if model_name == "tiny" else ["task=gsm8k"]
    torch.manual_seed(0)
    model, _, _ = build_counted(make_cfg(f"model={model_name}", *method, *task), 2 if model_name == "tiny" else 10)
    with torch.no_grad():  # move every trained tensor off its init (LoRA's B and the adapters' up start at 0,
        for p in model.parameters():  # which would leave the other factor's gradient 0 in any case)
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    # dropout off, so the two forward passes compare exactly (checkpointing only runs in train mode)
    model.apply(lambda m: setattr(m, "p", 0.0) if isinstance(m, torch.nn.Dropout) else None)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 5000, (4, 10), generator=g)
    labels = torch.tensor([0, 1, 0, 1]) if model_name == "tiny" else ids.clone()
    return model, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def _loss_and_grads(model, batch):
    model.train()
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    return loss.item(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("reentrant", [False, True])
@pytest.mark.parametrize("model_name, method", CASES, ids=lambda x: x if isinstance(x, str) else x[0][7:])
def test_checkpointing_gives_the_same_loss_and_gradients(model_name, method, reentrant):
    model, batch = _model_and_batch(model_name, method)
    plain_loss, plain = _loss_and_grads(model, batch)
    enable_gradient_checkpointing(model, method[0].split("=")[1], reentrant=reentrant)
    ckpt_loss, ckpt = _loss_and_grads(model, batch)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    assert inner.is_gradient_checkpointing
    assert ckpt_loss == pytest.approx(plain_loss, rel=1e-5)
    assert ckpt.keys() == plain.keys() and ckpt
    missing = [n for n, g in ckpt.items() if g is None or not g.abs().sum() > 0]
    assert missing == [], f"trainable tensors without a gradient under checkpointing: {missing}"
    for name, g in ckpt.items():
        torch.testing.assert_close(g, plain[name], rtol=1e-4, atol=1e-6, msg=name)


def test_a_run_with_checkpointing_trains_like_one_without(tmp_path):
    base = [*TINY, "method=adapter_houlsby", "train.max_steps=6"]
    off = run(make_cfg(*base), tmp_path / "off")
    on = run(make_cfg(*base, "train.gradient_checkpointing=true"), tmp_path / "on")
    assert on["memory"]["gradient_checkpointing"] is True and off["memory"]["gradient_checkpointing"] is False
    assert [s for s, _ in on["loss_history"]] == [s for s, _ in off["loss_history"]]
    for (_, a), (_, b) in zip(on["loss_history"], off["loss_history"]):
        assert a == pytest.approx(b, rel=1e-4)


def test_peft_prefix_tuning_is_refused_with_the_reason():
    from peftbench.methods import METHODS

    name = "prefix_tuning_peft" if "prefix_tuning_peft" in METHODS.names() else "prefix_tuning"  # peft's prefix
    model, _ = _model_and_batch("tiny-llama", [f"method={name}"])
    with pytest.raises(UserError, match="past_key_values"):
        enable_gradient_checkpointing(model, name)


def test_the_knob_at_its_default_leaves_the_config_hash_of_older_runs_alone():
    cfg = make_cfg(*TINY)
    older = OmegaConf.to_container(cfg)
    del older["train"]["gradient_checkpointing"]  # the config of a run file written before the key existed
    older = OmegaConf.create(older)
    assert config_hash(cfg) == config_hash(older)
    assert config_hash(make_cfg(*TINY, "train.gradient_checkpointing=true")) != config_hash(cfg)
