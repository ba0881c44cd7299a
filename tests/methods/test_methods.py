"""Each method on the tiny BERT (d=32, 2 layers, intermediate 64, 2 labels): exact trainable counts."""

import pytest
from omegaconf import OmegaConf

from conftest import make_cfg
from peftbench.methods import METHODS
from peftbench.models import load_model
from peftbench.methods.counting import count_params

D, LAYERS, INTER, LABELS = 32, 2, 64, 2
HEAD = D * LABELS + LABELS  # classifier weight + bias


def build(method, *overrides):
    cfg = make_cfg("model=tiny", f"method={method}", *overrides)
    knobs, problems = METHODS.get(method).check(cfg.method)
    assert problems == []
    return METHODS.get(method).build(load_model(cfg.model, LABELS), knobs, "bert")


def test_full_trains_everything():
    p = count_params(build("full"))
    assert p["trainable"] == p["total"] and p["trainable_pct"] == 100.0


def test_head_trains_only_the_classifier():
    p = count_params(build("head"))
    assert p["trainable"] == HEAD
    assert p["trainable_names"] == ["classifier.weight", "classifier.bias"]


def test_bitfit_trains_biases_and_head():
    # per layer: q, k, v, attention-out (4d) + attention LayerNorm (d) + intermediate (i) + output (d)
    # + output LayerNorm (d); plus the embedding LayerNorm and the pooler biases.
    biases = LAYERS * (7 * D + INTER) + D + D
    p = count_params(build("bitfit"))
    assert p["trainable"] == biases + HEAD
    assert all(n.endswith(".bias") or n.startswith("classifier.") for n in p["trainable_names"])
    assert count_params(build("bitfit", "method.train_head=false"))["trainable"] == biases


@pytest.mark.parametrize("r", [4, 8])
def test_lora_counts_two_r_d_per_adapted_matrix_plus_head(r):
    p = count_params(build("lora", f"method.r={r}"))
    assert p["trainable"] == LAYERS * 2 * (2 * r * D) + HEAD  # query and value in each layer
    assert sum("lora_" in n for n in p["trainable_names"]) == LAYERS * 2 * 2


def test_lora_target_modules_knob():
    p = count_params(build("lora", "method.target_modules=[query,key,value]"))
    assert p["trainable"] == LAYERS * 3 * (2 * 8 * D) + HEAD


def test_adapter_unknown_family_is_a_clear_error():
    cfg = make_cfg("model=tiny", "method=adapter_houlsby")
    knobs, _ = METHODS.get("adapter_houlsby").check(cfg.method)
    from peftbench.errors import UserError
    with pytest.raises(UserError, match="does not know where to insert itself in model family 'funnel'"):
        METHODS.get("adapter_houlsby").build(load_model(cfg.model, LABELS), knobs, "funnel")


def test_method_knob_types_are_checked():
    cfg = make_cfg("model=tiny")
    bad = OmegaConf.merge(cfg.method, {"r": "eight"})
    _, problems = METHODS.get("lora").check(bad)
    assert problems == ["method.r='eight': expected int."]
