"""`peftbench <command>`: run (Hydra), report. Imports stay lazy so that commands which do not train
never pay for torch."""

from __future__ import annotations

import sys

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
           from their last checkpoint; a sweep stops after the same error in 3 jobs in a row
           (`--keep-going` runs every job). Exit status: 0 all ok or skipped, 1 a sweep had failed jobs,
           2 a mistake in the command or config.
  params   count total/trainable parameters of a model x method without weights or training:
           `peftbench params model=roberta-base method=lora method.r=8` (method and head apart)
  report   paper-style tables of run files: `peftbench report [DIR or glob ...]` (default: results);
           mean ± std over seeds, GLUE-style avg, params, memory, throughput; failed runs listed.
           `--format md|latex|csv|html`, `--table cost` (vs `full`), `--compare A B`, `--plots DIR`,
           filters `--tasks/--methods/--models`; `peftbench report --help` lists every option
  data     download a benchmark's files into the layout `data_root` reads (needs a network):
           `peftbench data glue DIR [--tasks rte,mrpc] [--source hub|glue]`, then `data_root=DIR`

Run files land in results/runs/<model>_<method>_<task>_s<seed>[_<overrides>]/run.json; README.md
documents their schema.
"""
COMMANDS = ("run", "params", "report", "data")


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
            return params_command(rest)
        if command == "report":
            from .report.command import main as report_main

            return report_main(rest)
        if command == "data":
            from .tasks.download import main as data_main

            return data_main(rest)
        raise unknown_name("command", command, COMMANDS, hint="See `peftbench --help`.")
    except UserError as exc:
        print(f"peftbench: error: {exc}", file=sys.stderr)
        return 2


LAUNCHER_PLUGINS = {"slurm": "hydra_submitit_launcher", "slurm_cpu": "hydra_submitit_launcher",
                    "local": "hydra_joblib_launcher", "submitit_slurm": "hydra_submitit_launcher",
                    "submitit_local": "hydra_submitit_launcher", "joblib": "hydra_joblib_launcher"}


def check_launcher_installed(overrides: list[str]) -> None:
    """`hydra/launcher=slurm` without its Hydra plugin: say which extra to install, not Hydra's
    'Could not find hydra/launcher/submitit_slurm'."""

    for arg in overrides:
        key, _, value = arg.partition("=")
        plugin = LAUNCHER_PLUGINS.get(value) if key.lstrip("+~") == "hydra/launcher" else None
        if plugin and not is_installed(f"hydra_plugins.{plugin}"):
            raise UserError(f"hydra/launcher={value} needs the Hydra plugin {plugin.replace('_', '-')}, which is "
                            "not installed: pip install 'peftbench[cluster]' (or pip install -e '.[cluster]' "
                            "in a checkout).")


def check_writable(key: str, folder: str) -> None:
    """A folder that is a file, or where nothing can be written: say so before Hydra tries to make run dirs."""
    import tempfile
    from pathlib import Path

    path = Path(folder).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"{key}={folder}: {existing} is a file, not a folder. Point {key} at a folder.")
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise UserError(f"{key}={folder}: cannot write in {existing} ({exc.strerror}). Point {key} at a folder "
                        "you can write to.") from None


def is_installed(module: str) -> bool:
    import importlib.util

    try:  # find_spec imports the parent package: no `hydra_plugins` at all raises instead of returning None
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def run_command(args: list[str]) -> int:
    import hydra
    from omegaconf import OmegaConf

    from .config import CONF_DIR, check_group_choices
    from .config.choices import SEARCH_PATH_FLAGS
    from .run.precheck import KEEP_GOING_ENV, check_sweep
    from .run import sweep

    multirun = any(a in ("-m", "--multirun") for a in args)
    flags, overrides = split_hydra_flags([a for a in args if a not in ("--force", "--keep-going")])
    check_run_flags(flags)
    if multirun and any(f in HELP_FLAGS for f in flags):  # help for the sweep's first job, not a Hydra traceback
        flags, overrides, multirun = [f for f in flags if f not in ("-m", "--multirun")], \
            first_of_sweeps(overrides, True), False
    config_dirs = config_dir_flags(flags)
    overrides = check_group_choices(overrides, multirun, config_dirs)
    check_launcher_installed(overrides)
    if not any(f.split("=")[0] in SEARCH_PATH_FLAGS[2:] for f in flags):  # else only Hydra knows the config
        # a typo, a wrong type: one message now
        cfg = compose(first_of_sweeps(overrides, multirun), config_dirs, checked=True)
        if not multirun and shows_job_config(flags):
            print(OmegaConf.to_yaml(cfg, resolve=True), end="")  # what the run will use, per_task applied
            return 0
        if multirun:  # every swept value's type; every task's data folder, hub models offline: all problems at once
            check_sweep_values(cfg, overrides)
            check_sweep(overrides, lambda o: compose(o, config_dirs), first_of_sweeps)
        check_writable("results_dir", cfg.results_dir)
    if "--force" in args:
        overrides.append("force=true")
    if multirun:  # the sweep's ledger, where every job (local, joblib or SLURM) says how it ended
        overrides.append(f"++hydra.job.env_set.{sweep.SWEEP_ENV}={sweep.new_sweep_id()}")
        if "--keep-going" in args:  # else a sweep stops after the same error in several jobs in a row
            overrides.append(f"++hydra.job.env_set.{KEEP_GOING_ENV}=1")

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def hydra_entry(cfg) -> None:
        from .run.job import run_job  # torch and the rest only once a job runs (`--help` stays fast)

        run_job(cfg)

    sys.argv = ["peftbench run", *flags, *overrides]
    sweep.LAST_SUMMARY = None
    hydra_entry()
    failed = sweep.LAST_SUMMARY and any(sweep.LAST_SUMMARY["counts"][s] for s in ("failed", "killed", "running"))
    return 1 if failed else 0


def shows_job_config(flags: list[str]) -> bool:
    """`--cfg job` (or `-c job`) without `--package`: peftbench prints the config the run will use (its task's
    per_task values applied, interpolations such as train.lr's resolved), not Hydra's unresolved one."""
    pairs = list(zip(flags, flags[1:]))
    return any(a in ("--cfg", "-c") and b == "job" for a, b in pairs) and not any(f in ("--package", "-p") for f in flags)


HYDRA_VALUE_FLAGS = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir",
                     "-cd", "--experimental-rerun")
INFO_VALUES = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")


HELP_FLAGS = ("--help", "-h", "--hydra-help")
HYDRA_FLAGS = (*HELP_FLAGS, "--version", "--resolve", "--run", "-r", "--multirun", "-m", "--info", "-i",
               "--shell-completion", "-sc", *HYDRA_VALUE_FLAGS)
MODES = {"-r": "--run", "-m": "--multirun", "-c": "--cfg", "-i": "--info", "-sc": "--shell-completion"}
CFG_VALUES = ("job", "hydra", "all")


def check_run_flags(flags: list[str]) -> None:
    """Hydra's flags as `split_hydra_flags` gives them (a value after its flag): an unknown flag, a missing or
    bad --cfg value, or two modes at once (Hydra takes one of --run, --multirun, --cfg, --info) is one line."""
    seen, i = [], 0
    while i < len(flags):
        name, eq, value = flags[i].partition("=")
        if name not in HYDRA_FLAGS:
            raise UserError(f"run: unknown option '{flags[i]}'. Options: {', '.join(HYDRA_FLAGS)}, --force, "
                            "--keep-going; config values are key=value overrides (see `peftbench run --help`).")
        if name in HYDRA_VALUE_FLAGS and not eq:
            i += 1
            value = flags[i] if i < len(flags) else ""
        elif name in ("--info", "-i") and flags[i + 1:i + 2] and flags[i + 1] in INFO_VALUES:
            i += 1
        if name in ("--cfg", "-c") and value not in CFG_VALUES:
            raise UserError(f"run: {name} {value!r}: must be one of {', '.join(CFG_VALUES)} "
                            "(e.g. --cfg job prints the composed config).")
        seen.append(MODES.get(name, name))
        i += 1
    modes = [m for m in dict.fromkeys(seen) if m in MODES.values()]
    if len(modes) > 1:
        raise UserError(f"run: {' and '.join(modes)} cannot be combined: Hydra does one of them per command "
                        "(e.g. `peftbench run --cfg job seed=1` prints one job's config; leave out -m).")


def split_hydra_flags(args: list[str]) -> tuple[list[str], list[str]]:
    """(Hydra's flags with their values, the overrides). Hydra's argparse takes the overrides as one run of
    positional arguments: `a=1 --config-dir d b=2` is refused unless the flags come first."""
    flags, overrides, i = [], [], 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            overrides.append(arg)
            i += 1
            continue
        takes_value = arg in HYDRA_VALUE_FLAGS or (arg in ("--info", "-i") and args[i + 1:i + 2] and
                                                   args[i + 1] in INFO_VALUES)
        flags += args[i:i + 1 + bool(takes_value)]
        i += 1 + bool(takes_value)
    return flags, overrides


def config_dir_flags(flags: list[str]) -> list[str]:
    """The folders of `--config-dir DIR` / `-cd DIR` / `--config-dir=DIR`, checked to exist."""
    from pathlib import Path

    dirs = []
    for i, flag in enumerate(flags):
        name, eq, value = flag.partition("=")
        if name in ("--config-dir", "-cd"):
            value = value if eq else (flags[i + 1] if i + 1 < len(flags) else "")
            folder = Path(value).expanduser().absolute()
            if not folder.is_dir():
                raise UserError(f"{name} {value}: no such folder. Give a folder laid out like "
                                "peftbench/conf/ (e.g. DIR/task/<name>.yaml).")
            dirs.append(str(folder))
    return dirs


PARAMS_USAGE = """usage: peftbench params [model=<m>] [method=<x>] [method.<knob>=<v> ...] [--labels N] [--names] [--json]

Count total and trainable parameters of a model x method without downloading weights or training:
the architecture is built from `model.arch` (or the checkpoint's config file) on the meta device.
The method's own parameters and the task head are counted apart, as papers differ on the head.

  --labels N   outputs of the classification head (default: the task's, e.g. 2; 1 = regression)
  --names      list the trainable tensors, grouped over layers
  --json       print the counts as JSON
  --list       list the models, methods and tasks (installed plugins' too, with their package) and exit
example: peftbench params model=roberta-base method=lora method.r=8
"""


def params_command(argv: list[str]) -> int:
    import json

    from .methods.counting import build_offline, format_counts
    from .methods.hooks import hooks_of

    if any(a in ("-h", "--help") for a in argv):
        print(PARAMS_USAGE)
        return 0
    if "--list" in argv:
        print(list_options())
        return 0
    flags = {"--names": False, "--json": False}
    labels, overrides, args = None, [], iter(argv)
    for arg in args:
        if arg in flags:
            flags[arg] = True
        elif arg == "--labels" or arg.startswith("--labels="):
            value = arg.partition("=")[2] or next(args, "")
            if not value.isdigit() or int(value) < 1:
                raise UserError(f"--labels {value!r}: give a whole number >= 1 (1 = regression).")
            labels = int(value)
        elif arg.startswith("-"):
            raise UserError(f"params: unknown option '{arg}'. Options: --labels N, --names, --json, --list.")
        else:
            overrides.append(arg)
    cfg = compose(overrides)
    num_labels = labels or (len(cfg.task.label_names) if cfg.task.label_names else 1)
    model, knobs, p = build_offline(cfg, num_labels)
    note = hooks_of(model).cannot_train
    if flags["--json"]:
        print(json.dumps({"model": cfg.model.name, "method": cfg.method.name, "num_labels": num_labels,
                          "cannot_train": note, **p}, indent=2))
        return 0
    print(format_counts(cfg, num_labels, p, note, flags["--names"]))
    return 0


def list_options() -> str:
    """`peftbench params --list`: each group's options; a plugin's are marked with its package."""
    from . import plugins
    from .config import CONF_DIR, group_options

    plugins.check(CONF_DIR)
    lines = []
    for group in ("model", "method", "task"):
        names = {o: "" for o in group_options(group)}
        names.update({p.name: f" ({p.dist})" for p in plugins.declared() if p.group == group})
        lines.append(f"{group}s ({len(names)}): " + ", ".join(n + names[n] for n in sorted(names)))
    return "\n".join(lines)


def compose(overrides: list[str], config_dirs: list[str] = (), checked: bool = False):
    """The run config as `peftbench run` uses it, composed outside a Hydra job (config/compose.py)."""
    from .config.compose import compose as run_config

    return run_config(overrides, config_dirs, checked)


def check_sweep_values(cfg, args: list[str]) -> None:
    """Every value of a swept key (`seed=1,abc`) has the key's type; group options are checked before."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf
    from omegaconf.errors import ValidationError

    from .config import GROUPS
    from .config.compose import type_error

    for arg in (a for a in args if "=" in a and not a.startswith("-") and "/" not in a.split("=")[0]):
        try:
            override = OverridesParser.create().parse_overrides([arg])[0]
            values = list(override.sweep_iterator()) if override.is_sweep_override() else []
        except Exception:  # glob(...) and the like: Hydra expands (and checks) them itself
            continue
        key = override.key_or_group
        if key in GROUPS or key.split(".")[0] == "hydra":  # a group option, or Hydra's own settings
            continue
        for value in values:
            try:
                OmegaConf.update(cfg, key, value, merge=True)
            except ValidationError as exc:
                raise type_error(key, exc) from None


def first_of_sweeps(args: list[str], multirun: bool) -> list[str]:
    """The overrides of a command line, in a multirun each sweep (`seed=1,2,3`) at its first value: one
    config to check before Hydra starts the jobs. Sweeps Hydra expands itself (glob) are left out."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = []
    for arg in (a for a in args if ("=" in a or a.startswith("~")) and not a.startswith("-")):
        try:
            override = OverridesParser.create().parse_overrides([arg])[0]
        except Exception:  # Hydra's parser says what is wrong when it composes
            override = None
        if override is None or not multirun or not override.is_sweep_override():
            out.append(arg)
            continue
        try:
            out.append(f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}")
        except Exception:  # glob(...): needs Hydra's config loader
            pass
    return out


if __name__ == "__main__":
    sys.exit(main())
