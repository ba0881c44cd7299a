"""Task kinds beyond classification: the answer-only loss mask, batched greedy generation, choice
scoring by log-likelihood, and each kind end to end on a tiny model and local data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import taskdata
from conftest import make_cfg
from peftbench.train.kinds import lm
from peftbench.models import load_model, load_tokenizer
from peftbench.run.runner import run

# MiniLM's tokenizer (borrowed by the tiny models): these ids are what it gives.
PROMPT = "Question: what is 2+2?\nAnswer:"
PROMPT_IDS = [3160, 1024, 2054, 2003, 1016, 1009, 1016, 1029, 3437, 1024]
ANSWER_IDS = [1001, 1001, 1001, 1001, 4413]  # " #### 42"
SEP = 102  # [SEP] ends every answer (the tokenizer has no eos token)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(make_cfg("model=tiny-gpt2").model)


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(0)
    return load_model(make_cfg("model=tiny-gpt2").model, 0, kind="generation").eval()


def test_loss_only_on_answer_tokens_label_mask_exact(tokenizer):
    df = pd.DataFrame({"prompt": [PROMPT], "target": ["#### 42"]})
    [f] = lm.causal_features(df, tokenizer, " ", max_length=64)
    assert f["input_ids"] == PROMPT_IDS + ANSWER_IDS + [SEP]
    assert f["labels"] == [-100] * 10 + ANSWER_IDS + [SEP]
    assert f["attention_mask"] == [1] * 16
    # too long: the prompt loses its start, the answer stays whole
    [short] = lm.causal_features(df, tokenizer, " ", max_length=8)
    assert short["input_ids"] == [3437, 1024] + ANSWER_IDS + [SEP]
    assert short["labels"] == [-100, -100] + ANSWER_IDS + [SEP]


def test_padded_batch_loss_is_the_mean_over_answer_tokens(tokenizer, gpt2):
    df = pd.DataFrame({"prompt": [PROMPT, "Question: and 1+1?\nAnswer:"], "target": ["#### 42", "2"]})
    features = lm.causal_features(df, tokenizer, " ", max_length=64)
    batch = lm.collate(features, pad_id=0)
    assert batch["labels"][1].tolist()[-4:] == [-100] * 4 and batch["attention_mask"][1].tolist()[-4:] == [0] * 4
    loss = gpt2(**batch).loss
    terms = []
    for f in features:  # each example alone, unpadded: -log p(token) at every labelled position
        ids = torch.tensor([f["input_ids"]])
        logp = torch.log_softmax(gpt2(input_ids=ids).logits[0], -1)
        terms += [-logp[p - 1, t] for p, t in enumerate(f["labels"]) if t != -100]
    assert len(terms) == 6 + 2
    assert loss.item() == pytest.approx(torch.stack(terms).mean().item(), abs=1e-5)


def test_batched_left_padded_greedy_generation_equals_one_by_one(tokenizer, gpt2):
    df = pd.DataFrame({"prompt": [PROMPT, "Hi", "Question: a much longer prompt than the others here\nAnswer:"]})
    features = lm.prompt_features(df, tokenizer, max_length=64)
    batch = lm.collate(features, pad_id=0, left=True)
    assert batch["attention_mask"][1].tolist()[0] == 0  # padded on the left
    out = lm.generate(gpt2, batch, tokenizer, max_new_tokens=5, decoder_only=True)
    assert out.shape[1] <= 5
    for i, f in enumerate(features):
        alone = lm.generate(gpt2, lm.collate([f], pad_id=0), tokenizer, max_new_tokens=5, decoder_only=True)
        assert out[i, :alone.shape[1]].tolist() == alone[0].tolist()


def test_choice_scores_equal_a_direct_log_likelihood(tokenizer, gpt2):
    df = pd.DataFrame({"prompt": ["Is the sky blue?", "Pick a fruit:"],
                       "choices": [["no", "yes"], ["apple", "a very long sentence about pears", "kiwi"]]})
    features = lm.choice_features(df, tokenizer, " ", max_length=64)
    assert [(f["example"], f["choice"]) for f in features] == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    with torch.no_grad():
        batched = lm.continuation_logprobs(gpt2, lm.collate(features, pad_id=0))
        for f, score in zip(features, batched):
            prompt = tokenizer(df["prompt"][f["example"]], add_special_tokens=False)["input_ids"]
            choice = tokenizer(" " + df["choices"][f["example"]][f["choice"]], add_special_tokens=False)["input_ids"]
            logp = torch.log_softmax(gpt2(input_ids=torch.tensor([prompt + choice])).logits[0], -1)
            direct = sum(logp[len(prompt) + k - 1, t] for k, t in enumerate(choice))
            assert f["n_answer"] == len(choice) and f["chars"] == len(" " + df["choices"][f["example"]][f["choice"]])
            assert score.item() == pytest.approx(direct.item(), abs=1e-4)


def _run(tmp_path, *overrides):
    record = run(make_cfg(*taskdata.QUICK, *overrides), tmp_path / "run")
    on_disk = json.loads((tmp_path / "run" / "run.json").read_text())
    assert on_disk["status"] == "ok" and on_disk["metrics"] == record["metrics"]
    return record


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-llama"])
def test_generation_end_to_end(tmp_path, model):
    data = taskdata.gsm8k(tmp_path / "gsm8k")
    record = _run(tmp_path, f"model={model}", "task=gsm8k", f"task.data_dir={data}", "task.max_new_tokens=6")
    assert record["main_metric"] == "exact_match" and 0 <= record["main_score"] <= 1
    assert record["data"]["eval_examples"] == {"test": 6}
    assert record["config"]["task"]["version"] == "1"
    assert record["params"]["head"] == 0  # the LM head is not a task head: LoRA trains only its matrices


def test_multiple_choice_end_to_end(tmp_path):
    data = taskdata.piqa(tmp_path / "piqa")
    record = _run(tmp_path, "model=tiny-gpt2", "task=piqa", f"task.data_dir={data}")
    assert set(record["metrics"]) == {"accuracy", "accuracy_norm"} and record["main_metric"] == "accuracy_norm"
    # eval speed counts examples, not (example, choice) sequences: one evaluation of the test split
    scored = record["throughput"]["eval_samples_per_s"] * record["throughput"]["eval_s_per_eval"]
    assert scored == pytest.approx(sum(record["data"]["eval_examples"].values()), rel=0.05)
    data = taskdata.boolq(tmp_path / "boolq")  # fixed choices, labels true/false mapped by label_names
    record = _run(tmp_path / "b", "model=tiny-gpt2", "task=boolq", f"task.data_dir={data}")
    assert record["metrics"]["accuracy"] in {i / 6 for i in range(7)}


def test_seq2seq_end_to_end(tmp_path):
    data = taskdata.samsum(tmp_path / "samsum")
    record = _run(tmp_path, "model=tiny-t5", "task=samsum", f"task.data_dir={data}", "task.max_new_tokens=6")
    assert set(record["metrics"]) == {"rouge1", "rouge2", "rougel"} and record["main_metric"] == "rougel"


def test_image_classification_end_to_end(tmp_path):
    data = taskdata.cifar10(tmp_path / "cifar10")
    record = _run(tmp_path, "model=tiny-vit", "task=cifar10", f"task.data_dir={data}")
    assert record["main_metric"] == "accuracy" and record["metrics"]["accuracy"] in {i / 10 for i in range(11)}
    assert record["params"]["head"] == 32 * 10 + 10  # the new classifier trains beside LoRA
    assert record["throughput"]["train_samples"] == 3 * 4
    assert record["throughput"]["train_tokens_per_s"] is None  # images have no tokens
    assert set(record["data"]["tokenized"]["cache"].values()) == {"none"}  # only classification is cached


def test_image_processor_resizes_and_normalises(tmp_path):
    import numpy as np

    from peftbench.train.kinds import image
    from peftbench.models import load_image_processor

    processor = load_image_processor(make_cfg("model=tiny-vit").model)
    white = np.full((16, 16, 3), 255, dtype=np.uint8)
    batch = image.collate([{"image": white, "labels": 1}, {"image": np.zeros((20, 20), np.uint8), "labels": 0}],
                          processor)
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["pixel_values"][0].allclose(torch.tensor(1.0)) and batch["pixel_values"][1].allclose(torch.tensor(-1.0))


def test_cli_runs_a_generation_task(tmp_path):
    exe = Path(sys.executable).parent / "peftbench"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    data = taskdata.gsm8k(tmp_path / "gsm8k")
    out = subprocess.run([exe, "run", "model=tiny-gpt2", "task=gsm8k", f"task.data_dir={data}", "task.max_new_tokens=4",
                          *taskdata.QUICK, f"results_dir={tmp_path}"], capture_output=True, text=True, timeout=300,
                         env=env)
    assert out.returncode == 0, out.stderr
    [path] = tmp_path.rglob("run.json")
    record = json.loads(path.read_text())
    assert record["task"] == "gsm8k" and "exact_match" in record["metrics"]
    assert "eval:       exact_match" in out.stdout


@pytest.mark.parametrize("method", ["prompt_tuning", "prefix_tuning_peft"])
def test_prompt_learning_methods_generate_and_score_choices(tmp_path, method):
    """Virtual tokens (prompt tuning) lengthen the logits; a prefix (prefix tuning) does not: both score."""
    data = taskdata.piqa(tmp_path / "piqa")
    record = _run(tmp_path / "mc", "model=tiny-gpt2", "task=piqa", f"task.data_dir={data}", f"method={method}",
                  "method.num_virtual_tokens=4")
    assert set(record["metrics"]) == {"accuracy", "accuracy_norm"}
    data = taskdata.gsm8k(tmp_path / "gsm8k")
    record = _run(tmp_path / "gen", "model=tiny-llama", "task=gsm8k", f"task.data_dir={data}", f"method={method}",
                  "method.num_virtual_tokens=4", "task.max_new_tokens=4")
    assert "exact_match" in record["metrics"]


@pytest.mark.slow  # ~20 s alone, more on a busy machine
def test_generation_learns_a_fixed_answer_and_exact_match_sees_it(tmp_path):
    """Training target, decoding and answer extraction agree: a learnt answer scores 1.0."""
    rows = [{"question": f"Tom has {i} apples. How many?", "answer": "He has them.\n#### 7"} for i in range(64)]
    taskdata.write_jsonl(tmp_path / "data" / "train.jsonl", rows)
    taskdata.write_jsonl(tmp_path / "data" / "test.jsonl", rows[:8])
    record = _run(tmp_path, "model=tiny-gpt2", "task=gsm8k", f"task.data_dir={tmp_path / 'data'}", "method=full",
                  "train.lr=1e-2", "train.max_steps=100", "train.warmup_ratio=0", "train.batch_size=16",
                  "task.max_new_tokens=12")
    assert record["loss_history"][-1][1] < 0.1
    assert record["metrics"]["exact_match"] == 1.0


def test_evaluating_during_training_does_not_change_what_is_trained(tmp_path):
    # Eval loaders have their own generators: an evaluation draws nothing from the RNG dropout uses.
    from safetensors.torch import load_file

    data = taskdata.piqa(tmp_path / "piqa")
    common = ["model=tiny-gpt2", "task=piqa", f"task.data_dir={data}", "train.max_steps=4", "method=full",
              "train.save_trainable=true"]
    _run(tmp_path / "end", *common, "train.eval_every=0")
    _run(tmp_path / "often", *common, "train.eval_every=1")
    end, often = (load_file(tmp_path / d / "run" / "trainable.safetensors") for d in ("end", "often"))
    assert end.keys() == often.keys() and all(torch.equal(end[k], often[k]) for k in end)


@pytest.mark.parametrize("model, task, make, extra", [
    ("tiny-gpt2", "gsm8k", taskdata.gsm8k, ["task.max_new_tokens=6"]), ("tiny-gpt2", "piqa", taskdata.piqa, []),
    ("tiny-t5", "samsum", taskdata.samsum, ["task.max_new_tokens=6"])])
def test_token_features_are_cached_like_classification(tmp_path, model, task, make, extra):
    from peftbench.tasks import tokenized

    data = make(tmp_path / task)
    common = [f"model={model}", f"task={task}", f"task.data_dir={data}", f"cache_dir={tmp_path / 'cache'}", *extra]
    tokenized.clear_memory()
    first = _run(tmp_path / "first", *common)
    second = _run(tmp_path / "second", *common)
    tokenized.clear_memory()  # as another process of the sweep would
    third = _run(tmp_path / "third", *common)
    assert set(first["data"]["tokenized"]["cache"].values()) == {"miss"}
    assert set(second["data"]["tokenized"]["cache"].values()) == {"memory"}
    assert set(third["data"]["tokenized"]["cache"].values()) == {"disk"}
    assert first["loss_history"] == second["loss_history"] == third["loss_history"]
    assert first["metrics"] == second["metrics"] == third["metrics"]
