"""model.quantization=4bit|8bit: bitsandbytes layers on load, peft's k-bit preparation, parameter counts
that match the full-precision model (a packed 4-bit weight counts its layer's parameters), a LoRA run that
trains on CPU (bitsandbytes >= 0.48 runs there), and clear errors where it cannot work."""

import importlib.util
import math

import pytest
import torch

from conftest import TINY_MODEL, make_cfg
from peftbench.errors import UserError
from peftbench.methods.counting import build_counted
from peftbench.run.runner import run

needs_bnb = pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None,
                               reason="bitsandbytes not installed: pip install 'peftbench[quant]'")


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    """tiny-llama saved as a checkpoint folder: quantisation happens while a checkpoint loads."""
    from peftbench.models import load_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    load_model(make_cfg("model=tiny-llama", "task=gsm8k").model, 10, kind="generation").save_pretrained(folder)
    return folder


def _cfg(folder, *extra):
    return make_cfg("model=tiny-llama", "task=gsm8k", "method=lora", "hardware=cpu", f"model.name_or_path={folder}", *extra)


@needs_bnb
@pytest.mark.parametrize("bits, layer", [("4bit", "Linear4bit"), ("8bit", "Linear8bitLt")])
def test_quantized_base_counts_like_the_full_precision_one(llama_folder, bits, layer):
    full, _, plain = build_counted(_cfg(llama_folder), 10)
    model, _, counts = build_counted(_cfg(llama_folder, f"model.quantization={bits}"), 10)
    q_proj = model.get_base_model().model.layers[0].self_attn.q_proj
    assert type(q_proj.base_layer).__name__ == layer
    packed = sum(p.numel() for p in model.get_base_model().parameters() if not p.requires_grad)
    if bits == "4bit":  # numel() of the packed weights is half their parameters: the counts must not be
        assert packed < plain["total"] - plain["trainable"]
    for key in ("base_total", "total", "trainable", "method", "trainable_pct"):
        assert counts[key] == plain[key], key
    assert all("lora_" in n for n in counts["trainable_names"])


@needs_bnb
def test_qlora_run_trains_on_cpu(tmp_path, llama_folder):
    from taskdata import gsm8k

    record = run(make_cfg(*TINY_MODEL, "model=tiny-llama", "task=gsm8k", f"model.name_or_path={llama_folder}",
                          f"task.data_dir={gsm8k(tmp_path / 'data')}", "task.max_new_tokens=4", "train.max_steps=4",
                          "model.quantization=4bit", "train.lr=1e-3"), tmp_path / "run")
    assert record["status"] == "ok" and all(math.isfinite(loss) for _, loss in record["loss_history"])
    assert record["config"]["model"]["quantization"] == "4bit" and record["params"]["method"] > 0


@needs_bnb
def test_4bit_layers_keep_their_layout_through_an_evaluation_on_avx512_bf16_cpus(monkeypatch, llama_folder):
    """On such a CPU, bitsandbytes repacks a 4-bit weight at its first no-grad eval forward: that failed on
    tiny-llama's 32-wide layers (narrower than a 64-value block) and would leave training on a path with no
    backward. Here every CPU reports AVX512-BF16, so the test fails without peftbench switching it off."""
    import bitsandbytes.nn.modules as bnb_modules

    monkeypatch.setattr(bnb_modules, "has_avx512bf16", lambda: True)
    model, _, _ = build_counted(_cfg(llama_folder, "model.quantization=4bit"), 10)
    layers = [m for m in model.modules() if type(m).__name__ == "Linear4bit"]
    ids = torch.randint(0, 100, (2, 8))
    model.eval()
    with torch.no_grad():
        model(input_ids=ids)
    assert layers and not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers)
    model.train()
    model(input_ids=ids).logits.float().pow(2).mean().backward()
    lora_b = model.get_base_model().model.layers[0].self_attn.q_proj.lora_B.default.weight
    assert lora_b.grad is not None and lora_b.grad.abs().sum() > 0


def test_random_init_models_and_bad_values_are_refused(monkeypatch):
    with pytest.raises(UserError, match="model.quantization='int4': must be one of 4bit, 8bit"):
        build_counted(make_cfg("model=tiny-llama", "task=gsm8k", "model.quantization=int4"), 10)
    if importlib.util.find_spec("bitsandbytes") is not None:
        with pytest.raises(UserError, match="Give model.name_or_path"):
            build_counted(make_cfg("model=tiny-llama", "task=gsm8k", "model.quantization=4bit"), 10)
    # where bitsandbytes is missing, the message says what to install
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(UserError, match=r"needs bitsandbytes, which is not installed: pip install 'peftbench\[quant\]'"):
        build_counted(make_cfg("model=tiny-llama", "task=gsm8k", "model.quantization=4bit"), 10)
