"""Plugins: installed packages that add methods, tasks and models, with no flag to pass.

A plugin package declares entry points in its pyproject.toml, one per name, in the group of its kind:

    [project.entry-points."peftbench.methods"]
    lora_fa = "my_plugin.lora_fa:METHOD"      # a peftbench.methods.Method, registered as `lora_fa`
    [project.entry-points."peftbench.tasks"]
    my_task = "my_plugin"                      # tasks and models are YAML only: name the package
    [project.entry-points."peftbench.models"]
    my_model = "my_plugin"

and ships each one's YAML inside its top-level package, laid out like peftbench's own configs:
`my_plugin/conf/method/lora_fa.yaml`, `my_plugin/conf/task/my_task.yaml`, ... Those `conf/` folders join
Hydra's config search path (hydra_plugins/peftbench_plugins), so an installed plugin's names are
options like any other: `peftbench run method=lora_fa`, `peftbench params method=lora_fa`.

A name is refused when peftbench or another plugin has it already, with both origins named (`check`).
This module reads only entry points and folders: it imports a plugin's code only for its methods
(peftbench/methods/__init__.py), and never torch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

from .errors import UserError

ENTRY_POINT_GROUPS = {"method": "peftbench.methods", "task": "peftbench.tasks", "model": "peftbench.models"}
OWN_CONF = Path(__file__).resolve().parent / "conf"  # the same folder as config.CONF_DIR (a lower layer)


@dataclass(frozen=True)
class Plugin:
    group: str  # method | task | model
    name: str  # the registry name, as on the command line
    value: str  # the entry point's value: "pkg.module:METHOD" or "pkg"
    dist: str  # the distribution that declares it (pip's name for it)

    @property
    def origin(self) -> str:
        return (f"the plugin package '{self.dist}' (entry point {ENTRY_POINT_GROUPS[self.group]}: "
                f"{self.name} = {self.value})")

    @property
    def conf_dir(self) -> Path | None:
        """`<top-level package>/conf`, or None when the package cannot be found."""
        top = self.value.split(":")[0].split(".")[0]
        try:
            spec = find_spec(top)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations))) / "conf"

    @property
    def yaml(self) -> Path | None:
        return self.conf_dir / self.group / f"{self.name}.yaml" if self.conf_dir else None


@functools.cache
def declared() -> tuple[Plugin, ...]:
    """Every plugin entry point of the installed distributions, in a stable order."""
    every = metadata.entry_points()  # one pass over the installed distributions; names read for matches only
    found = {Plugin(group, ep.name, ep.value, ep.dist.name if ep.dist else "?")
             for group, ep_group in ENTRY_POINT_GROUPS.items() for ep in every.select(group=ep_group)}
    return tuple(sorted(found, key=lambda p: (p.group, p.name, p.dist)))


def conf_dirs() -> list[Path]:
    """The plugins' config folders that exist, for Hydra's search path (after peftbench's own)."""
    dirs = []
    for plugin in declared():
        folder = plugin.conf_dir
        if folder is not None and folder.is_dir() and folder not in dirs and folder != OWN_CONF:
            dirs.append(folder)
    return dirs


def check(own_conf: Path = OWN_CONF) -> None:
    """Refuse a plugin name without its YAML, and a name two origins define, naming both."""
    problems, seen = [], {}
    for plugin in declared():
        if plugin.yaml is None or not plugin.yaml.is_file():
            problems.append(f"{plugin.group} '{plugin.name}' from {plugin.origin} has no YAML: the package "
                            f"must ship {plugin.value.split(':')[0].split('.')[0]}/conf/{plugin.group}/"
                            f"{plugin.name}.yaml. Reinstall the plugin, or ask its authors.")
        own = own_conf / plugin.group / f"{plugin.name}.yaml"
        other = seen.setdefault((plugin.group, plugin.name), plugin)
        if own.is_file():
            problems.append(clash(plugin, f"peftbench itself ({own})"))
        elif other is not plugin:
            problems.append(clash(plugin, other.origin))
    if problems:
        raise UserError("\n".join(problems))


def clash(plugin: Plugin, first: str) -> str:
    return (f"{plugin.group} '{plugin.name}' is defined twice: by {first} and by {plugin.origin}. Rename the "
            f"plugin's {plugin.group} (its entry point and its YAML), or uninstall one: pip uninstall {plugin.dist}")
