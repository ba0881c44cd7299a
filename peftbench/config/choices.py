"""Group choices on the command line (`method=loraa`, `task=glue`), checked before Hydra composes:
the bad value named, the closest option suggested, the options listed."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError, unknown_name
from .kinds import check_task_file
from .schema import CONF_DIR, GROUPS, group_options

SEARCH_PATH_FLAGS = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn")


def check_group_choices(overrides: list[str], multirun: bool = False) -> list[str]:
    """Fail fast, before Hydra, on `method=loraa`: name the value, suggest, list the options.
    In a multirun a folder stands for its options: `task=glue` -> `task=glue/cola,...,glue/stsb`."""
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
