"""MoS (Mixture of Shards): shards shared across layers, per-layer routing, pair dissociation, vector sharding
and shard privatisation, and the count against LoRA of the same rank (peftbench/methods/mos.py)."""

import pytest
import torch

from conftest import make_cfg
from peftbench.errors import UserError
from peftbench.methods.counting import build_counted, build_offline
from peftbench.methods.mos import MoSLinear


def counts(model, *knobs):
    return build_offline(make_cfg(f"model={model}", "method=mos", *knobs), 2)[2]


def test_roberta_base_count_is_lora_of_the_budget_rank():
    # LoRA r=8 on query/value of roberta-base: 12 x 2 x (8x768 + 768x8) = 294,912 (the LoRA paper's 0.3M).
    # MoS keeps rank 8 per layer, with pools as large as LoRA r=1: 294,912 / 8 = 36,864, the paper's ~8x saving.
    lora = build_offline(make_cfg("model=roberta-base", "method=lora", "method.r=8"), 2)[2]["method"]
    p = counts("roberta-base", "method.r=8", "method.budget_rank=1")
    assert p["method"] == 12 * 2 * (768 + 768) * 1 == lora // 8 == 36_864
    # budget_rank=2, no private shards, l=4: still L * budget * (d_in + d_out) per module type
    assert counts("roberta-base", "method.budget_rank=2", "method.private_ratio=0",
                  "method.shards_per_vector=4")["method"] == 12 * 2 * (768 + 768) * 2


def tiny(*knobs):
    torch.manual_seed(0)
    return build_counted(make_cfg("model=tiny", "method=mos", *knobs), 2)[0]


def test_layers_share_the_public_pool_and_route_independently():
    model = tiny("method.r=4", "method.budget_rank=2", "method.shards_per_vector=2", "method.private_ratio=0.5")
    layers = [m for m in model.modules() if isinstance(m, MoSLinear)]
    queries = [m for m in layers if m.key == "query"]
    assert len(layers) == 4 and len(queries) == 2
    pool = model.bert.mos_pools["query_a"]
    assert all(m.pools["query_a"] is pool for m in queries)  # one tensor, shared
    assert pool.shape == (2 * 2 * 2 - 2 * 2, 16)  # public: (budget * l - private) * layers shards of d/l = 16
    private = queries[0].private_a.shape[0]
    assert private == 2
    for m in queries:  # privatisation: the first slots are the layer's own shards; the rest public
        assert m.route_a[:private].tolist() == list(range(private)) and torch.all(m.route_a[private:] >= private)
    assert not torch.equal(queries[0].route_a, queries[1].route_a)  # subset selection per layer
    assert not torch.equal(queries[0].route_a, queries[0].route_b)  # pair dissociation
    a, b = queries[0].matrices()
    assert a.shape == (4, 32) and b.shape == (32, 4)  # rank r from 8 shards of 16 (vector sharding)
    shards = torch.cat([queries[0].private_a, pool])
    torch.testing.assert_close(a[1, 16:], shards[queries[0].route_a[3]])  # row 1, second shard = slot 3


def test_a_gradient_reaches_the_shared_pool_from_every_layer():
    model = tiny("method.private_ratio=0")
    ids = torch.randint(1000, 5000, (4, 10), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, MoSLinear):
                m.pools[f"{m.key}_b"].normal_()
    model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1, 0, 1])).loss.backward()
    assert model.bert.mos_pools["query_a"].grad.abs().sum() > 0


def test_refuses_gpt2_conv1d_naming_method_and_family():
    with pytest.raises(UserError, match="mos.*gpt2|gpt2.*mos"):
        build_offline(make_cfg("model=tiny-gpt2", "method=mos"), 2)


def test_refuses_shards_that_do_not_divide_the_width():
    with pytest.raises(UserError, match="shards_per_vector=3"):
        tiny("method.shards_per_vector=3")
