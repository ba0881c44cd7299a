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

    from .config import CONF_DIR, check_group_choices
    from .config.choices import SEARCH_PATH_FLAGS
    from .run import sweep

    multirun = any(a in ("-m", "--multirun") for a in args)
    flags, overrides = split_hydra_flags([a for a in args if a != "--force"])
    check_run_flags(flags)
    if multirun and any(f in HELP_FLAGS for f in flags):  # help for the sweep's first job, not a Hydra traceback
        flags, overrides, multirun = [f for f in flags if f not in ("-m", "--multirun")], \
            first_of_sweeps(overrides, True), False
    config_dirs = config_dir_flags(flags)
    overrides = check_group_choices(overrides, multirun, config_dirs)
    check_launcher_installed(overrides)
    if not any(f.split("=")[0] in SEARCH_PATH_FLAGS[2:] for f in flags):  # else only Hydra knows the config
        cfg = compose(first_of_sweeps(overrides, multirun), config_dirs)  # a typo, a wrong type: one message now
        if multirun:
            check_sweep_values(cfg, overrides)
        check_writable("results_dir", cfg.results_dir)
    if "--force" in args:
        overrides.append("force=true")
    if multirun:  # the sweep's ledger, where every job (local, joblib or SLURM) says how it ended
        overrides.append(f"++hydra.job.env_set.{sweep.SWEEP_ENV}={sweep.new_sweep_id()}")

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def hydra_entry(cfg) -> None:
        from .run.job import run_job  # torch and the rest only once a job runs (`--help` stays fast)

        run_job(cfg)

    sys.argv = ["peftbench run", *flags, *overrides]
    sweep.LAST_SUMMARY = None
    hydra_entry()
    failed = sweep.LAST_SUMMARY and any(sweep.LAST_SUMMARY["counts"][s] for s in ("failed", "killed", "running"))
    return 1 if failed else 0


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
            raise UserError(f"run: unknown option '{flags[i]}'. Options: {', '.join(HYDRA_FLAGS)}, --force; "
                            "config values are key=value overrides (see `peftbench run --help`).")
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
    note = getattr(model, "peftbench_cannot_train", None)
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


def compose(overrides: list[str], config_dirs: list[str] = ()):
    """The run config for these overrides, as `peftbench run` composes it (no run dir, no Hydra job), with
    the folders of --config-dir on the search path. Hydra's composition errors become one UserError: an
    unknown key with the closest valid keys of its node, a value of the wrong type with the type expected."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from .config import check_group_choices

    check_group_choices(overrides, config_dirs=config_dirs)
    if config_dirs:
        overrides = [*overrides, f"hydra.searchpath=[{','.join('file://' + d for d in config_dirs)}]"]
    try:
        return _hydra_compose(overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise compose_error(exc, overrides) from None


def _hydra_compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from .config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


TYPE_NAMES = {"Float": "a float", "Integer": "an integer", "Boolean": "true or false", "bool": "true or false"}


def compose_error(exc: Exception, overrides: list[str]) -> UserError:
    """`Unknown key 'lrr' in train. Did you mean 'lr'? Valid keys: ...` or `train.lr='abc': expected a float.`"""

    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    from .errors import did_you_mean

    cause, message = exc.__cause__, str(exc).strip()
    key = getattr(cause, "full_key", None)
    if isinstance(cause, ValidationError) and key:
        return _type_error(key, cause)
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and key:
        parent, _, name = key.rpartition(".")
        keys = [o.lstrip("+~").split("=")[0] for o in overrides]
        rest = [o for o, k in zip(overrides, keys) if k != key and not k.startswith(key + ".")]
        try:
            node = _hydra_compose(rest)
            node = OmegaConf.select(node, parent) if parent else node
        except Exception:  # another mistake in the rest: Hydra's own words
            node = None
        if isinstance(node, DictConfig):
            valid = sorted(str(k) for k in node.keys())
            where = f" in {parent}" if parent else ""
            hint = (f" A knob of method '{node.name}' that its YAML leaves out is added with "
                    f"+method.<knob>=<value>." if parent == "method" else "")
            return UserError(f"Unknown key '{name}'{where}.{did_you_mean(name, valid)} "
                             f"Valid keys: {', '.join(valid)}.{hint}")
    detail = f" ({str(cause).splitlines()[0]})" if cause is not None and str(cause) else ""
    return UserError(message + detail)


def _type_error(key: str, exc: Exception) -> UserError:
    import re

    expected = re.search(r"converted to (\w+)|not a valid (bool)", str(exc))
    if expected:
        return UserError(f"{key}={exc.value!r}: expected {TYPE_NAMES[expected[1] or expected[2]]}.")
    return UserError(f"{key}={exc.value!r}: {str(exc).splitlines()[0]}")


def check_sweep_values(cfg, args: list[str]) -> None:
    """Every value of a swept key (`seed=1,abc`) has the key's type; group options are checked before."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf
    from omegaconf.errors import ValidationError

    from .config import GROUPS

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
                raise _type_error(key, exc) from None


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
