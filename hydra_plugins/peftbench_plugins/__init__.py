"""Hydra loads this module from its `hydra_plugins` namespace: it appends the `conf/` folders of the
installed peftbench plugins (peftbench/plugins.py) to the config search path, after peftbench's own, so
their methods, tasks and models compose like peftbench's wherever Hydra composes (run, params, tests)."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class PeftbenchPlugins(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from peftbench.plugins import conf_dirs

        for folder in conf_dirs():
            search_path.append(provider="peftbench-plugin", path=f"file://{folder}")
