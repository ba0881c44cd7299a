"""Group choices on the command line (`method=loraa`, `task=glue`), checked before Hydra composes:
the bad value named, the closest option suggested, the options listed."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .. import plugins
from ..errors import UserError, unknown_name
from .kinds import check_task_file
from .schema import CONF_DIR, GROUPS, group_options

SEARCH_PATH_FLAGS = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn")


def check_group_choices(overrides: list[str], multirun: bool = False, config_dirs: Sequence[str | Path] = ()) -> list[str]:
    """Fail fast, before Hydra, on `method=loraa`: name the value, suggest, list the options.
    In a multirun a folder stands for its options: `task=glue` -> `task=glue/cola,...,glue/stsb`.
    `config_dirs`: the folders given with --config-dir, searched before peftbench's own configs (as Hydra does)."""
    if any(a.split("=")[0] in SEARCH_PATH_FLAGS or a.startswith("hydra.searchpath") for a in overrides):
        return overrides  # the user changes the search path inside the overrides: Hydra alone knows every option
    plugins.check(CONF_DIR)
    dirs = [*map(Path, config_dirs), CONF_DIR, *plugins.conf_dirs()]  # Hydra's search path, in its order
    checked = []
    for arg in overrides:
        key, sep, value = arg.partition("=")
        group = key.lstrip("+~")
        if not sep or group not in GROUPS or not value or "(" in value:
            checked.append(arg)
            continue  # not a group choice, or a sweep function (glob/range/choice) Hydra expands itself
        options = sorted({o for d in dirs for o in group_options(group, d)})
        choices = []
        for choice in (v.strip().strip("'\"") for v in value.split(",")):
            inside = [o for o in options if o.startswith(choice + "/")]
            if multirun and choice not in options and inside:
                choices += inside
            elif choice in options:
                choices.append(choice)
            else:
                raise unknown_name(group, choice, options, hint=_hint(group, choice, dirs))
        if group == "task":  # a misspelt field in a task file, named before Hydra's own error
            for choice in choices:
                problems = check_task_file(next(p for d in dirs if (p := d / "task" / f"{choice}.yaml").is_file()))
                if problems:
                    raise UserError("\n".join(problems))
        checked.append(f"{key}={','.join(choices)}")
    return checked


def _hint(group: str, choice: str, dirs: list[Path]) -> str:
    folder = next((d / group / choice for d in dirs if (d / group / choice).is_dir()), None)
    if folder is not None:
        inside = sorted(p.stem for p in folder.glob("*.yaml"))
        return (f"'{choice}' is a folder: pick one, e.g. {group}={choice}/{inside[0]}, or sweep them all "
                f"with -m {group}={choice}.")
    if group == "model":
        return "Any other checkpoint: model=hf model.name_or_path=<hub id or folder>."
    return (f"Add your own as DIR/{group}/<name>.yaml and pass --config-dir DIR, or install a plugin "
            "package that ships it (README.md, \"Benchmark your own method\").")
