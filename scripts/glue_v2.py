#!/usr/bin/env python3
"""The MiniLM GLUE v2 grid (peftbench/conf/experiment/glue_minilm_v2.yaml): a head comparison, a learning-rate
pilot, then the table's runs, many `peftbench run` processes at once (one CPU thread each), resumable, with a deadline.

    python scripts/glue_v2.py --data <GLUE folder> --jobs 2                      # a CPU with native bf16 (days)
    python scripts/glue_v2.py --data /data/glue --jobs 14 --mps --deadline 540    # one GPU

Stages (each run is an ordinary peftbench run: re-running the script skips every run that has an `ok`
run file and resumes killed ones from their checkpoint):
0. head: the classifier's input (`model.pooling`: POOLINGS) compared with head-only and LoRA on SST-2 and
   STS-B, 3 seeds, one epoch (SST-2: 5,000 examples); the choice with the best mean main score over those
   12 runs is the protocol's (a tie: the earlier in POOLINGS). `--pooling X` skips the stage.
1. pilot: every method at each of its PILOT_RATES on the hardest tasks (PILOT_TASKS), seed 1.
2. pick: per method, the rate with the best mean main score over the pilot tasks (a tie: the smaller
   rate); written to <out>/picks.json. The pick is fixed by this rule before any grid run starts.
3. grid: every method at its picked rate on all TASKS, SEEDS seeds (RTE: RTE_SEEDS); the pilot's seed-1
   runs at the picked rate are the grid's seed-1 runs (same config: skipped, not re-run).
4. parity: LoRA and full fine-tuning on SST-2 and STS-B at fp32 without length grouping (the grid's own
   runs are the fast side), for the fp32-vs-bf16+grouped comparison.
Work is taken in priority order: the REQUIRED methods' pilot, then their grid, then parity, then the other
methods; a deadline stops what runs (SIGTERM: their run files say `killed`, the next call resumes them).
Only the Python standard library is used here, so the script runs beside any peftbench install.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

EXPERIMENT = "+experiment=glue_minilm_v2"
REQUIRED = ["full", "head", "bitfit", "lora", "ia3", "adapter_pfeiffer", "prompt_tuning"]
OTHERS = ["dora", "vera", "adapter_houlsby", "compacter", "ssf", "lst"]
# Three rates a method, around its recommended rate; widened past the edge v1's one-epoch sweep picked
# (docs/results/glue-minilm/scores.md lists v1's picks): ia3, vera and prompt_tuning picked their top rate
# on most tasks, ssf and lst their bottom one.
PILOT_RATES = {
    "full": ["5e-5", "1e-4", "2e-4"], "head": ["3e-3", "1e-2", "3e-2"], "bitfit": ["1e-3", "3e-3", "1e-2"],
    "lora": ["5e-4", "1.5e-3", "5e-3"], "dora": ["5e-4", "1.5e-3", "5e-3"], "ia3": ["1e-2", "3e-2", "1e-1"],
    "vera": ["1e-2", "4e-2", "1e-1"], "adapter_houlsby": ["1e-3", "3e-3", "1e-2"],
    "adapter_pfeiffer": ["1e-3", "3e-3", "1e-2"], "compacter": ["3e-3", "9e-3", "3e-2"],
    "ssf": ["1.5e-3", "5e-3", "1.5e-2"], "lst": ["1e-3", "3e-3", "9e-3"], "prompt_tuning": ["1e-1", "3e-1", "1"],
}
PILOT_TASKS = ["glue/cola", "glue/rte"]
TASKS = ["glue/mrpc", "glue/stsb", "glue/cola", "glue/rte", "glue/sst2"]
SEEDS, RTE_SEEDS = [1, 2, 3], [1, 2, 3, 4, 5]
POOLINGS = ["default", "pooler", "cls", "mean"]
HEAD_FOLDER = "head"  # stage 0's runs have a results_dir of their own: never mistaken for the table's
HEAD_STAGE = {"methods": {"head": "1e-2", "lora": "1.5e-3"}, "tasks": ["glue/sst2", "glue/stsb"], "seeds": [1, 2, 3],
              "overrides": ["train.epochs=1"], "sst2": ["task.max_train_samples=5000"]}
PARITY = {"methods": ["lora", "full"], "tasks": ["glue/sst2", "glue/stsb"],
          "overrides": ["hardware.mixed_precision=no", "train.group_by_length=false"]}


class Job:
    """One `peftbench run -m` command: `method` at `lr` on `tasks` x `seeds` (a parity job: fp32, ungrouped)."""

    def __init__(self, name: str, method: str, lr: str, tasks: list[str], seeds: list[int], priority: tuple,
                 parity: bool = False, extra: tuple = (), folder: str = ""):
        self.name, self.method, self.lr, self.tasks, self.seeds = name, method, lr, tasks, seeds
        self.folder = folder  # under --out: "" for the table's runs, HEAD_FOLDER for stage 0's
        self.priority, self.parity = priority, parity
        self.extra = extra
        self.match = dict(o.split("=", 1) for o in extra)  # what tells this job's runs from others' (pooling, epochs)
        self.proc = None
        self.started = self.ended = None
        self.rc = None

    @property
    def overrides(self) -> list[str]:
        return [f"method={self.method}", f"train.lr={self.lr}", "task=" + ",".join(self.tasks),
                "seed=" + ",".join(map(str, self.seeds)), *(PARITY["overrides"] if self.parity else []), *self.extra]

    def _have(self, runs: list[dict]) -> set:
        return {(r.get("task"), r.get("seed")) for r in runs if r.get("status") == "ok" and r.get("method") == self.method
                and _lr_of(r) == float(self.lr) and _is_parity(r) == self.parity and _matches(r, self.match)}

    def done(self, runs: list[dict]) -> bool:
        """Every run of this job has an ok run file already (a re-run of the script need not start it)."""
        have = self._have(runs)
        return all((t, s) in have for t in self.tasks for s in self.seeds)

    def drop_done_seeds(self, runs: list[dict]) -> None:
        """Leave out the seeds every task of the job already has (made elsewhere, e.g. on another device,
        whose config differs in `hardware` and so would not be skipped by peftbench itself)."""
        have = self._have(runs)
        self.seeds = [s for s in self.seeds if not all((t, s) in have for t in self.tasks)] or self.seeds


def read_runs(out: Path) -> list[dict]:
    """Every readable run file under <out>/runs and <out>/pilot/runs (an exported folder: `--export`); a run
    file being written is skipped, read next time."""
    runs = []
    for path in glob.glob(str(out / "runs" / "*" / "run.json")) + glob.glob(str(out / "pilot" / "runs" / "*" / "run.json")):
        try:
            runs.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError):
            continue
    return runs


def _lr_of(run: dict) -> float:
    return float(run["config"]["train"]["lr"])


def _matches(run: dict, match: dict) -> bool:
    """The run's resolved config has each dotted key at the value given (as a command line writes it)."""
    for key, want in match.items():
        node = run["config"]
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if str(node) != want and not (isinstance(node, (int, float)) and _num(want) == node):
            return False
    return True


def _num(text: str):
    try:
        return float(text)
    except ValueError:
        return None


def _is_parity(run: dict) -> bool:
    return run["config"]["hardware"].get("mixed_precision") == "no" and run["config"]["train"].get("group_by_length") is False


def pick(method: str, runs: list[dict], rates: list[str], match: dict | None = None) -> dict | None:
    """The rule of stage 2, or None while a pilot run of `method` is missing (not ok yet)."""
    scores = {}
    for rate in rates:
        per_task = {}
        for task in PILOT_TASKS:
            found = [r for r in runs if r.get("method") == method and r.get("task") == task and r.get("seed") == 1
                     and r.get("status") == "ok" and _lr_of(r) == float(rate) and _matches(r, match or {})]
            if not found:
                return None
            per_task[task] = found[0]["main_score"]
        scores[rate] = per_task
    best = max(rates, key=lambda r: (round(sum(scores[r].values()) / len(PILOT_TASKS), 6), -float(r)))
    return {"lr": best, "rule": "best mean main score over " + ", ".join(PILOT_TASKS) + " (seed 1); tie: smaller",
            "scores": scores}


def head_jobs() -> list[Job]:
    return [Job(f"head {pooling} {m} {task}", m, lr, [task], HEAD_STAGE["seeds"], (-1, i, j),
                extra=(f"model.pooling={pooling}", *HEAD_STAGE["overrides"], *HEAD_STAGE.get(task.split("/")[1], [])),
                folder=HEAD_FOLDER)
            for i, pooling in enumerate(POOLINGS) for m, lr in HEAD_STAGE["methods"].items()
            for j, task in enumerate(HEAD_STAGE["tasks"])]


def pick_pooling(runs: list[dict]) -> dict | None:
    """Stage 0's rule, or None while one of its runs is missing."""
    means = {}
    for job in head_jobs():
        found = [r for r in runs if r.get("status") == "ok" and r.get("method") == job.method and r.get("task") in job.tasks
                 and r.get("seed") in job.seeds and _lr_of(r) == float(job.lr) and _matches(r, job.match)]
        if len({r["seed"] for r in found}) < len(job.seeds):
            return None
        means.setdefault(job.match["model.pooling"], []).extend(
            next(r for r in found if r["seed"] == s)["main_score"] for s in job.seeds)
    scores = {p: round(sum(v) / len(v), 6) for p, v in means.items()}
    best = max(POOLINGS, key=lambda p: (scores[p], -POOLINGS.index(p)))
    return {"pooling": best, "rule": "best mean main score of head-only and LoRA on SST-2 and STS-B, 3 seeds each",
            "scores": scores}


def pilot_jobs(methods: list[str], base: int, pooling: str) -> list[Job]:
    return [Job(f"pilot {m} lr={rate}", m, rate, PILOT_TASKS, [1], (base, i, j), extra=(f"model.pooling={pooling}",))
            for i, m in enumerate(methods) for j, rate in enumerate(PILOT_RATES[m])]


def grid_jobs(method: str, lr: str, base: int, rank: int, pooling: str = "default") -> list[Job]:
    return [Job(f"grid {method} {task}", method, lr, [task], RTE_SEEDS if task == "glue/rte" else SEEDS, (base, t, rank),
                extra=(f"model.pooling={pooling}",)) for t, task in enumerate(TASKS)]


def parity_jobs(method: str, lr: str, base: int, pooling: str = "default") -> list[Job]:
    return [Job(f"parity {method} {task}", method, lr, [task], SEEDS, (base, t, 0), parity=True,
                extra=(f"model.pooling={pooling}",)) for t, task in enumerate(PARITY["tasks"])]


class Driver:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out)
        self.t0 = time.time()
        self.queue: list[Job] = []
        self.running: list[Job] = []
        self.done: list[Job] = []
        self.picks: dict = {}
        self.picks_path = self.out / "picks.json"
        if self.picks_path.exists():
            self.picks = json.loads(self.picks_path.read_text())
        self.pooling = args.pooling or self.picks.get("_pooling", {}).get("pooling")
        self.pilot_queued = False
        self.last_snapshot = self.last_progress = 0.0

    def command(self, job: Job) -> list[str]:
        a = self.args
        base = [*shlex.split(a.peftbench), "run", "-m", EXPERIMENT, f"data_root={a.data}",
                f"results_dir={Path(a.out) / job.folder if job.folder else a.out}",
                f"hardware={a.hardware}", "hardware.threads=1", "launch.process=inline"]
        return base + job.overrides + shlex.split(a.extra)

    def start(self, job: Job) -> None:
        logs = self.out / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = open(logs / (job.name.replace(" ", "_").replace("/", "-") + ".log"), "a")
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
        print(f"[{self.elapsed():6.0f}s] start {job.name}", flush=True)
        log.write("$ " + shlex.join(self.command(job)) + "\n")
        log.flush()
        job.proc = subprocess.Popen(self.command(job), stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
        job.started = time.time()
        self.running.append(job)

    def elapsed(self) -> float:
        return time.time() - self.t0

    def reap(self) -> None:
        for job in list(self.running):
            if job.proc.poll() is None:
                continue
            job.rc, job.ended = job.proc.returncode, time.time()
            self.running.remove(job)
            self.done.append(job)
            word = "done" if job.rc == 0 else f"FAILED (exit {job.rc})"
            print(f"[{self.elapsed():6.0f}s] {word} {job.name} in {job.ended - job.started:.0f}s", flush=True)

    def update_picks(self, methods: list[str], runs: list[dict]) -> None:
        """Pick each method's rate as soon as its pilot is complete; queue its grid (and parity) jobs."""
        if not self.pilot_queued:
            self.settle_pooling(methods)
        if self.pooling is None:
            return
        for m in methods:
            if m.startswith("_") or (m in self.picks and self.picks[m].get("queued")):
                continue
            if m not in self.picks:
                found = pick(m, runs, PILOT_RATES[m], {"model.pooling": self.pooling})
                if found is None:
                    continue
                self.picks[m] = found
                print(f"[{self.elapsed():6.0f}s] pick {m}: lr={found['lr']} {found['scores']}", flush=True)
            if self.args.stage in ("all", "grid"):
                base = 1 if m in REQUIRED else 4
                self.queue += grid_jobs(m, self.picks[m]["lr"], base, methods.index(m), self.pooling)
                if m in PARITY["methods"] and not self.args.no_parity:
                    self.queue += parity_jobs(m, self.picks[m]["lr"], 2, self.pooling)
            self.picks[m]["queued"] = True
            self.save_picks()

    def save_picks(self) -> None:
        saved = {k: {kk: vv for kk, vv in v.items() if kk != "queued"} for k, v in self.picks.items()}
        tmp = self.picks_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(saved, indent=1, sort_keys=True) + "\n")
        tmp.replace(self.picks_path)

    def settle_pooling(self, methods: list[str]) -> None:
        """Stage 0 done (or skipped): queue the pilot at the chosen pooling."""
        if self.pooling is None:
            found = pick_pooling(read_runs(self.out / HEAD_FOLDER))
            if found is None:
                return
            self.picks["_pooling"] = found
            self.save_picks()
            print(f"[{self.elapsed():6.0f}s] pick pooling: {found['pooling']} {found['scores']}", flush=True)
            self.pooling = found["pooling"]
        if self.args.stage in ("all", "pilot"):
            req = [m for m in methods if m in REQUIRED]
            oth = [m for m in methods if m not in REQUIRED]
            self.queue += pilot_jobs(req, 0, self.pooling) + pilot_jobs(oth, 3, self.pooling)
        self.pilot_queued = True

    def snapshot(self, force: bool = False) -> None:
        """A .tar.gz of the run files, picks and logs (no checkpoints, caches or tensors), replaced atomically."""
        if not self.args.snapshot or (not force and time.time() - self.last_snapshot < self.args.snapshot_every):
            return
        self.last_snapshot = time.time()
        target = Path(self.args.snapshot)
        tmp = target.with_name(target.name + ".tmp")
        with tarfile.open(tmp, "w:gz") as tar:
            for path in sorted(self.out.glob("**/runs/*/run.json")) + sorted(self.out.glob("**/runs/*/.hydra/*.yaml")) \
                    + sorted(self.out.glob("logs/*.log")) + sorted(self.out.glob("picks.json")):
                tar.add(path, arcname=str(path.relative_to(self.out.parent)))
        tmp.replace(target)

    def progress(self) -> None:
        if time.time() - self.last_progress < 30:
            return
        self.last_progress = time.time()
        runs = read_runs(self.out) + read_runs(self.out / HEAD_FOLDER)
        ok = sum(r.get("status") == "ok" for r in runs)
        print(f"[{self.elapsed():6.0f}s] progress: {len(self.done)} jobs ended, {len(self.running)} running, "
              f"{len(self.queue)} queued; run files: {ok} ok of {len(runs)}", flush=True)

    def stop_all(self) -> None:
        for job in self.running:
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.killpg(job.proc.pid, signal.SIGTERM)
        end = time.time() + 30
        while self.running and time.time() < end:
            self.reap()
            time.sleep(0.5)
        for job in self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.proc.pid, signal.SIGKILL)

    def loop(self, methods: list[str]) -> int:
        if self.pooling is None:
            self.queue += head_jobs()
        while True:
            self.reap()
            runs = read_runs(self.out)
            self.update_picks(methods, runs)
            head = read_runs(self.out / HEAD_FOLDER) if any(j.folder for j in self.queue) else []
            self.queue = [j for j in self.queue if not j.done(head if j.folder else runs)]
            if self.args.deadline and self.elapsed() > self.args.deadline:
                print(f"[{self.elapsed():6.0f}s] deadline: stopping {len(self.running)} running jobs "
                      f"({len(self.queue)} not started); re-run the same command to go on", flush=True)
                self.stop_all()
                break
            self.queue.sort(key=lambda j: j.priority)
            while self.queue and len(self.running) < self.args.jobs:
                job = self.queue.pop(0)
                job.drop_done_seeds(head if job.folder else runs)
                self.start(job)
            if not self.running and not self.queue:
                break
            self.snapshot()
            self.progress()
            time.sleep(2)
        self.snapshot(force=True)
        missing = [m for m in methods if m not in self.picks] + ([] if self.pooling else ["pooling"])
        failed = [j.name for j in self.done if j.rc]
        print(f"glue_v2: {len(self.done)} jobs ended ({len(failed)} with failures: {failed}); "
              f"no pick yet: {missing or 'none'}; {self.elapsed():.0f}s", flush=True)
        return 1 if failed or self.queue or missing else 0


def export(out: Path, dest: Path) -> dict:
    """Copy the ok run files to a results folder laid out for the report: <dest>/runs (the table: each
    method at its picked rate), <dest>/pilot/runs (the pilot's other rates), <dest>/parity/runs (fp32,
    ungrouped), <dest>/head/runs (stage 0), and picks.json. Returns the counts."""
    picks = json.loads((out / "picks.json").read_text())
    counts = {"runs": 0, "pilot/runs": 0, "parity/runs": 0, "head/runs": 0}
    for folder, sub in ((out / "runs", None), (out / HEAD_FOLDER / "runs", "head/runs")):
        for path in sorted(folder.glob("*/run.json")):
            try:
                run = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if run.get("status") != "ok":
                continue
            picked = run["method"] in picks and _lr_of(run) == float(picks[run["method"]]["lr"])
            where = sub or ("parity/runs" if _is_parity(run) else "runs" if picked else "pilot/runs")
            target = dest / where / path.parent.name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / "run.json")
            counts[where] += 1
    shutil.copyfile(out / "picks.json", dest / "picks.json")
    return counts


def start_mps() -> bool:
    """NVIDIA's Multi-Process Service lets the many small runs' kernels share the GPU at once instead of
    taking turns; without it they time-slice. Returns whether the daemon runs."""
    control = shutil.which("nvidia-cuda-mps-control")
    if control is None:
        print("mps: nvidia-cuda-mps-control not found; runs time-slice the GPU", flush=True)
        return False
    rc = subprocess.run([control, "-d"], capture_output=True, text=True)
    print(f"mps: started ({control} -d: exit {rc.returncode} {rc.stderr.strip()})", flush=True)
    return rc.returncode == 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="a GLUE folder with RTE/, MRPC/, CoLA/, STS-B/, SST-2/")
    p.add_argument("--out", default="results/glue-minilm-v2", help="results_dir of every run")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (one CPU thread each)")
    p.add_argument("--hardware", default="auto", help="peftbench hardware option (auto, cpu, gpu)")
    p.add_argument("--methods", default=",".join(REQUIRED + OTHERS))
    p.add_argument("--stage", choices=["all", "pilot", "grid"], default="all")
    p.add_argument("--deadline", type=float, default=0, help="seconds; then stop the runs (resumable)")
    p.add_argument("--snapshot", help="a .tar.gz kept up to date with the run files")
    p.add_argument("--snapshot-every", type=float, default=60)
    p.add_argument("--mps", action="store_true", help="start NVIDIA MPS first (one GPU, many runs)")
    p.add_argument("--pooling", choices=POOLINGS, help="the classifier's input; skips the head stage")
    p.add_argument("--no-parity", action="store_true", help="leave out the fp32/ungrouped parity runs")
    p.add_argument("--peftbench", default="peftbench", help="the command that runs peftbench")
    p.add_argument("--extra", default="", help="more overrides for every run (e.g. for a smoke test)")
    p.add_argument("--export", metavar="DIR", help="copy the ok run files of --out to DIR (runs/, pilot/runs/, "
                   "head/runs/, picks.json) for `peftbench report`, and exit")
    args = p.parse_args(argv)
    if args.export:
        print(f"glue_v2: exported {export(Path(args.out), Path(args.export))} to {args.export}")
        return 0
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in PILOT_RATES]
    if unknown:
        p.error(f"--methods: unknown {unknown}; valid: {', '.join(PILOT_RATES)}")
    if args.jobs < 1:
        p.error(f"--jobs={args.jobs}: must be >= 1")
    if args.data is None or not Path(args.data).is_dir():
        p.error(f"--data={args.data}: no such folder")
    if args.mps:
        start_mps()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    driver = Driver(args)

    def stop(signum, _frame):  # kill/Ctrl-C/a scheduler: stop the runs the same way (resumable), then exit
        print(f"glue_v2: {signal.Signals(signum).name}: stopping {len(driver.running)} running jobs", flush=True)
        driver.stop_all()
        driver.snapshot(force=True)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return driver.loop(methods)


if __name__ == "__main__":
    sys.exit(main())
