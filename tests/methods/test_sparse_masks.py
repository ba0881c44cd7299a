"""The selection rules of `sparse_ft` from the papers (PaFi, LIFT, LT-SFT, SpIEL): each mask is the one the
rule names, checked on the tiny BERT against the rule computed here by hand."""

import pytest
import torch
from safetensors.torch import save_file
from torch.nn.utils import parametrize

from conftest import make_cfg
from peftbench.errors import UserError
from peftbench.methods.counting import build_counted, build_offline
from peftbench.methods.sparse_ft import SparseDelta
from peftbench.methods.hooks import hooks_of

QUERY = "bert.encoder.layer.0.attention.self.query"


def build(*knobs, seed=0):
    torch.manual_seed(seed)
    return build_counted(make_cfg("model=tiny", "method=sparse_ft", *knobs), 2)


def base_weight(name=QUERY):
    torch.manual_seed(0)
    model = build_counted(make_cfg("model=tiny", "method=full"), 2)[0]
    return model.get_submodule(name).weight.detach().clone()


def mask_of(model, name=QUERY) -> set:
    return set(model.get_submodule(name).parametrizations.weight[0].index.tolist())


def k_of(weight, density):
    return max(1, int(round(density * weight.numel())))


def test_pafi_trains_the_smallest_magnitudes():
    w = base_weight()
    model, _, _ = build("method.mask=pafi", "method.density=0.1")
    k = k_of(w, 0.1)
    assert mask_of(model) == set(w.abs().flatten().argsort()[:k].tolist())
    assert w.abs().flatten()[list(mask_of(model))].max() <= w.abs().flatten().median()


def test_lift_trains_the_largest_entries_of_the_low_rank_approximation():
    w = base_weight()
    model, _, _ = build("method.mask=lift", "method.lift_rank=2", "method.density=0.1")
    u, s, vh = torch.linalg.svd(w)
    approx = (u[:, :2] * s[:2]) @ vh[:2]
    assert mask_of(model) == set(approx.abs().flatten().topk(k_of(w, 0.1)).indices.tolist())
    full_rank, _, _ = build("method.mask=lift", "method.lift_rank=10000", "method.density=0.1")
    magnitude, _, _ = build("method.mask=magnitude", "method.density=0.1")
    assert mask_of(full_rank) == mask_of(magnitude)  # the full-rank "approximation" is W0 itself


def test_lt_sft_keeps_the_most_changed_entries_and_restarts_from_the_original_weights(tmp_path):
    torch.manual_seed(0)
    full = build_counted(make_cfg("model=tiny", "method=full"), 2)[0]
    tuned = {n: p.detach().clone() for n, p in full.named_parameters()}
    w = tuned[QUERY + ".weight"]
    changed = torch.randperm(w.numel(), generator=torch.Generator().manual_seed(3))[:k_of(w, 0.1)]
    w.view(-1)[changed] += 1.0  # "phase 1" moved exactly these entries
    (tmp_path / "full_run").mkdir()
    save_file(tuned, str(tmp_path / "full_run" / "trainable.safetensors"))
    model, _, _ = build("method.mask=lt_sft", "method.density=0.1", f"method.lt_sft_from={tmp_path / 'full_run'}")
    assert mask_of(model) == set(changed.tolist())
    torch.testing.assert_close(model.get_submodule(QUERY).weight, base_weight(), rtol=0, atol=0)


def test_lt_sft_refuses_without_its_phase_one(tmp_path):
    with pytest.raises(UserError, match="lt_sft_from"):
        build("method.mask=lt_sft")
    with pytest.raises(UserError, match="does not exist"):
        build("method.mask=lt_sft", f"method.lt_sft_from={tmp_path}")


def test_spiel_drops_the_smallest_deltas_and_grows_where_gradients_are_largest():
    model, _, counts = build("method.mask=spiel", "method.density=0.1", "method.spiel_every=2", "method.spiel_drop=0.25")
    delta = model.get_submodule(QUERY).parametrizations.weight[0]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    hooks_of(model).bind_optimizer(optimizer)
    ids = torch.randint(1000, 5000, (8, 12), generator=torch.Generator().manual_seed(1))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.arange(8) % 2}
    before = None
    for step in range(2):
        model(**batch).loss.backward()
        optimizer.step()
        if step == 1:  # what the update will look at
            before = (delta.index.clone(), delta.delta.detach().clone(), delta.grad_sum.clone())
        hooks_of(model).after_step(step)
        optimizer.zero_grad()
    index, values, grads = before
    n = int(0.25 * values.numel())
    dropped = values.abs().topk(n, largest=False).indices
    score = grads.abs().clone()
    score[index] = -1
    assert set(delta.index[dropped].tolist()) == set(score.topk(n).indices.tolist())
    assert torch.all(delta.delta[dropped] == 0)
    assert torch.all(optimizer.state[delta.delta]["exp_avg"][dropped] == 0)
    kept = torch.ones(values.numel(), dtype=torch.bool)
    kept[dropped] = False
    assert torch.equal(delta.index[kept], index[kept]) and torch.equal(delta.delta[kept], values[kept])
    assert torch.all(delta.grad_sum == 0)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == counts["trainable"]  # size fixed


def test_every_mask_counts_density_times_each_matrix_roberta_base():
    # roberta-base: 12 layers x (q, k, v, attention-out: 768x768; intermediate 768x3072, output 3072x768);
    # no pooler in RobertaForSequenceClassification. k = round(0.01 * entries) per matrix.
    expected = 12 * (4 * round(0.01 * 768 * 768) + 2 * round(0.01 * 768 * 3072))
    assert expected == 849_336
    for mask in ("pafi", "spiel", "lift"):
        p = build_offline(make_cfg("model=roberta-base", "method=sparse_ft", f"method.mask={mask}",
                                   "method.lift_rank=8"), 2)[2]
        assert p["method"] == expected, mask


def test_merged_weights_are_the_base_plus_the_delta_at_the_mask():
    model, _, _ = build("method.mask=pafi", "method.density=0.1")
    module = model.get_submodule(QUERY)
    sparse: SparseDelta = module.parametrizations.weight[0]
    with torch.no_grad():
        sparse.delta.normal_()
    expected = base_weight().flatten().clone()
    expected[sparse.index] += sparse.delta.detach()
    parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    torch.testing.assert_close(module.weight.flatten(), expected)
