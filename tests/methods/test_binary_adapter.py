"""Binary adapters (Jie et al. 2023): 1-bit weights in the forward pass, full-precision latent weights
trained through a straight-through estimator, stored size in bits, counts against the paper's.
The shared invariants (frozen tensors, falling loss, checkpoint reload) run in test_method_invariants."""

import math

import pytest
import torch

from conftest import make_cfg
from peftbench.cli import main
from peftbench.errors import UserError
from peftbench.methods.binary_adapter import QuantLinear, gaussian_levels
from peftbench.methods.counting import build_counted, build_offline
from test_method_invariants import base_model, batch, logits


def build(*knobs, model="tiny", task="demo"):
    torch.manual_seed(0)
    return build_counted(make_cfg(f"model={model}", f"task={task}", "method=binary_adapter", *knobs), 2)


def quant_layers(model):
    return [m for m in model.modules() if isinstance(m, QuantLinear)]


def test_one_bit_levels_are_the_lloyd_max_levels_of_a_normal():
    assert torch.allclose(gaussian_levels(1), torch.tensor([-1.0, 1.0]) * math.sqrt(2 / math.pi))
    # 2 bits: the classic Max (1960) quantiser for N(0, 1)
    assert torch.allclose(gaussian_levels(2), torch.tensor([-1.5104, -0.4528, 0.4528, 1.5104]), atol=1e-4)


def test_forward_weights_take_two_values_per_matrix_and_gradients_pass_straight_through():
    model, _, _ = build()
    layers = quant_layers(model)
    assert len(layers) == 2 * 2  # down and up, beside the feed-forward block of each of the 2 layers
    for layer in layers:
        w = layer.quantized_weight()
        assert torch.unique(w).numel() == 2
        latent = layer.weight.detach()
        assert torch.equal(torch.sign(w - w.mean()) > 0, latent > latent.mean())  # the sign of each entry kept
    model.train()
    model(**batch()).loss.backward()
    assert all(layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0 for layer in layers)


def test_starts_near_the_base_model_and_exactly_at_it_in_full_precision():
    inputs = batch()
    base = logits(base_model(), inputs)
    near = logits(build()[0], inputs)
    assert not torch.equal(near, base)  # the up projection starts at N(0, 0.001), as in the paper's code
    torch.testing.assert_close(near, base, atol=1e-3, rtol=0)
    torch.testing.assert_close(logits(build("method.bits=32")[0], inputs), base, atol=1e-5, rtol=1e-4)


def test_roberta_base_count_and_stored_bits_against_the_paper():
    # AdaptFormer beside each of the 12 feed-forward blocks: down 768x32 and up 32x768, no biases.
    cfg = make_cfg("model=roberta-base", "method=binary_adapter", "method.dim=32")
    p = build_offline(cfg, 2)[2]
    assert p["method"] == 12 * 2 * 768 * 32 == 589_824
    # stored: 1 bit per weight + an fp32 mean and std per matrix
    assert p["method_stored_bits"] == 12 * 2 * (768 * 32 + 2 * 32) == 591_360
    # The paper (ViT-B, d=768, 12 blocks; the authors' README): Bi-AdaptFormer-32 212.9 KB per task with
    # an fp32 head, the linear probe (that head alone) 140.8 KB: 72.1 KB for the 1-bit adapters.
    assert abs(p["method_stored_bits"] / 8 / 1024 - (212.9 - 140.8)) < 0.15
    two_bits = build_offline(make_cfg("model=roberta-base", "method=binary_adapter", "method.bits=2"), 2)[2]
    assert two_bits["method_stored_bits"] == 12 * 2 * (768 * 32 * 2 + 2 * 32)


def test_params_command_prints_the_stored_bits(capsys):
    assert main(["params", "model=roberta-base", "method=binary_adapter"]) == 0
    out = capsys.readouterr().out
    assert "method, stored bits       591,360  72.19 KiB as stored (2304.00 KiB in fp32)" in out
    assert main(["params", "model=roberta-base", "method=lora"]) == 0
    assert "stored bits" not in capsys.readouterr().out


def test_bad_knobs_and_unknown_family_are_refused():
    with pytest.raises(UserError, match=r"method.bits=3: choose 1, 2, 4, 8 or 32"):
        build("method.bits=3")
    with pytest.raises(UserError, match="binary_adapter.*model family 'mamba'"):
        build("model.family=mamba")


def test_trains_on_vit():
    model, _, p = build(model="tiny-vit", task="cifar10")
    assert p["method"] == 2 * 2 * 32 * 32
    out = model(pixel_values=torch.randn(2, 3, 32, 32), labels=torch.tensor([0, 1]))
    out.loss.backward()
    assert all(m.weight.grad is not None for m in quant_layers(model))
