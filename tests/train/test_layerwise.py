"""`train.ist`: IST-style layer-wise importance sampling (peftbench/train/layerwise.py): each step updates
only the sampled layers of the method, importance comes from suppressing layers' adaptation."""

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, make_cfg
from peftbench.config.schema import ISTConfig
from peftbench.errors import UserError
from peftbench.methods.counting import build_counted
from peftbench.run.runner import run
from peftbench.train.layerwise import attach


def build(method="lora", *knobs):
    torch.manual_seed(0)
    return build_counted(make_cfg("model=tiny", f"method={method}", *knobs), 2)[0]


def batch():
    ids = torch.randint(1000, 5000, (8, 12), generator=torch.Generator().manual_seed(1))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.arange(8) % 2}


def by_layer(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


@pytest.mark.parametrize("method", ["lora", "adapter_houlsby"])
def test_each_step_updates_only_the_sampled_layers(method):
    model = build(method)
    sampler = attach(model, ISTConfig(layers=1, every=3, trials=2), method)
    assert [n.split("bert.")[-1] for n in sampler.names] == ["encoder.layer.0.", "encoder.layer.1."]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    losses = []
    for step in range(12):
        before = [[p.detach().clone() for p in group] for group in sampler.groups]
        sampler.before_forward(model, batch(), step)
        loss = model(**batch()).loss
        loss.backward()
        optimizer.step()
        sampler.after_step()
        optimizer.zero_grad()
        losses.append(loss.item())
        moved = [i for i, group in enumerate(sampler.groups)
                 if any(not torch.equal(p, b) for p, b in zip(group, before[i]))]
        assert moved == sampler.selected  # the other layer's tensors are bit-equal
    assert all(p.requires_grad for group in sampler.groups for p in group)  # restored after each step
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert min(losses[-3:]) < losses[0]
    assert sampler.counts.sum() == 12


def test_importance_credits_only_layers_whose_suppression_changes_the_loss():
    model = build()
    sampler = attach(model, ISTConfig(layers=1, every=1, trials=8), "lora")  # remembers the start (B = 0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer.0." in name and "lora_B" in name:
                p.normal_()  # layer 0 "trained"; layer 1 still at its start: suppressing it changes nothing
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    sampler.update_importance(model, batch())
    assert sampler.scores[0] != 0 and sampler.scores[1] == 0
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # probes restore everything


def test_refusals_name_the_method_and_the_fix():
    with pytest.raises(UserError, match="prompt_tuning"):
        attach(build("prompt_tuning"), ISTConfig(layers=1), "prompt_tuning")
    with pytest.raises(UserError, match="choose fewer"):
        attach(build(), ISTConfig(layers=2), "lora")
    with pytest.raises(UserError, match="num_processes=1"):
        attach(build(), ISTConfig(layers=1), "lora", processes=2)
    assert attach(build(), ISTConfig(layers=0), "lora") is None


def test_bad_values_are_reported_at_once(tmp_path):
    with pytest.raises(UserError) as info:
        run(make_cfg(*TINY, "train.ist.layers=-1", "train.ist.decay=1.5"), tmp_path)
    assert "train.ist.layers=-1" in str(info.value) and "train.ist.decay=1.5" in str(info.value)


def test_a_run_with_ist_saves_every_layer(tmp_path):
    record = run(make_cfg(*TINY, "method=lora", "train.ist.layers=1", "train.ist.every=2"), tmp_path)
    assert record["status"] == "ok"
    saved = load_file(str(tmp_path / "trainable.safetensors"))
    assert any("layer.0." in n and "lora_B" in n for n in saved) and any("layer.1." in n and "lora_B" in n for n in saved)


def test_ist_off_keeps_the_config_hash_of_earlier_runs():
    from omegaconf import OmegaConf, open_dict

    from peftbench.run.sweep import config_hash

    cfg = make_cfg(*TINY)
    earlier = OmegaConf.create(OmegaConf.to_container(cfg))
    with open_dict(earlier):
        del earlier.train["ist"]  # a config from before train.ist existed
    assert config_hash(cfg) == config_hash(earlier)
    assert config_hash(make_cfg(*TINY, "train.ist.layers=1")) != config_hash(cfg)
