"""scripts/glue_v2.py, the GLUE v2 driver: its rate-pick rule, the jobs it queues, and (slow) one real
pilot + grid on a tiny model and generated GLUE-shaped files, stopped by its deadline and resumed."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("glue_v2", ROOT / "scripts" / "glue_v2.py")
glue_v2 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(glue_v2)


def _run(method, task, lr, score, seed=1, status="ok", parity=False):
    return {"method": method, "task": task, "seed": seed, "status": status, "main_score": score,
            "config": {"train": {"lr": float(lr), "group_by_length": not parity}, "model": {"pooling": "default"},
                       "hardware": {"mixed_precision": "no" if parity else "bf16"}}}


def test_pick_takes_the_best_mean_over_the_pilot_tasks_and_the_smaller_rate_on_a_tie():
    rates = ["1e-3", "3e-3", "1e-2"]
    runs = [_run("bitfit", "glue/cola", "1e-3", 0.30), _run("bitfit", "glue/rte", "1e-3", 0.60),
            _run("bitfit", "glue/cola", "3e-3", 0.40), _run("bitfit", "glue/rte", "3e-3", 0.50),
            _run("bitfit", "glue/cola", "1e-2", 0.10), _run("bitfit", "glue/rte", "1e-2", 0.55),
            _run("lora", "glue/cola", "3e-3", 0.99), _run("bitfit", "glue/cola", "1e-2", 0.9, seed=2)]
    picked = glue_v2.pick("bitfit", runs, rates)
    assert picked["lr"] == "1e-3"  # 0.45 each for 1e-3 and 3e-3: the smaller; seed 2 and lora ignored
    assert picked["scores"]["1e-2"] == {"glue/cola": 0.10, "glue/rte": 0.55}


def test_pick_waits_while_a_pilot_run_is_missing_or_not_ok():
    rates = ["1e-3", "3e-3"]
    runs = [_run("head", t, r, 0.5) for t in glue_v2.PILOT_TASKS for r in rates]
    runs[-1]["status"] = "killed"
    assert glue_v2.pick("head", runs, rates) is None
    runs[-1]["status"] = "ok"
    assert glue_v2.pick("head", runs, rates)["lr"] == "1e-3"


def test_the_grid_covers_every_task_with_its_seeds_at_the_picked_rate():
    jobs = glue_v2.grid_jobs("lora", "1.5e-3", 1, 0)
    tasks = {o.split("=")[1]: next(x for x in j.overrides if x.startswith("seed=")) for j in jobs
             for o in j.overrides if o.startswith("task=")}
    assert tasks == {"glue/mrpc": "seed=1,2,3", "glue/stsb": "seed=1,2,3", "glue/cola": "seed=1,2,3",
                     "glue/rte": "seed=1,2,3,4,5", "glue/sst2": "seed=1,2,3"}
    assert all("train.lr=1.5e-3" in j.overrides for j in jobs)
    assert set(glue_v2.PILOT_RATES) == set(glue_v2.REQUIRED + glue_v2.OTHERS)


def test_a_job_is_done_when_each_of_its_runs_has_an_ok_run_file():
    job = glue_v2.grid_jobs("lora", "1.5e-3", 1, 0)[0]  # glue/mrpc, seeds 1-3
    runs = [_run("lora", "glue/mrpc", "1.5e-3", 0.8, seed=s) for s in (1, 2)]
    assert not job.done(runs)
    assert not job.done(runs + [_run("lora", "glue/mrpc", "1.5e-3", 0.8, seed=3, status="killed")])
    assert not job.done(runs + [_run("lora", "glue/mrpc", "5e-4", 0.8, seed=3)])
    assert job.done(runs + [_run("lora", "glue/mrpc", "0.0015", 0.8, seed=3)])
    job.drop_done_seeds(runs)
    assert job.seeds == [3] and "seed=3" in job.overrides  # seeds 1 and 2 ran elsewhere: not again
    parity = glue_v2.parity_jobs("lora", "1.5e-3", 2)[0]  # glue/sst2 at fp32, ungrouped
    fast = [_run("lora", "glue/sst2", "1.5e-3", 0.8, seed=s) for s in (1, 2, 3)]
    assert not parity.done(fast)
    assert parity.done([_run("lora", "glue/sst2", "1.5e-3", 0.8, seed=s, parity=True) for s in (1, 2, 3)])


def test_the_head_stage_compares_every_pooling_and_picks_the_best_mean():
    jobs = glue_v2.head_jobs()
    assert {j.match["model.pooling"] for j in jobs} == set(glue_v2.POOLINGS)
    assert all(j.folder == glue_v2.HEAD_FOLDER for j in jobs)  # never mistaken for the table's runs
    runs = []
    for j in jobs:
        score = {"default": 0.5, "pooler": 0.6, "cls": 0.55, "mean": 0.6}[j.match["model.pooling"]]
        for s in j.seeds:
            r = _run(j.method, j.tasks[0], j.lr, score, seed=s)
            r["config"]["model"] = {"pooling": j.match["model.pooling"]}
            r["config"]["train"]["epochs"] = 1
            r["config"]["task"] = {"max_train_samples": 5000}
            runs.append(r)
    assert glue_v2.pick_pooling(runs[:-1]) is None  # one run missing
    picked = glue_v2.pick_pooling(runs)
    assert picked["pooling"] == "pooler"  # tied with mean: the earlier in POOLINGS
    assert picked["scores"]["default"] == 0.5


def _write(folder: Path, runs: list[dict]) -> None:
    for i, run in enumerate(runs):
        (folder / "runs" / f"r{i}").mkdir(parents=True)
        (folder / "runs" / f"r{i}" / "run.json").write_text(json.dumps(run))


def test_the_driver_goes_from_the_head_stage_to_the_pilot_to_the_grid(tmp_path):
    args = glue_v2.argparse.Namespace(out=str(tmp_path), pooling=None, stage="all", no_parity=False, snapshot=None)
    driver = glue_v2.Driver(args)
    assert driver.pooling is None
    runs = []
    for j in glue_v2.head_jobs():
        for s in j.seeds:
            r = _run(j.method, j.tasks[0], j.lr, 0.7 if j.match["model.pooling"] == "mean" else 0.6, seed=s)
            r["config"]["model"] = {"pooling": j.match["model.pooling"]}
            r["config"]["train"]["epochs"] = 1
            r["config"]["task"] = {"max_train_samples": 5000 if j.tasks[0] == "glue/sst2" else None}
            runs.append(r)
    _write(tmp_path / glue_v2.HEAD_FOLDER, runs[1:])
    driver.update_picks(["lora", "head"], [])
    assert driver.pooling is None and not driver.queue  # one head run missing: wait
    _write(tmp_path / "late", runs[:1])
    (tmp_path / "late" / "runs" / "r0").rename(tmp_path / glue_v2.HEAD_FOLDER / "runs" / "late")
    driver.update_picks(["lora", "head"], [])
    assert driver.pooling == "mean"
    assert {j.name.split()[0] for j in driver.queue} == {"pilot"} and len(driver.queue) == 6
    assert all("model.pooling=mean" in j.overrides for j in driver.queue)
    pilot = []
    for j in driver.queue:
        for t in j.tasks:
            r = _run(j.method, t, j.lr, 0.9 if j.lr in ("5e-4", "1e-2") else 0.5)
            r["config"]["model"]["pooling"] = "mean"
            pilot.append(r)
    driver.update_picks(["lora", "head"], pilot)
    assert driver.picks["lora"]["lr"] == "5e-4" and driver.picks["head"]["lr"] == "1e-2"
    grid = [j for j in driver.queue if j.name.startswith("grid")]
    assert len(grid) == 10 and all("model.pooling=mean" in j.overrides for j in grid)
    assert sum(j.parity for j in driver.queue) == 2  # lora's fp32/ungrouped SST-2 and STS-B
    saved = json.loads((tmp_path / "picks.json").read_text())
    assert saved["_pooling"]["pooling"] == "mean" and saved["lora"]["lr"] == "5e-4"
    again = glue_v2.Driver(args)  # a re-run reads the picks back: no head stage, same pooling
    assert again.pooling == "mean"


def test_export_lays_the_runs_out_for_the_report(tmp_path):
    out, dest = tmp_path / "out", tmp_path / "docs"
    table = [_run("lora", "glue/cola", "1.5e-3", 0.2), _run("lora", "glue/mrpc", "1.5e-3", 0.8, seed=2)]
    pilot = [_run("lora", "glue/cola", "5e-4", 0.1)]
    parity = [_run("lora", "glue/sst2", "1.5e-3", 0.8, parity=True)]
    killed = [_run("lora", "glue/rte", "1.5e-3", 0.5, status="killed")]
    _write(out, table + pilot + parity + killed)
    _write(out / glue_v2.HEAD_FOLDER, [_run("head", "glue/sst2", "1e-2", 0.6)])
    (out / "picks.json").write_text(json.dumps({"lora": {"lr": "1.5e-3"}, "_pooling": {"pooling": "cls"}}))
    counts = glue_v2.export(out, dest)
    assert counts == {"runs": 2, "pilot/runs": 1, "parity/runs": 1, "head/runs": 1}  # the killed run is left out
    assert json.loads((dest / "picks.json").read_text())["lora"]["lr"] == "1.5e-3"
    assert {json.loads(p.read_text())["config"]["train"]["lr"] for p in dest.glob("runs/*/run.json")} == {1.5e-3}


def test_bad_arguments_name_the_value(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        glue_v2.main(["--data", str(tmp_path), "--methods", "lora,lorra"])
    assert exc.value.code == 2 and "lorra" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        glue_v2.main(["--data", str(tmp_path / "nope")])
    assert "nope" in capsys.readouterr().err


def write_glue_folder(root: Path, n: int = 24) -> Path:
    """The five GLUE tasks' train/dev files in GLUE's own layouts, n rows each, made up."""
    words = ["good", "bad", "fine", "awful", "great", "poor"]
    rows = [(f"the film was {words[i % 6]} and {words[(i * 5) % 6]} .", f"it was {words[(i + 1) % 6]} .", i % 2)
            for i in range(n)]
    files = {
        "CoLA": lambda r: "".join(f"src\t{y}\t\t{a}\n" for a, _, y in r),
        "SST-2": lambda r: "sentence\tlabel\n" + "".join(f"{a}\t{y}\n" for a, _, y in r),
        "MRPC": lambda r: "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n" + "".join(
            f"{y}\t{i}\t{i + 1}\t{a}\t{b}\n" for i, (a, b, y) in enumerate(r)),
        "STS-B": lambda r: "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
        + "".join(f"{i}\tg\tf\t2012\t{i}\tnone\tnone\t{a}\t{b}\t{y * 4 + 0.5}\n" for i, (a, b, y) in enumerate(r)),
        "RTE": lambda r: "index\tsentence1\tsentence2\tlabel\n" + "".join(
            f"{i}\t{a}\t{b}\t{'entailment' if y else 'not_entailment'}\n" for i, (a, b, y) in enumerate(r)),
    }
    for folder, make in files.items():
        (root / folder).mkdir(parents=True)
        (root / folder / "train.tsv").write_text(make(rows))
        (root / folder / "dev.tsv").write_text(make(rows[: n // 2]))
    return root


@pytest.mark.slow
def test_a_tiny_pilot_and_grid_run_end_to_end_and_a_rerun_skips_what_is_done(tmp_path):
    data = write_glue_folder(tmp_path / "glue")
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "scripts" / "glue_v2.py"), "--data", str(data), "--out", str(out),
           "--methods", "bitfit", "--jobs", "2", "--hardware", "cpu", "--no-parity", "--pooling", "mean",
           "--peftbench", f"{sys.executable} -m peftbench.cli", "--snapshot", str(tmp_path / "snap.tar.gz"),
           "--extra", "model=tiny train.max_steps=2 train.eval_every=0"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    picks = json.loads((out / "picks.json").read_text())
    assert picks["bitfit"]["lr"] in glue_v2.PILOT_RATES["bitfit"]
    runs = [json.loads(p.read_text()) for p in out.glob("runs/*/run.json")]
    assert sum(r["status"] == "ok" for r in runs) == 3 * 2 + 3 * 4 + 5 - 2  # pilot + grid, seed-1 pilot runs reused
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert again.returncode == 0 and " start " not in again.stdout, again.stdout[-2000:]  # nothing left to start
    assert len(list(out.glob("runs/*/run.json"))) == len(runs)
    import tarfile

    with tarfile.open(tmp_path / "snap.tar.gz") as tar:
        assert sum(n.endswith("run.json") for n in tar.getnames()) == len(runs)
