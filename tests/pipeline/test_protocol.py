"""What paper protocols need: evaluation every epoch with the best epoch reported, starting from another
run's trained tensors (`train.init_from`), and per-task settings (`per_task`)."""

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY_MODEL, make_cfg
from peftbench.config import apply_per_task, check_config
from peftbench.errors import UserError
from peftbench.methods import METHODS
from peftbench.methods.counting import build_counted
from peftbench.metrics import METRICS
from peftbench.run.runner import run
from peftbench.pipeline.init_from import find_init_run
from peftbench.train.checkpoint import load_initial

# 96 training examples at batch 32: 3 optimizer steps per epoch, 2 epochs.
EPOCHS = [m for m in TINY_MODEL if not m.startswith("train.max_steps")] + [
    "task.generator_args.n_train=96", "task.generator_args.n_eval=64", "train.batch_size=32", "train.epochs=2",
    "train.max_steps=-1", "train.checkpoint_every=0"]


def test_eval_every_epoch_evaluates_after_each_epoch_and_reports_the_best(tmp_path):
    record = run(make_cfg(*EPOCHS, "train.eval_every=epoch", "train.report=best", "train.lr=5e-3"), tmp_path)
    assert [h["step"] for h in record["eval_history"]] == [3, 6]
    best = max(record["eval_history"], key=lambda h: h["accuracy"])  # the first of equal scores is kept
    assert record["best"]["step"] == best["step"] and record["best"]["epoch"] == best["step"] / 3
    assert record["metrics"] == record["best"]["metrics"]
    assert record["main_score"] == record["best"]["metrics"]["accuracy"]


def test_report_last_keeps_the_final_evaluation(tmp_path):
    record = run(make_cfg(*EPOCHS, "train.eval_every=epoch"), tmp_path)
    assert record["metrics"] == {k: v for k, v in record["eval_history"][-1].items() if k != "step"}


@pytest.mark.parametrize("value", ["epochs", -1, 1.5])
def test_bad_eval_every_and_report_are_named(value):
    cfg = make_cfg(*EPOCHS, f"train.eval_every={value}", "train.report=bestest")
    _, problems = check_config(cfg, METHODS.get("lora"), METRICS.names())
    assert any(p.startswith(f"train.eval_every={value!r}") and "'epoch'" in p for p in problems), problems
    assert any(p.startswith("train.report='bestest'") for p in problems), problems


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    record = run(make_cfg(*EPOCHS, f"results_dir={results}", "train.lr=5e-3"), results / "runs" / "a")
    return record, results


def test_init_from_loads_every_trained_tensor_but_the_head(lora_run):
    record, _ = lora_run
    cfg = make_cfg(*EPOCHS, f"train.init_from={record['run_dir']}")
    model, _, counts = build_counted(cfg, 2)
    info = load_initial(model, find_init_run(cfg), counts["head_modules"])
    saved, now = load_file(f"{record['run_dir']}/trainable.safetensors"), model.state_dict()
    lora = [n for n in saved if "lora_" in n]
    head = [n for n in saved if "classifier" in n]
    assert lora and head and info["tensors"] == len(saved) - len(head) and info["skipped_head"] == ["classifier"]
    assert all(torch.equal(saved[n], now[n]) for n in lora)
    assert not any(torch.equal(saved[n], now[n]) for n in head if n in now)  # the head starts fresh


def test_init_from_a_task_finds_the_run_and_trains_from_it(lora_run, tmp_path):
    record, results = lora_run
    cfg = make_cfg(*EPOCHS, f"results_dir={results}", f"train.init_from=task:{record['task']}",
                   "task.generator_args.n_train=64", "train.max_steps=2")
    assert find_init_run(cfg)["run_dir"] == record["run_dir"]
    started = run(cfg, tmp_path)
    assert started["status"] == "ok" and started["init_from"]["run_dir"] == record["run_dir"]


def test_init_from_refuses_another_method_other_knobs_and_a_missing_run(lora_run, tmp_path):
    record, results = lora_run
    with pytest.raises(UserError, match="trained method 'lora', this one is 'bitfit'"):
        find_init_run(make_cfg(*EPOCHS, "method=bitfit", f"train.init_from={record['run_dir']}"))
    cfg = make_cfg(*EPOCHS, "method.r=4", f"train.init_from={record['run_dir']}")
    model, _, counts = build_counted(cfg, 2)
    with pytest.raises(UserError, match=r"do not fit this model x method: 0 unknown .* of another shape"):
        load_initial(model, find_init_run(cfg), counts["head_modules"])
    with pytest.raises(UserError, match="no ok run of tiny \\+ lora .* seed 7, on demo .* Run it first"):
        find_init_run(make_cfg(*EPOCHS, "seed=7", f"results_dir={results}", "train.init_from=task:demo"))
    with pytest.raises(UserError, match="no run file"):
        find_init_run(make_cfg(*EPOCHS, f"train.init_from={tmp_path}"))


def test_per_task_sets_its_task_keys_and_the_command_line_wins():
    cfg = make_cfg(*TINY_MODEL, "task=glue/rte", "++per_task={glue/rte: {train.epochs: 20, train.lr: 7e-4}, "
                                                   "glue/mrpc: {train.epochs: 30}}")
    applied = apply_per_task(cfg, explicit=["train.lr"])
    assert applied == {"train.epochs": 20}
    assert cfg.train.epochs == 20 and cfg.train.lr != 7e-4 and dict(cfg.per_task) == {}
    assert apply_per_task(cfg) == {}  # applied once: per_task is empty now


def test_per_task_refuses_a_key_the_config_does_not_have():
    cfg = make_cfg(*EPOCHS, "++per_task={demo: {train.epoch: 20}}")
    with pytest.raises(UserError, match=r"per_task.demo: unknown key\(s\) train.epoch"):
        apply_per_task(cfg)


@pytest.mark.parametrize("preset, task, expected", [
    ("lora_paper/roberta_base", "glue/mrpc", {"train.batch_size": 16, "train.epochs": 30, "train.lr": 4e-4,
                                              "train.init_from": "task:glue/mnli"}),
    ("lora_paper/roberta_large", "glue/sst2", {"train.batch_size": 4, "train.epochs": 10, "train.lr": 4e-4,
                                              "model.max_length": 128}),
    ("glue_minilm", "glue/sst2", {"train.epochs": 1, "task.max_train_samples": 5000, "task.sample_seed": 0}),
])
def test_a_preset_sets_its_per_task_values(preset, task, expected):
    """Table 9 of the LoRA paper (RoBERTa-base MRPC: batch 16, 30 epochs, lr 4e-4, from the MNLI weights;
    RoBERTa-large SST-2: batch 4, 10 epochs, lr 4e-4, length 128) and the MiniLM table's budget, as a job sees them."""
    from omegaconf import OmegaConf

    cfg = make_cfg(f"+experiment={preset}", f"task={task}")
    assert apply_per_task(cfg) == expected
    assert {k: OmegaConf.select(cfg, k) for k in expected} == expected
    assert cfg.train.eval_every == ("epoch" if preset.startswith("lora_paper") else 0)


def test_cfg_job_shows_the_values_the_run_uses(capsys):
    """`peftbench run --cfg job` prints the config with its task's per_task values applied and train.lr resolved."""
    from omegaconf import OmegaConf

    from peftbench.cli import main

    assert main(["run", "+experiment=lora_paper/roberta_base", "task=glue/rte", "--cfg", "job"]) == 0
    shown = OmegaConf.create(capsys.readouterr().out)
    assert shown.train.epochs == 80 and shown.train.init_from == "task:glue/mnli" and shown.per_task == {}
    assert shown.train.lr == shown.method.default_lr == 5e-4  # a number, not ${method.default_lr}
    assert main(["run", "+experiment=lora_paper/roberta_base", "task=glue/rte", "train.epochs=2", "--cfg", "job"]) == 0
    assert OmegaConf.create(capsys.readouterr().out).train.epochs == 2  # the command line wins
