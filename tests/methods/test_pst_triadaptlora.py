"""PST and TriAdaptLoRA beyond the invariants every method gets (test_method_invariants.py): counts from
the papers' formulas on the tiny BERT (d=32, feed-forward 64, 2 layers), PST's mask and sparsity schedule,
TriAdaptLoRA's triangular C and its rank growth."""

import pytest
import torch

from conftest import make_cfg
from peftbench.methods.counting import build_counted
from peftbench.methods.pst import PSTLinear, sparsity_at
from peftbench.methods.triadaptlora import TriAdaptLinear
from peftbench.errors import UserError
from test_method_invariants import batch, build, logits, train_steps


def counts(method, *knobs):
    return build_counted(make_cfg("model=tiny", f"method={method}", *knobs), 2)


def test_pst_count_is_r_plus_r_prime_plus_one_times_d_in_plus_d_out():
    # every Linear of the backbone: per layer q, k, v, attention-out (32 -> 32), intermediate (32 -> 64),
    # output (64 -> 32); plus the pooler (32 -> 32). Per matrix (r + r' + 1)(d_in + d_out), r = r' = 8.
    per_layer = 4 * (32 + 32) + 2 * (32 + 64)
    _, _, c = counts("pst")
    assert c["method"] == (8 + 8 + 1) * (2 * per_layer + 64) == 16_320
    _, _, c = counts("pst", "method.weight_rank=2", "method.mask_rank=4", "method.target_modules=[query]")
    assert c["method"] == 2 * (2 + 4 + 1) * (32 + 32)


def test_pst_schedule_is_cubic_between_the_warmups():
    knobs = counts("pst", "method.total_step=100", "method.final_sparsity=0.8")[1]
    assert sparsity_at(10, knobs) == 0.0 and sparsity_at(70, knobs) == 0.8 and sparsity_at(100, knobs) == 0.8
    assert sparsity_at(40, knobs) == pytest.approx(0.8 + (0.0 - 0.8) * (1 - 30 / 60) ** 3)


def test_pst_prunes_the_lowest_scores_and_merges_into_a_sparse_weight():
    model, _ = build("pst")
    inputs = batch()
    train_steps(model, inputs, steps=3)
    layers = [m for m in model.modules() if isinstance(m, PSTLinear)]
    for layer in layers:
        layer.sparsity.fill_(0.75)
    layer = layers[0]
    with torch.no_grad():
        weight = layer.masked_weight()
        kept = weight != 0
        assert kept.sum() == weight.numel() // 4
        scores = layer.scores(layer.base.weight + layer.weight_u @ layer.weight_v)
        assert scores[kept].min() >= scores[~kept].max()  # the highest importance is what stays
    before = logits(model, inputs)
    from peftbench.methods import METHODS

    merged = METHODS.get("pst").merge(model)
    torch.testing.assert_close(logits(merged, inputs), before, atol=1e-4, rtol=1e-3)
    assert (merged.bert.encoder.layer[0].attention.self.query.weight == 0).float().mean() == 0.75


def test_pst_importance_scores_get_a_gradient_through_the_mask():
    model, _ = build("pst")
    model(**batch()).loss.backward()
    layer = next(m for m in model.modules() if isinstance(m, PSTLinear))
    assert layer.score_b.grad.abs().sum() > 0 and layer.score_r.grad.abs().sum() > 0


def test_triadaptlora_count_is_r_d_in_plus_d_out_plus_r_r_plus_k():
    # query and value of 2 layers (32 -> 32), allocated at max_rank r = 16 in steps of k = 4:
    # r (d_in + d_out) + r (r + k) each: the two block triangles of C hold r (r + k).
    _, _, c = counts("triadaptlora")
    assert c["method"] == 4 * (16 * 64 + 16 * (16 + 4)) == 5_376
    # k = 1: C's two triangles hold r (r + 1) / 2 entries each
    _, _, c = counts("triadaptlora", "method.init_rank=1", "method.rank_step=1", "method.max_rank=6",
                     "method.reference_rank=3")
    assert c["method"] == 4 * (6 * 64 + 2 * (6 * 7 // 2))


def test_triadaptlora_c_is_lower_plus_upper_triangular():
    model, _ = counts("triadaptlora", "method.init_rank=2", "method.rank_step=2", "method.max_rank=6",
                      "method.reference_rank=4")[:2]
    layer = next(m for m in model.modules() if isinstance(m, TriAdaptLinear))
    with torch.no_grad():
        for p in [*layer.tri_lower, *layer.tri_upper]:
            p.fill_(1.0)
        layer.blocks.fill_(3)
        c = layer.factors()[1]
    # block lower triangle (row blocks reach their own columns) + block upper triangle (column blocks)
    assert c.shape == (6, 6) and torch.equal(c, torch.ones(6, 6) + torch.kron(torch.eye(3), torch.ones(2, 2)))


def test_triadaptlora_growth_keeps_b_c_a_and_rescales_by_alpha_over_r():
    model, _ = build("triadaptlora")
    train_steps(model, batch(), steps=3)
    layer = next(m for m in model.modules() if isinstance(m, TriAdaptLinear))
    before, rank = layer.delta_weight().detach(), layer.rank
    layer.grow()
    torch.testing.assert_close(layer.delta_weight().detach(), before * rank / layer.rank)


def test_triadaptlora_grows_to_the_budget_and_stops():
    model, knobs, c = counts("triadaptlora", "method.total_step=30", "method.interval=5")
    layers = [m for m in model.modules() if isinstance(m, TriAdaptLinear)]
    assert [m.rank for m in layers] == [4] * 4
    train_steps(model, batch(), steps=30)
    ranks = [m.rank for m in layers]
    assert sum(ranks) == 8 * len(layers)  # the budget: reference_rank per matrix on average, then no more
    train_steps(model, batch(), steps=10)
    assert [m.rank for m in layers] == ranks
    # the paper's count at the final ranks: r (d_in + d_out) + r (r + k) per matrix
    assert sum(m.active_numel() for m in layers) == sum(r * 64 + r * (r + 4) for r in ranks)


def test_bad_knobs_are_refused_with_the_key():
    with pytest.raises(UserError, match="method.max_rank=15: must be method.init_rank=4 plus a multiple"):
        counts("triadaptlora", "method.max_rank=15")
    with pytest.raises(UserError, match="method.growth='cubic': choose one of linear, exponential"):
        counts("triadaptlora", "method.growth=cubic")
    with pytest.raises(UserError, match=r"method.final_sparsity=1.0: must be in \[0, 1\)"):
        counts("pst", "method.final_sparsity=1.0")
