"""VPT (Jia et al. 2022) and VQT (Tu et al. 2023) on the tiny ViT: where the tokens go, what each layer
sees, that VQT's queries leave the encoder's features intact and never back-propagate through it, and
counts against the papers' formulas. The shared invariants run in test_method_invariants (VISION_ONLY)."""

import pytest
import torch

from conftest import make_cfg
from peftbench.errors import UserError
from peftbench.methods.counting import build_counted, build_offline
from peftbench.methods.vqt import query_block

VIT_BASE = ["model=tiny-vit", "task=cifar10", "model.arch.hidden_size=768", "model.arch.num_hidden_layers=12",
            "model.arch.num_attention_heads=12", "model.arch.intermediate_size=3072", "model.arch.image_size=224",
            "model.arch.patch_size=16"]


def build(method, *knobs):
    torch.manual_seed(0)
    model, _, counts = build_counted(make_cfg("model=tiny-vit", "task=cifar10", f"method={method}", *knobs), 10)
    return model.eval(), counts


def layer_inputs(model, layers):
    seen = []
    for layer in layers:
        layer.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        model(pixel_values=torch.randn(2, 3, 32, 32))
    return seen


@pytest.mark.parametrize("deep", [True, False])
def test_vpt_puts_prompts_after_cls_in_every_layer_or_only_the_first(deep):
    model, counts = build("vpt", f"method.deep={str(deep).lower()}", "method.num_tokens=3")
    tokens = model.vpt_prompts.tokens
    seen = layer_inputs(model, model.vit.layers)
    assert [x.shape[1] for x in seen] == [1 + 3 + 16] * 2  # [CLS], 3 prompts, 4x4 patches
    assert torch.equal(seen[0][:, 1:4], tokens[0].expand(2, -1, -1))
    if deep:  # layer 1 reads its own prompts, not layer 0's outputs at those positions
        assert torch.equal(seen[1][:, 1:4], tokens[1].expand(2, -1, -1))
    else:
        assert not torch.allclose(seen[1][:, 1:4], tokens[0].expand(2, -1, -1))
    assert counts["method"] == (2 if deep else 1) * 3 * 32


def test_vpt_and_vqt_counts_on_vit_base():
    p = build_offline(make_cfg(*VIT_BASE, "method=vpt", "method.num_tokens=10"), 100)[2]
    assert p["method"] == 12 * 10 * 768 == 92_160  # VPT-Deep: L * p * d
    p = build_offline(make_cfg(*VIT_BASE, "method=vpt", "method.num_tokens=10", "method.deep=false"), 100)[2]
    assert p["method"] == 10 * 768  # VPT-Shallow: p * d
    assert p["head"] == 768 * 100 + 100
    p = build_offline(make_cfg(*VIT_BASE, "method=vqt", "method.num_tokens=1"), 100)[2]
    assert p["method"] == 12 * 1 * 768  # L * t * d query tokens
    assert p["head"] == (1 + 12 * 1) * 768 * 100 + 100  # the head over [CLS] and 12 query outputs


def test_vqt_query_outputs_are_the_layers_own_computation_on_rows_that_attend_only_to_the_tokens():
    model, _ = build("vqt", "method.num_tokens=2")
    layer = model.model.vit.layers[0]
    x, q = torch.randn(2, 17, 32), torch.randn(2, 2, 32)
    mask = torch.zeros(2, 1, 19, 19)
    mask[..., 17:] = float("-inf")  # no row attends to the query columns: keys and values are the tokens'
    with torch.no_grad():
        full = layer(torch.cat([x, q], dim=1), mask)
        torch.testing.assert_close(query_block(layer, x, q), full[:, 17:], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(layer(x, None), full[:, :17], atol=1e-5, rtol=1e-4)  # features intact


def test_vqt_and_lst_never_back_propagate_through_the_encoder_and_vpt_does():
    for method, reaches in (("vqt", False), ("lst", False), ("vpt", True)):
        model, _ = build(method)
        model.train()
        embeddings = model.vit.embeddings if method == "vpt" else model.model.vit.embeddings
        fired = []
        embeddings.register_full_backward_hook(lambda *args: fired.append(True))
        loss = model(pixel_values=torch.randn(2, 3, 32, 32, requires_grad=True), labels=torch.tensor([1, 2])).loss
        loss.backward()
        assert bool(fired) == reaches, method


@pytest.mark.parametrize("method", ["vpt", "vqt"])
def test_text_models_are_refused_naming_method_and_family(method):
    with pytest.raises(UserError, match=f"method {method} adds tokens to a ViT-style .* model family 'bert'"):
        build_counted(make_cfg("model=tiny", f"method={method}"), 2)
