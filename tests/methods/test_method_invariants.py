"""Invariants every method must keep, checked on the tiny BERT (d=32, 2 layers) for every registered
method: identity at init where the method claims it, frozen tensors that really stay frozen, a loss
that falls, merges that keep the outputs, and trainable-only checkpoints that reproduce them."""

import pytest
import torch

from conftest import make_cfg
from peftbench.train.checkpoint import load_trainable, save_trainable
from peftbench.methods import METHODS
from peftbench.methods.counting import build_counted
from peftbench.methods.hooks import ATTRIBUTE, hooks_of

# Knobs that fit a d=32 model (the YAML defaults are sized for base models: d=768).
TINY_KNOBS = {
    "c3a": ["method.block_size=16"], "compacter": ["method.reduction_factor=4"],
    "compacterpp": ["method.reduction_factor=4"], "fourierft": ["method.n_frequency=100"],
    "miss": ["method.r=8"], "oft": ["method.oft_block_size=8"], "road": ["method.group_size=16"],
    "vblora": ["method.vector_length=16", "method.num_vectors=32"], "vera": ["method.r=8"],
    "waveft": ["method.n_frequency=100"], "boft": ["method.boft_block_size=8"],
    "adalora": ["method.total_step=30", "method.tinit=5", "method.tfinal=5"], "shira": ["method.r=4"],
    "lofit": ["method.top_k=2", "method.select_steps=10"],  # stage 2 (bias offsets) from step 10 of 30
    "pst": ["method.total_step=30"],  # the sparsity rises within the 30 steps of train_steps
    "triadaptlora": ["method.total_step=30", "method.interval=5"],  # ranks grow within the 30 steps
}
# Variants of one method that behave differently (mask rules of sparse_ft): tested as "<method>/<variant>".
VARIANTS = {"sparse_ft/pafi": ["method.mask=pafi", "method.density=0.05"],
            "sparse_ft/lift": ["method.mask=lift", "method.lift_rank=4", "method.density=0.05"],
            "sparse_ft/spiel": ["method.mask=spiel", "method.spiel_every=5", "method.spiel_drop=0.3",
                                "method.density=0.05"]}
# Methods that change the function at init, by design: prompts and prefixes add tokens; LST adds a
# side network with its own classifier; peft initialises FourierFT's spectrum (init_weights=false)
# and C3A's kernels (xavier_uniform) randomly by default; peftbench keeps peft's defaults.
# Binary adapters start their up projection at N(0, 0.001) (quantising a zero matrix is undefined), as
# the paper's code does: near the base model (tests/methods/test_binary_adapter.py), not at it.
# VPT and VQT add tokens and (VQT) a new head over them.
NOT_IDENTITY = {"prompt_tuning", "p_tuning", "prefix_tuning", "prefix_tuning_peft", "mam_adapter", "lst", "fourierft",
                "c3a", "binary_adapter", "vpt", "vqt"}
# Methods for ViT-style encoders only: checked on the tiny ViT (d=32, 2 layers, 32x32 images) instead.
VISION_ONLY = {"vpt", "vqt"}
# Methods that can be counted but not trained on a BERT encoder (see the method's error message).
CANNOT_TRAIN = {"prefix_tuning_peft"}
METHOD_NAMES = [*METHODS.names(), *VARIANTS]
TRAINABLE = [m for m in METHOD_NAMES if m not in CANNOT_TRAIN]
MERGEABLE = [m for m in TRAINABLE if METHODS.get(m.split("/")[0]).merge is not None]

LABELS = 2


def model_for(name):
    return ["model=tiny-vit", "task=cifar10"] if name in VISION_ONLY else ["model=tiny"]


def build(name, base=None):
    """(base model, model with the method): the same random base weights for every call (seed 0)."""
    method = name.split("/")[0]
    cfg = make_cfg(*model_for(method), f"method={method}", *TINY_KNOBS.get(method, []), *VARIANTS.get(name, []))
    torch.manual_seed(0)
    model, _, counts = build_counted(cfg, LABELS)
    return model, counts


def base_model():
    cfg = make_cfg("model=tiny", "method=full")
    torch.manual_seed(0)
    return build_counted(cfg, LABELS)[0]


def batch(n=8, length=12, seed=1, name=None):
    g = torch.Generator().manual_seed(seed)
    if name in VISION_ONLY:
        return {"pixel_values": torch.randn(n, 3, 32, 32, generator=g),
                "labels": torch.randint(0, LABELS, (n,), generator=g)}
    ids = torch.randint(1000, 5000, (n, length), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(0, LABELS, (n,), generator=g)}


def logits(model, inputs):
    model.eval()
    with torch.no_grad():
        return model(**{k: v for k, v in inputs.items() if k != "labels"}).logits


def train_steps(model, inputs, steps=30, lr=1e-2):
    """Full-batch AdamW on one batch; returns the losses. AdaLoRA's rank allocator runs as in `fit`."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    hooks = hooks_of(model)
    after_step = hooks.after_step
    if hooks.bind_optimizer is not None:
        hooks.bind_optimizer(optimizer)
    losses = []
    model.train()
    torch.manual_seed(2)
    for step in range(steps):
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step(step)
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", sorted(set(METHOD_NAMES) - NOT_IDENTITY))
def test_method_starts_as_the_base_model(name):
    model, _ = build(name)
    inputs = batch()
    torch.testing.assert_close(logits(model, inputs), logits(base_model(), inputs), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", TRAINABLE)
def test_loss_falls_and_frozen_tensors_do_not_change(name):
    model, counts = build(name)
    assert counts["trainable"] > 0
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    inputs = batch(name=name)
    losses = train_steps(model, inputs)
    assert min(losses[-5:]) < 0.9 * losses[0], f"{name}: loss {losses[0]:.4f} -> {losses[-5:]}"
    after = dict(model.named_parameters())
    changed_frozen = [n for n, before in frozen.items() if not torch.equal(after[n], before)]
    assert changed_frozen == []
    assert any(not torch.equal(after[n], before) for n, before in trained.items())


def test_full_trains_every_tensor():
    _, counts = build("full")
    assert counts["trainable"] == counts["total"] == counts["base_total"]


@pytest.mark.parametrize("name", MERGEABLE)
def test_merge_keeps_the_outputs(name):
    model, counts = build(name)
    inputs = batch(name=name)
    train_steps(model, inputs, steps=5)  # a non-zero update, so the merge has something to fold in
    before = logits(model, inputs)
    merged = METHODS.get(name.split("/")[0]).merge(model)
    torch.testing.assert_close(logits(merged, inputs), before, atol=1e-4, rtol=1e-3)
    # Nothing of the method is left but the merged base weights (peft keeps one head copy; its LN tuning
    # unload keeps two: the trained head and the original one beside it).
    extra = counts["head"] if name == "ln_tuning" else 0
    assert sum(p.numel() for p in merged.parameters()) == counts["base_total"] + extra


@pytest.mark.parametrize("name", TRAINABLE)
def test_trainable_only_checkpoint_reproduces_the_outputs(name, tmp_path):
    model, _ = build(name)
    inputs = batch(name=name)
    train_steps(model, inputs, steps=3)
    expected = logits(model, inputs)
    path = save_trainable(model, tmp_path / "trainable.safetensors")
    fresh, _ = build(name)  # the same base weights, the method at its init
    assert not torch.allclose(logits(fresh, inputs), expected)
    torch.testing.assert_close(logits(load_trainable(fresh, path), inputs), expected)


def test_checkpoint_for_another_method_is_refused(tmp_path):
    from peftbench.errors import UserError

    lora, _ = build("lora")
    path = save_trainable(lora, tmp_path / "lora.safetensors")
    with pytest.raises(UserError, match="does not match this model x method"):
        load_trainable(build("ia3")[0], path)


def test_build_is_deterministic():
    """The checks above compare separately built models: the same seed must give the same weights."""
    inputs = batch()
    assert torch.equal(logits(build("lora")[0], inputs), logits(build("lora")[0], inputs))


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_method_sets_only_declared_hooks(name):
    """What a method sets on the model for the run goes through methods/hooks.py (ModelHooks), nothing else."""
    model, _ = build(name)
    stray = [f"{m}.{a}" for m, module in model.named_modules() for a in vars(module)
             if a.startswith("peftbench_") and a != ATTRIBUTE]
    assert not stray, f"{name} sets undeclared hooks: {stray}"
