"""Mechanism checks for prefix tuning written here, the parallel/MAM adapters, Hydra and SVFit, beyond
the invariants every method gets in test_method_invariants.py (identity, frozen tensors, loss, merge,
checkpoint): the folded prefix, the attention mask around prefixes, where parallel adapters read."""

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, make_cfg
from peftbench.errors import UserError
from peftbench.methods.counting import build_counted
from peftbench.train.checkpoint import load_trainable, save_trainable, trainable_state
from peftbench.methods.hooks import hooks_of
from test_method_invariants import batch, build, logits, train_steps


def test_prefix_fold_keeps_outputs_and_stores_only_the_prefixes(tmp_path):
    model, counts = build("prefix_tuning")  # tiny BERT: 2 layers, d=32, n=20
    assert counts["method_stored"] == 2 * 2 * 20 * 32
    assert counts["method"] == 20 * 32 + (32 * 512 + 512) + (512 * 2 * 2 * 32 + 2 * 2 * 32)  # P' + MLP
    inputs = batch()
    train_steps(model, inputs, steps=3)
    before = logits(model, inputs)
    hooks_of(model).fold(model)
    torch.testing.assert_close(logits(model, inputs), before)
    path = save_trainable(model, tmp_path / "t.safetensors")
    stored = load_file(str(path))
    assert stored["bert.prefix_encoder.prefix"].shape == (2, 2, 20, 32)
    assert sum(t.numel() for n, t in stored.items() if "prefix" in n) == counts["method_stored"]
    fresh, _ = build("prefix_tuning")  # built with the MLP: loading a stored file folds it first
    torch.testing.assert_close(logits(load_trainable(fresh, path), inputs), before)


def test_prefix_ignores_padding_and_agrees_with_eager_attention():
    model, _ = build("prefix_tuning")
    short = batch(n=2, length=7)
    padded = {k: v for k, v in batch(n=2, length=7).items()}
    padded["input_ids"] = torch.cat([short["input_ids"], torch.zeros(2, 5, dtype=torch.long)], 1)
    padded["attention_mask"] = torch.cat([short["attention_mask"], torch.zeros(2, 5, dtype=torch.long)], 1)
    sdpa = logits(model, padded)
    torch.testing.assert_close(sdpa, logits(model, short), atol=1e-5, rtol=1e-4)  # pad tokens stay masked
    model.config._attn_implementation = "eager"  # the model's mask becomes additive; each layer's call eager
    for module in model.modules():
        if hasattr(module, "prefix_inner_attention"):
            module.prefix_inner_attention = "eager"
    torch.testing.assert_close(logits(model, padded), sdpa, atol=1e-5, rtol=1e-4)


def test_prefix_changes_every_layer_and_trains_on_vit():
    cfg = make_cfg("model=tiny-vit", "task=cifar10", "method=prefix_tuning", "method.num_virtual_tokens=4")
    model, _, counts = build_counted(cfg, 10)
    assert counts["method_stored"] == 2 * 2 * 4 * 32
    loss = model(pixel_values=torch.randn(2, 3, 32, 32), labels=torch.tensor([1, 7])).loss
    loss.backward()
    assert model.vit.prefix_encoder.embedding.grad.abs().sum() > 0


def _prefix_knobs(n=4, name="prefix_tuning"):
    from peftbench.methods import METHODS

    return METHODS.get(name).check(make_cfg(f"method={name}", f"method.num_virtual_tokens={n}").method)[0]


@pytest.mark.parametrize("name", ["prefix_tuning", "mam_adapter"])
def test_prefix_on_deberta_v2_ignores_padding_and_trains(name):
    """DeBERTa-v2's disentangled attention: prefixes through its own projections, no relative bias on them."""
    import transformers

    from peftbench.methods import METHODS

    config = transformers.DebertaV2Config(vocab_size=5000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                          intermediate_size=64, relative_attention=True, pos_att_type=["p2c", "c2p"],
                                          share_att_key=True, position_buckets=16, norm_rel_ebd="layer_norm")
    torch.manual_seed(0)
    base = transformers.DebertaV2ForSequenceClassification(config).eval()
    ids = torch.randint(100, 4000, (2, 7))
    before = base(input_ids=ids).logits
    model = METHODS.get(name).build(base, _prefix_knobs(name=name), "deberta-v2").eval()
    short = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    assert not torch.allclose(short, before)  # the prefixes are attended to
    padded = model(input_ids=torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], 1),
                   attention_mask=torch.cat([torch.ones_like(ids), torch.zeros(2, 3, dtype=torch.long)], 1)).logits
    torch.testing.assert_close(padded, short, atol=1e-5, rtol=1e-4)
    model.train()
    model(input_ids=ids, labels=torch.tensor([0, 1])).loss.backward()
    assert model.deberta.prefix_encoder.embedding.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)


def test_prefix_refuses_decoders_and_names_the_peft_fallback():
    from peftbench.methods import METHODS

    model, _, _ = build_counted(make_cfg("model=tiny", "method=full"), 2)
    with pytest.raises(UserError, match="model family 'llama' is not supported.*Supported: bert.*prefix_tuning_peft"):
        METHODS.get("prefix_tuning").build(model, _prefix_knobs(), "llama")


@pytest.mark.slow  # a whole (tiny) run
def test_run_stores_the_folded_prefix(tmp_path):
    from peftbench.run.runner import run

    record = run(make_cfg(*TINY, "method=prefix_tuning", "method.num_virtual_tokens=4"), tmp_path)
    assert record["status"] == "ok" and record["params"]["method_stored"] == 2 * 2 * 4 * 32
    stored = load_file(str(tmp_path / "trainable.safetensors"))
    assert sorted(stored) == ["bert.prefix_encoder.prefix", "classifier.bias", "classifier.weight"]
    assert json.loads((tmp_path / "run.json").read_text())["params"]["method_stored"] == 512
    from peftbench.run.job import summary

    assert "; method stored 512" in summary(record)


@pytest.mark.parametrize("name", ["parallel_adapter", "mam_adapter"])
def test_parallel_adapter_reads_the_ffn_input(name):
    model, _ = build(name)
    seen = {}
    model.bert.encoder.layer[0].intermediate.register_forward_hook(lambda m, a, o: seen.update(x=a[0]))
    adapter = model.bert.encoder.layer[0].output.dense.adapter
    got = {}
    model.bert.encoder.layer[0].output.dense.register_forward_pre_hook(lambda m, a: got.update(x=adapter.source))
    logits(model, batch())
    assert torch.equal(got["x"], seen["x"]) and adapter.source is None  # used once, then dropped
    assert adapter.scale == (4.0 if name == "mam_adapter" else 1.0)


def test_hydra_branches_read_input_and_output():
    model, _ = build("hydra")
    layer = model.bert.encoder.layer[0].output.dense  # FFN output projection: 64 -> 32
    assert layer.parallel.down.in_features == 64 and layer.sequential.down.in_features == 32
    with torch.no_grad():
        for branch in (layer.parallel, layer.sequential):
            branch.up.weight.normal_()
    x = torch.randn(3, 64)
    y = layer.inner(x)
    torch.testing.assert_close(layer(x), y + layer.parallel(x) + layer.sequential(y))
    torch.testing.assert_close(layer.merged()(x), layer(x), atol=1e-4, rtol=1e-4)


def test_svfit_trains_the_top_singular_values_only():
    model, counts = build("svfit")
    query = model.bert.encoder.layer[0].attention.self.query
    s = torch.linalg.svdvals(query.parametrizations.weight.original)
    torch.testing.assert_close(query.parametrizations.weight[0].singular_values, s[:16])
    assert counts["method"] == 2 * 2 * 16  # 2 layers x (query, value) x r
    stored = set(trainable_state(model))
    assert not any(n.endswith((".u", ".vh", ".rest")) for n in stored)  # rebuilt from the base weights
