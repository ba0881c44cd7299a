"""train.inference_cost: latency figures at batch 1 and the eval batch size, unmerged and merged, in the run
file; the merged model computes what the unmerged one did; methods that cannot merge say why."""

import pytest
import torch

from conftest import TINY, make_cfg
from peftbench.methods import METHODS
from peftbench.methods.counting import build_counted
from peftbench.run.runner import run
from peftbench.train.inference import merge

COST = [*TINY, "train.inference_cost=true", "train.inference_examples=16", "train.eval_batch_size=8"]


def test_lora_run_records_latency_unmerged_and_merged(tmp_path):
    record = run(make_cfg(*COST), tmp_path)
    inf = record["inference"]
    assert inf["examples"] == 16 and inf["eval_batch_size"] == 8 and inf["merge"] == "merge_and_unload"
    for figures in (inf["unmerged_ms_per_example"], inf["merged_ms_per_example"]):
        assert set(figures) == {"batch_1", "eval_batch"} and all(v > 0 for v in figures.values())
    assert inf["merged_max_abs_diff"] < 1e-4
    assert record["artifacts"]["trainable_weights_bytes"] > 0  # saved before the merge


@pytest.mark.parametrize("method", ["ssf", "sparse_ft"])
def test_methods_written_here_that_merge_record_merged_latency(tmp_path, method):
    """Method.merge is what inference uses: an in-house merge gets merged latency too."""
    record = run(make_cfg(*COST, f"method={method}"), tmp_path)
    inf = record["inference"]
    assert inf["merge"] == "merge" and set(inf["merged_ms_per_example"]) == {"batch_1", "eval_batch"}
    assert all(v > 0 for v in inf["merged_ms_per_example"].values())
    assert inf["merged_max_abs_diff"] < 1e-4


@pytest.mark.parametrize("method", ["adapter_houlsby", "prompt_tuning"])
def test_methods_that_do_not_merge_say_why(tmp_path, method):
    record = run(make_cfg(*COST, f"method={method}"), tmp_path)
    inf = record["inference"]
    assert "registers no Method.merge" in inf["merge"] and inf["merged_ms_per_example"] is None
    assert inf["unmerged_ms_per_example"]["batch_1"] > 0


@pytest.mark.parametrize("method", ["lora", "ia3", "loha"])
def test_merged_model_outputs_equal_unmerged(method):
    torch.manual_seed(0)
    model, _, _ = build_counted(make_cfg("model=tiny", f"method={method}"), 2)
    with torch.no_grad():  # trained-looking adapters: LoRA's B starts at 0, IA3's vectors at 1
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    model.eval()
    ids = torch.randint(1000, 5000, (3, 9))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    with torch.no_grad():
        before = model(**batch).logits
        base = model.get_base_model()
        with model.disable_adapter():
            plain = model(**batch).logits
        merged, reason = merge(model, METHODS.get(method))
        after = merged(**batch).logits
    assert reason is None and merged is base and not hasattr(merged, "peft_config")
    assert not torch.allclose(before, plain, atol=1e-3)  # the adapter changes the output ...
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)  # ... and merged it is the same
