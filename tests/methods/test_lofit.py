"""LoFiT: stage 1 scales every head's output and selects the top-k heads by the learned scaling's norm;
stage 2 adds learned offsets to those heads' outputs only (peftbench/methods/lofit.py)."""

import pytest
import torch

from conftest import make_cfg
from peftbench.errors import UserError
from peftbench.methods import METHODS
from peftbench.methods.counting import build_counted, build_offline
from peftbench.train.checkpoint import load_trainable, save_trainable
from peftbench.methods.hooks import hooks_of

KNOBS = ("method.top_k=2", "method.select_steps=3", "method.l1_lambda=0.01")


def build(*knobs):
    torch.manual_seed(0)
    return build_counted(make_cfg("model=tiny", "method=lofit", *(knobs or KNOBS)), 2)[0]


def batch():
    ids = torch.randint(1000, 5000, (8, 12), generator=torch.Generator().manual_seed(1))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.arange(8) % 2}


def logits(model, inputs):
    model.eval()
    with torch.no_grad():
        return model(**{k: v for k, v in inputs.items() if k != "labels"}).logits


def train(model, steps):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    model.train()
    for step in range(steps):
        model(**batch()).loss.backward()
        optimizer.step()
        hooks_of(model).after_step(step)
        optimizer.zero_grad()


def test_selects_the_heads_with_the_largest_scaling_norm_after_stage_one():
    model = build()
    state = model.bert.lofit
    with torch.no_grad():
        state.scale.zero_()
        state.scale[1, 0] = 0.5  # layer 1, head 0: global head 2
        state.scale[0, 1] = -0.3  # layer 0, head 1: global head 1
        state.scale[0, 0] = 0.1
    hooks_of(model).after_step(1)
    assert int(state.stage) == 0
    hooks_of(model).after_step(2)  # the third step ends stage 1
    assert int(state.stage) == 1 and state.selected.tolist() == [1, 2]


def test_stage_two_adds_the_offsets_to_the_selected_heads_only():
    model = build()
    base = build()
    state = model.bert.lofit
    with torch.no_grad():
        state.selected.copy_(torch.tensor([1, 2]))
        state.stage.fill_(1)
        state.offset.normal_()
    dense = base.bert.encoder.layer[0].attention.output.dense
    dense.register_forward_pre_hook(lambda m, args: (args[0] + torch.cat([torch.zeros(16), state.offset[0]]),))
    dense = base.bert.encoder.layer[1].attention.output.dense
    dense.register_forward_pre_hook(lambda m, args: (args[0] + torch.cat([state.offset[1], torch.zeros(16)]),))
    torch.testing.assert_close(logits(model, batch()), logits(base, batch()))


def test_l1_penalty_is_in_the_scaling_gradient():
    model = build()
    with torch.no_grad():
        model.bert.lofit.scale.fill_(0.5)
    model(**batch()).loss.backward()
    with_l1 = model.bert.lofit.scale.grad.clone()
    model = build("method.top_k=2", "method.select_steps=3", "method.l1_lambda=0")
    with torch.no_grad():
        model.bert.lofit.scale.fill_(0.5)
    model(**batch()).loss.backward()
    torch.testing.assert_close(with_l1 - model.bert.lofit.scale.grad, torch.full_like(with_l1, 0.01))


def test_stage_two_trains_merges_and_reloads(tmp_path):
    model = build()
    train(model, 6)  # 3 steps of each stage
    state = model.bert.lofit
    assert int(state.stage) == 1 and state.offset.abs().sum() > 0
    expected = logits(model, batch())
    path = save_trainable(model, tmp_path / "t.safetensors")
    torch.testing.assert_close(logits(load_trainable(build(), path), batch()), expected)
    merged = METHODS.get("lofit").merge(model)
    torch.testing.assert_close(logits(merged, batch()), expected, atol=1e-5, rtol=1e-4)


def test_roberta_base_count_and_the_papers_stored_offsets():
    # A: 12 layers x 12 heads x 64 (head dim); v: top_k x 64. The paper's stored LoFiT is v alone.
    p = build_offline(make_cfg("model=roberta-base", "method=lofit", "method.top_k=16"), 2)[2]
    assert p["method"] == 12 * 12 * 64 + 16 * 64 == 10_240


def test_refuses_more_heads_than_the_model_has():
    with pytest.raises(UserError, match="lofit.*bert.*top_k=9"):
        build("method.top_k=9")
