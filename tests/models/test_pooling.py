"""`model.pooling` (peftbench/models/pooling.py) on the tiny BERT: what the classifier reads, and that the
head (classifier, plus BERT's pooler under `pooler`) is trained, counted, saved and restored for every method."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, make_cfg
from peftbench.errors import UserError
from peftbench.methods.counting import build_counted, count_params
from peftbench.models import load_model
from peftbench.models.pooling import SequencePooling, masked_mean
from peftbench.pipeline.init_from import find_init_run
from peftbench.run.runner import run
from peftbench.run.sweep import config_hash
from peftbench.train.checkpoint import load_initial

D, LABELS = 32, 2
POOLER = D * D + D  # BERT's pooler: dense weight + bias
HEAD = D * LABELS + LABELS
V1_GLUE = ("full", "head", "bitfit", "lora", "dora", "ia3", "vera", "adapter_houlsby", "adapter_pfeiffer",
           "compacter", "ssf", "lst", "prompt_tuning")
KNOBS = {"compacter": ("method.reduction_factor=4",)}  # a bottleneck that divides by phm_dim at d=32


def _batch(length=9):
    torch.manual_seed(0)
    ids = torch.randint(1000, 2000, (3, length))
    mask = torch.ones(3, length, dtype=torch.long)
    mask[0, 5:], mask[1, 2:] = 0, 0
    return ids, mask


def _model(pooling, method="head"):
    torch.manual_seed(0)
    cfg = make_cfg("model=tiny", f"method={method}", f"model.pooling={pooling}", *KNOBS.get(method, ()))
    model, _, counts = build_counted(cfg, LABELS)
    return model.eval(), counts


def test_mean_is_the_masked_mean_of_the_last_hidden_states_through_the_classifier():
    model, _ = _model("mean")
    ids, mask = _batch()
    with torch.no_grad():
        hidden = model.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        by_hand = torch.stack([hidden[i, :int(mask[i].sum())].mean(0) for i in range(3)])
        logits = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(logits, model.classifier(by_hand))
    assert not torch.allclose(by_hand, hidden[:, 0])  # the padded positions really are left out


def test_cls_reads_the_raw_first_vector_and_removes_the_pooler():
    model, counts = _model("cls")
    ids, mask = _batch()
    with torch.no_grad():
        hidden = model.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits, model.classifier(hidden[:, 0]))
    assert not any("pooler.dense" in n for n, _ in model.named_parameters())
    default = _model("default")[1]
    assert counts["base_total"] == counts["total"] == default["base_total"] - POOLER  # the pooler is gone
    assert counts["trainable"] == counts["head"] == HEAD


def test_pooler_is_the_pretrained_pooler_moved_into_the_head():
    default, _ = _model("default")
    pooled, counts = _model("pooler")
    ids, mask = _batch()
    with torch.no_grad():  # same weights (same seed), same outputs: only where the pooler lives changes
        torch.testing.assert_close(pooled(input_ids=ids, attention_mask=mask).logits,
                                   default(input_ids=ids, attention_mask=mask).logits)
    assert counts["head"] == counts["trainable"] == POOLER + HEAD and counts["base_total"] == counts["total"]
    assert {n for n, p in pooled.named_parameters() if p.requires_grad} == {
        "classifier.dense.weight", "classifier.dense.bias", "classifier.out.weight", "classifier.out.bias"}


@pytest.mark.parametrize("pooling, head", [("pooler", POOLER + HEAD), ("mean", HEAD), ("cls", HEAD)])
def test_head_counts_for_a_peft_method(pooling, head):
    _, counts = _model(pooling, "lora")
    assert counts["head"] == head and counts["head_modules"] == ["classifier"]
    assert counts["method"] == _model("default", "lora")[1]["method"]  # the method's own count is unchanged


def test_mean_pools_the_virtual_tokens_prompt_tuning_prepends():
    model, _ = _model("mean", "prompt_tuning")
    ids, mask = _batch()
    model(input_ids=ids, attention_mask=mask)
    pool = model.base_model.bert.pooler
    n = model.peft_config["default"].num_virtual_tokens
    assert isinstance(pool, SequencePooling) and pool.mask.shape == (3, 9 + n)
    assert pool.mask[:, :n].all() and torch.equal(pool.mask[:, n:], mask)


def test_masked_mean_refuses_a_mask_of_another_length():
    with pytest.raises(RuntimeError, match="mask of length 4 for 5"):
        masked_mean(torch.zeros(2, 5, 3), torch.ones(2, 4))


def _trained(method, pooling, tmp_path, *extra):
    record = run(make_cfg(*TINY, f"method={method}", f"model.pooling={pooling}", "train.max_steps=3", *extra),
                 tmp_path)
    assert record["status"] == "ok", record.get("error")
    return record, load_file(str(tmp_path / "trainable.safetensors"))


def _head_tensors(named) -> dict:
    """The head's tensors by their name inside the head (dense.weight, out.bias, ...), any wrapping removed."""
    from peftbench.methods.counting import canonical_name

    return {canonical_name(n).rpartition("classifier.")[2]: t for n, t in named
            if canonical_name(n).startswith("classifier.")}


FAST = ("lora", "lst", "prompt_tuning")


@pytest.mark.parametrize("method", [m if m in FAST else pytest.param(m, marks=pytest.mark.slow) for m in V1_GLUE])
def test_every_v1_method_trains_and_saves_the_pooler_head(method, tmp_path):
    from accelerate.utils import set_seed

    record, saved = _trained(method, "pooler", tmp_path, *KNOBS.get(method, ()))
    head = _head_tensors(saved.items())
    assert set(head) == {"dense.weight", "dense.bias", "out.weight", "out.bias"}
    assert record["params"]["head"] == POOLER + HEAD
    set_seed(42)  # the model the run started from: same seed, same build
    model, _, _ = build_counted(make_cfg(*TINY, f"method={method}", "model.pooling=pooler", *KNOBS.get(method, ())),
                                LABELS)
    before = _head_tensors(model.named_parameters())
    for name in head:  # every head tensor moved in 3 steps, the pooler's dense included
        assert not torch.equal(head[name], before[name].detach()), name


@pytest.mark.parametrize("method", V1_GLUE)
def test_every_v1_method_reads_the_masked_mean(method):
    model, counts = _model("mean", method)
    ids, mask = _batch()
    model.train()
    model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 0])).loss.backward()
    pools = [m for m in model.modules() if isinstance(m, SequencePooling)]
    assert len(pools) == 1 and pools[0].mode == "mean" and pools[0].mask.shape[-1] >= ids.shape[1]
    head = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith(
        ("classifier.", "base_model.classifier.", "base_model.model.classifier."))]
    assert counts["head"] == HEAD and sum(p.numel() for p in head) == HEAD
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head)


def test_default_leaves_the_pooler_frozen_under_lora(tmp_path):
    record, saved = _trained("lora", "default", tmp_path)
    assert not any("pooler" in n for n in saved) and record["params"]["head"] == HEAD


def test_default_keeps_the_config_hash_of_runs_made_before_the_setting():
    from omegaconf import OmegaConf

    cfg = make_cfg(*TINY)
    hashed = config_hash(cfg, [])
    before = OmegaConf.create(OmegaConf.to_container(cfg))  # a config composed before model.pooling existed
    del before.model["pooling"]
    assert config_hash(before, []) == hashed
    assert config_hash(make_cfg(*TINY, "model.pooling=mean"), []) != hashed


def test_a_pooled_run_resumes_to_the_same_trained_head(tmp_path):
    extra = ("train.checkpoint_every=4", "train.keep_checkpoint=true", "train.max_steps=8")
    whole = run(make_cfg(*TINY, "method=lora", "model.pooling=pooler", *extra), tmp_path)
    done = load_file(str(tmp_path / "trainable.safetensors"))
    shutil.rmtree(tmp_path / "checkpoints" / "step-0000008", ignore_errors=True)
    (tmp_path / "run.json").write_text(json.dumps({**whole, "status": "killed"}))
    record = run(make_cfg(*TINY, "method=lora", "model.pooling=pooler", *extra), tmp_path)
    assert record["resumed_from"]["step"] == 4
    resumed = load_file(str(tmp_path / "trainable.safetensors"))
    assert any(".dense." in n for n in resumed) and resumed.keys() == done.keys()
    for name in done:
        torch.testing.assert_close(resumed[name], done[name], rtol=0, atol=1e-6, msg=name)
    # train.init_from: the method's tensors load; the head, the pooler with it, starts new (as for a new task)
    cfg = make_cfg(*TINY, "method=lora", "model.pooling=pooler", f"train.init_from={tmp_path}")
    model, _, counts = build_counted(cfg, LABELS)
    info = load_initial(model, find_init_run(cfg), counts["head_modules"])
    assert info["skipped_head"] == ["classifier"] and info["tensors"] == sum("lora_" in n for n in done)


@pytest.mark.parametrize("model, family", [("tiny-gpt2", "gpt2"), ("roberta-base", "roberta")])
def test_other_families_are_refused_with_the_choices(model, family):
    cfg = make_cfg(f"model={model}", "model.pooling=mean")
    with pytest.raises(UserError, match=f"family '{family}'.*Use model.pooling=default"):
        load_model(cfg.model, LABELS, weights=False)


def test_other_task_kinds_are_refused():
    cfg = make_cfg("model=tiny-vit", "model.pooling=cls")
    with pytest.raises(UserError, match="not to task kind 'image_classification'"):
        load_model(cfg.model, LABELS, weights=False, kind="image_classification")


def test_a_bad_value_is_a_config_problem():
    from peftbench.config import check_config
    from peftbench.methods import METHODS

    cfg = make_cfg(*TINY, "model.pooling=avg")
    _, problems = check_config(cfg, METHODS.get("lora"), ["accuracy"])
    assert any("model.pooling='avg': must be one of default, pooler, cls, mean" in p for p in problems)


def test_count_params_without_the_run():
    model = load_model(make_cfg("model=tiny", "model.pooling=mean").model, LABELS)
    assert count_params(model)["total"] == count_params(load_model(make_cfg("model=tiny").model, LABELS))["total"] - POOLER


def test_peft_trains_a_head_of_several_modules_whole_as_in_house_methods_do():
    deberta = ("model=tiny", "model.arch.model_type=deberta-v2", "model.family=deberta-v2")
    counts = {m: build_counted(make_cfg(*deberta, f"method={m}"), LABELS, weights=False)[2]
              for m in ("lora", "adapter_houlsby")}
    assert counts["lora"]["head_modules"] == ["pooler", "classifier"]
    assert counts["lora"]["head"] == counts["adapter_houlsby"]["head"] == POOLER + HEAD  # DeBERTa's pooler trains


def test_masked_mean_under_bf16_is_the_exact_mean_rounded_once():
    torch.manual_seed(0)
    hidden, mask = torch.randn(64, 100, 8).to(torch.bfloat16), (torch.rand(64, 100) > 0.3).long()
    exact = (hidden.double() * mask.double().unsqueeze(-1)).sum(1) / mask.double().sum(1, keepdim=True)
    mean = masked_mean(hidden, mask)  # a sum rounded to bf16, then divided, misses in a quarter of the entries
    assert mean.dtype == torch.bfloat16 and torch.equal(mean, exact.to(torch.bfloat16))
