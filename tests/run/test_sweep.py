"""Sweeps through `peftbench run -m` (Hydra multirun, in-process): the grid, skipping finished runs,
redoing failed and missing ones, and a failing job that does not stop the others."""

import json

from conftest import TINY
from peftbench.cli import main

# in this process (launch.process=inline): fast; tests/run/test_sweep_process.py covers the default child processes
GRID = ["-m", *TINY, "method=lora,bitfit", "seed=1,2", "launch.process=inline"]


def _summary(results_dir):
    (ledger,) = sorted((results_dir / "sweeps").iterdir())[-1:]
    return json.loads((ledger / "summary.json").read_text())


def _runs(results_dir):
    return {p.parent.name: json.loads(p.read_text()) for p in (results_dir / "runs").glob("*/run.json")}


def test_grid_then_rerun_skips_ok_runs_and_redoes_failed_and_missing(tmp_path, capsys):
    assert main(["run", *GRID, f"results_dir={tmp_path}"]) == 0
    runs = _runs(tmp_path)
    assert sorted(runs) == sorted(f"tiny_{m}_demo_s{s}_hardware=cpu,task.generator_args.n_eval=128,"
                                  f"task.generator_args.n_train=256,train.log_every=2,train.max_steps=8"
                                  for m in ("lora", "bitfit") for s in (1, 2))
    assert {r["status"] for r in runs.values()} == {"ok"} and len({r["config_hash"] for r in runs.values()}) == 4
    assert _summary(tmp_path)["counts"]["ok"] == 4
    # inline: one process, so each run saw the ones before it (what the default child processes avoid)
    assert len({r["host"]["pid"] for r in runs.values()}) == 1
    assert sorted(r["memory"]["runs_before_in_process"] for r in runs.values())[-1] >= 3
    assert "peftbench sweep: 4 jobs: 4 ok" in capsys.readouterr().out

    names = sorted(runs)
    failed = tmp_path / "runs" / names[0] / "run.json"
    failed.write_text(json.dumps({**runs[names[0]], "status": "failed"}))
    (tmp_path / "runs" / names[1] / "run.json").unlink()
    assert main(["run", *GRID, f"results_dir={tmp_path}"]) == 0
    summary = _summary(tmp_path)
    assert summary["counts"]["skipped"] == 2 and summary["counts"]["ok"] == 2
    redone = {j["run_dir"].rsplit("/", 1)[-1] for j in summary["jobs"] if j["status"] == "ok"}
    assert redone == set(names[:2])
    assert _runs(tmp_path)[names[0]]["status"] == "ok"
    # the same config under another spelling is found by its hash, not its folder name
    single = ["run", *TINY, "method=lora", "seed=1", "train.max_steps=8", f"results_dir={tmp_path}"]
    assert main(single) == 0
    assert "peftbench: skipped" in capsys.readouterr().out
    assert main([*single, "--force"]) == 0
    assert "peftbench: ok" in capsys.readouterr().out


def test_a_failing_job_writes_a_failed_run_file_and_the_sweep_goes_on(tmp_path, capsys):
    code = main(["run", "-m", *TINY, "method=full", "train.max_grad_norm=0", "train.lr=1e30,1e-3", "launch.process=inline",
                 f"results_dir={tmp_path}"])
    assert code == 1  # a sweep with failed jobs exits 1, after every job ran
    by_lr = {r["config"]["train"]["lr"]: r for r in _runs(tmp_path).values()}
    assert by_lr[1e30]["status"] == "failed" and by_lr[1e30]["error"]["type"] == "NonFiniteLoss"
    assert by_lr[1e-3]["status"] == "ok"
    assert _summary(tmp_path)["counts"] == {"ok": 1, "skipped": 0, "failed": 1, "killed": 0, "running": 0}
    out = capsys.readouterr()
    assert "peftbench sweep: 2 jobs: 1 ok, 1 failed" in out.out and "NonFiniteLoss: loss is" in out.out


def test_task_folder_expands_in_a_multirun(capsys):
    from peftbench.config import check_group_choices

    expanded = check_group_choices(["task=glue,demo", "seed=1,2"], multirun=True)
    assert expanded[0] == "task=" + ",".join(f"glue/{t}" for t in
                                             ("cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb")) + ",demo"
    assert expanded[1] == "seed=1,2"
