"""`peftbench <command>`: run (Hydra), report. Imports stay lazy so that commands which do not train
never pay for torch."""

from __future__ import annotations

import sys
from pathlib import Path

from . import __version__
from .errors import UserError, unknown_name

USAGE = f"""peftbench {__version__}: benchmark parameter-efficient fine-tuning methods

usage: peftbench <command> [args]

commands:
  run      train and evaluate one model x method x task x hardware combination (Hydra overrides,
           e.g. `peftbench run method=bitfit task=glue/rte seed=2`; `-m` sweeps a grid:
           `peftbench run -m method=lora,ia3 task=glue seed=1,2,3`; `peftbench run --help` lists the
           config groups, `--cfg job` prints the composed config). Runs that already have an `ok` run
           file for the same resolved config are skipped (`--force` re-runs them) and killed runs resume
           from their last checkpoint. Exit status: 0 all ok or skipped, 1 a sweep had failed jobs,
           2 a mistake in the command or config.
  params   count total/trainable parameters of a model x method without weights or training:
           `peftbench params model=roberta-base method=lora method.r=8` (method and head apart)
  report   paper-style tables of run files: `peftbench report [DIR or glob ...]` (default: results);
           mean ± std over seeds, GLUE-style avg, params, memory, throughput; failed runs listed.
           `--format md|latex|csv|html`, `--table cost` (vs `full`), `--compare A B`, `--plots DIR`,
           filters `--tasks/--methods/--models`; `peftbench report --help` lists every option

Run files land in results/runs/<model>_<method>_<task>_s<seed>[_<overrides>]/run.json; README.md
documents their schema.
"""
COMMANDS = ("run", "params", "report")
SEARCH_PATH_FLAGS = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv[0] in ("-V", "--version"):
        print(__version__)
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command == "run":
            return run_command(rest)
        if command == "params":
            from .params import main as params_main

            return params_main(rest)
        if command == "report":
            from .report import main as report_main

            return report_main(rest)
        raise unknown_name("command", command, COMMANDS, hint="See `peftbench --help`.")
    except UserError as exc:
        print(f"peftbench: error: {exc}", file=sys.stderr)
        return 2


def check_group_choices(overrides: list[str], multirun: bool = False) -> list[str]:
    """Fail fast, before Hydra, on `method=loraa`: name the value, suggest, list the options.
    In a multirun a folder stands for its options: `task=glue` -> `task=glue/cola,...,glue/stsb`."""
    from .config import CONF_DIR, GROUPS, group_options

    if any(a.split("=")[0] in SEARCH_PATH_FLAGS or a.startswith("hydra.searchpath") for a in overrides):
        return overrides  # the user adds config folders: Hydra alone knows every option
    checked = []
    for arg in overrides:
        key, sep, value = arg.partition("=")
        group = key.lstrip("+~")
        if not sep or group not in GROUPS or not value or "(" in value:
            checked.append(arg)
            continue  # not a group choice, or a sweep function (glob/range/choice) Hydra expands itself
        options = group_options(group)
        choices = []
        for choice in (v.strip().strip("'\"") for v in value.split(",")):
            inside = [o for o in options if o.startswith(choice + "/")]
            if multirun and choice not in options and inside:
                choices += inside
            elif choice in options:
                choices.append(choice)
            else:
                raise unknown_name(group, choice, options, hint=_hint(group, choice, CONF_DIR))
        if group == "task":  # a misspelt field in a task file, named before Hydra's own error
            from .tasks.spec import check_task_file

            for choice in choices:
                problems = check_task_file(CONF_DIR / "task" / f"{choice}.yaml")
                if problems:
                    raise UserError("\n".join(problems))
        checked.append(f"{key}={','.join(choices)}")
    return checked


def _hint(group: str, choice: str, conf_dir: Path) -> str:
    if (conf_dir / group / choice).is_dir():
        inside = sorted(p.stem for p in (conf_dir / group / choice).glob("*.yaml"))
        return (f"'{choice}' is a folder: pick one, e.g. {group}={choice}/{inside[0]}, or sweep them all "
                f"with -m {group}={choice}.")
    if group == "model":
        return "Any other checkpoint: model=hf model.name_or_path=<hub id or folder>."
    return f"Add your own as conf/{group}/<name>.yaml (or a folder passed with --config-dir)."


LAUNCHER_PLUGINS = {"slurm": "hydra_submitit_launcher", "slurm_cpu": "hydra_submitit_launcher",
                    "local": "hydra_joblib_launcher", "submitit_slurm": "hydra_submitit_launcher",
                    "submitit_local": "hydra_submitit_launcher", "joblib": "hydra_joblib_launcher"}


def check_launcher_installed(overrides: list[str]) -> None:
    """`hydra/launcher=slurm` without its Hydra plugin: say which extra to install, not Hydra's
    'Could not find hydra/launcher/submitit_slurm'."""
    import importlib.util

    for arg in overrides:
        key, _, value = arg.partition("=")
        plugin = LAUNCHER_PLUGINS.get(value) if key.lstrip("+~") == "hydra/launcher" else None
        if plugin and importlib.util.find_spec(f"hydra_plugins.{plugin}") is None:
            raise UserError(f"hydra/launcher={value} needs the Hydra plugin {plugin.replace('_', '-')}, which is "
                            "not installed: pip install 'peftbench[cluster]' (or pip install -e '.[cluster]' "
                            "in a checkout).")


def run_command(args: list[str]) -> int:
    import hydra

    from . import sweep
    from .config import CONF_DIR

    multirun = any(a in ("-m", "--multirun") for a in args)
    overrides = check_group_choices([a for a in args if a != "--force"], multirun)
    check_launcher_installed(overrides)
    if "--force" in args:
        overrides.append("force=true")
    if multirun:  # the sweep's ledger, where every job (local, joblib or SLURM) says how it ended
        overrides.append(f"++hydra.job.env_set.{sweep.SWEEP_ENV}={sweep.new_sweep_id()}")

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def hydra_entry(cfg) -> None:
        run_job(cfg)

    sys.argv = ["peftbench run", *overrides]
    sweep.LAST_SUMMARY = None
    hydra_entry()
    failed = sweep.LAST_SUMMARY and any(sweep.LAST_SUMMARY["counts"][s] for s in ("failed", "killed", "running"))
    return 1 if failed else 0


def run_job(cfg) -> None:
    """One Hydra job: skip it if done, else run it; print a summary, turn a user mistake into a clear
    message. In a multirun an error ends only this job (its run file says why) and the sweep goes on."""
    import warnings

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from . import sweep
    from .runner import run

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # peft calling transformers 5
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    main_task = _export_slurm_tasks()
    key = sweep.config_hash(cfg)
    done = None if cfg.force else sweep.find_ok_run(cfg.results_dir, key, first=run_dir / "run.json")
    if done is not None:
        print(f"peftbench: skipped  {run_dir.name}: an ok run file with the same config exists: {done} "
              "(--force re-runs it)")
        if main_task:
            sweep.record_outcome(cfg, run_dir, "skipped", run_file=str(done))
        return
    if main_task:
        sweep.record_outcome(cfg, run_dir, "running")
    try:
        record = run(cfg, run_dir)
    except BaseException as exc:
        status = "failed" if isinstance(exc, Exception) else "killed"
        if main_task:
            sweep.record_outcome(cfg, run_dir, status, error_type=type(exc).__name__, message=str(exc))
        if isinstance(exc, UserError):
            print(f"peftbench: error: {exc}", file=sys.stderr)
            if multirun:
                return  # the failed run file is written; the sweep goes on
            sys.exit(2)
        if multirun and isinstance(exc, Exception):  # OOM, NaN loss, bad data: this job only
            print(f"peftbench: failed  {run_dir.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return
        raise  # Ctrl-C, SIGTERM, a SLURM requeue: stop here
    if main_task:
        sweep.record_outcome(cfg, run_dir, "ok", main_metric=record["main_metric"],
                             main_score=record["main_score"])
    print(summary(record))


def _export_slurm_tasks() -> bool:
    """In a SLURM job with several tasks (hydra.launcher.tasks_per_node/nodes), each task is one DDP
    process: export RANK/WORLD_SIZE/MASTER_ADDR for torch. Returns whether this is the main task."""
    import os

    if int(os.environ.get("SLURM_NTASKS", "1")) <= 1 or "SUBMITIT_EXECUTOR" not in os.environ:
        return int(os.environ.get("RANK", "0")) == 0
    from submitit.helpers import TorchDistributedEnvironment

    env = TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    return env.rank == 0


def _per_s(value, unit: str, decimals: int) -> str:
    return f"{value:.{decimals}f} {unit}/s" if value is not None else f"no {unit}/s"


def summary(record: dict) -> str:
    p, mem, tp, tm = record["params"], record["memory"], record["throughput"], record["timing"]
    scores = "  ".join(f"{k} {v:.4f}" for k, v in record["metrics"].items())
    cuda = (f", CUDA max allocated {mem['cuda_max_allocated_mb']:.0f} MB / reserved "
            f"{mem['cuda_max_reserved_mb']:.0f} MB" if mem["cuda_max_allocated_mb"] is not None else "")
    before = mem.get("rss_before_train_mb")
    added = f" (+{mem['peak_rss_mb'] - before:.0f} MB over the {before:.0f} MB before it)" if before is not None else ""
    return "\n".join([
        f"peftbench: {record['status']}  {record['model']} + {record['method']} on {record['task']} "
        f"(seed {record['seed']})",
        f"  eval:       {scores}",
        f"  params:     {p['trainable']:,} trainable of {p['base_total']:,} ({p['trainable_pct']:.4f}%; "
        f"method {p['method']:,}, head {p['head']:,})",
        f"  memory:     peak RSS {mem['peak_rss_mb']:.0f} MB during training{added} on {mem['device']}{cuda}",
        f"  throughput: {_per_s(tp['train_samples_per_s'], 'samples', 1)}, "
        f"{_per_s(tp['train_tokens_per_s'], 'tokens', 0)} ({tp['steps']} steps)",
        f"  time:       train {tm['train_s']:.1f} s, eval {tm['eval_s']:.1f} s, total {tm['total_s']:.1f} s",
        f"  run file:   {Path(record['run_dir']) / 'run.json'}",
    ])


if __name__ == "__main__":
    sys.exit(main())
