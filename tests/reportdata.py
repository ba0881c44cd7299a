"""Hand-made run files for the report tests (tests/report/, tests/test_cli_options.py): three methods on
MRPC, MNLI and RTE with hand-computed scores (tests/report/test_report.py says what each table shows)."""

from pathlib import Path

from peftbench.cli import main
from peftbench.runfile import write_atomic

TASKS = {"glue/mrpc": ({"metrics": ["accuracy", "f1"], "eval_splits": None}, "accuracy"),
         "glue/mnli": ({"metrics": ["accuracy"], "eval_splits": {"validation_matched": "",
                                                                 "validation_mismatched": "_mm"}}, "accuracy"),
         "glue/rte": ({"metrics": ["accuracy"], "eval_splits": None}, "accuracy")}
BASE = 124_645_632
PARAMS = {"lora": {"trainable": 296_450, "total": BASE + 296_450, "base_total": BASE, "trainable_pct": 0.2378,
                   "method": 294_912, "method_pct": 0.2366, "head": 1_538},
          "full": {"trainable": BASE, "total": BASE, "base_total": BASE, "trainable_pct": 100.0,
                   "method": BASE - 1_538, "method_pct": 99.9988, "head": 1_538},
          "bitfit": {"trainable": 102_914, "total": BASE, "trainable_pct": 0.0826}}  # older file
COST = {"lora": (100.0, 10.0), "full": (50.0, 20.0), "bitfit": (120.0, 8.0)}  # samples/s, train s
MEMORY = {("lora", "glue/mrpc"): 1000.0, ("lora", "glue/mnli"): 1200.0, ("lora", "glue/rte"): 1100.0}


def fake_run(root, method, task, seed, metrics, status="ok", model="roberta-base", config=None):
    """A run file under root/<model>_<method>_<task>_s<seed>/; `config` adds top-level config groups."""
    task_cfg, main_metric = TASKS[task] if task in TASKS else ({"metrics": list(metrics)}, next(iter(metrics)))
    record = {"status": status, "model": model, "method": method, "task": task, "seed": seed,
              "config": {"task": {"name": task, **task_cfg}, "method": {"name": method}, **(config or {})},
              "metrics": metrics, "main_metric": main_metric, "main_score": metrics.get(main_metric),
              "params": PARAMS.get(method, PARAMS["lora"]),
              "memory": {"device": "cpu", "peak_rss_mb": MEMORY.get((method, task), 2000.0 if method == "full"
                                                                    else 900.0), "cuda_max_allocated_mb": None},
              "throughput": {"train_samples_per_s": COST.get(method, (1, 1))[0]},
              "timing": {"train_s": COST.get(method, (1, 1))[1]},
              "error": None if status == "ok" else {"type": "NonFiniteLoss", "message": "loss is nan at step 3\n.."}}
    write_atomic(Path(root) / f"{model}_{method}_{task.replace('/', '-')}_s{seed}" / "run.json", record)


def fixture_runs(root):
    for seed, (acc, f1, m, mm, rte) in enumerate([(.80, .86, .80, .81, .70), (.84, .90, .82, .83, .74)], 1):
        fake_run(root, "lora", "glue/mrpc", seed, {"accuracy": acc, "f1": f1})
        fake_run(root, "lora", "glue/mnli", seed, {"accuracy": m, "accuracy_mm": mm})
        fake_run(root, "lora", "glue/rte", seed, {"accuracy": rte})
    for seed, (acc, f1, rte) in enumerate([(.84, .89, .75), (.86, .91, .77)], 1):
        fake_run(root, "full", "glue/mrpc", seed, {"accuracy": acc, "f1": f1})
        fake_run(root, "full", "glue/mnli", seed, {"accuracy": .84, "accuracy_mm": .85})
        fake_run(root, "full", "glue/rte", seed, {"accuracy": rte})
    fake_run(root, "bitfit", "glue/mrpc", 1, {"accuracy": .78, "f1": .85})
    fake_run(root, "bitfit", "glue/mnli", 1, {"accuracy": .79, "accuracy_mm": .80})
    fake_run(root, "bitfit", "glue/rte", 1, {}, status="failed")


def report(capsys, *args) -> str:
    assert main(["report", *args]) == 0
    return capsys.readouterr().out
