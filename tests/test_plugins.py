"""Plugins: an installed package's entry points add methods (tasks, models) with their YAMLs; a name
defined twice is refused with both origins named. Fast tests declare plugins with a dist-info folder on
sys.path (what pip writes); the slow one builds and installs the example plugin and runs its own test."""

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_MODEL, make_cfg
from peftbench import plugins
from peftbench.cli import main
from peftbench.config import CONF_DIR, check_group_choices
from peftbench.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "peftbench-lora-fa"


def declare(site: Path, dist: str, entry_points: dict[str, dict[str, str]]) -> None:
    """A distribution's metadata as pip installs it: <dist>-0.1.dist-info/{METADATA, entry_points.txt}."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in eps.items()) for group, eps in entry_points.items()))


def package(site: Path, name: str, yamls: dict[str, str]) -> None:
    """A package with conf/<group>/<name>.yaml files copied from peftbench's own (`yamls`: new path -> source)."""
    (site / name).mkdir(parents=True, exist_ok=True)
    (site / name / "__init__.py").write_text("")
    for path, source in yamls.items():
        (site / name / "conf" / path).parent.mkdir(parents=True, exist_ok=True)
        (site / name / "conf" / path).write_text((CONF_DIR / source).read_text())


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path whose distributions count as installed; the plugin cache cleared around it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    plugins.declared.cache_clear()
    yield tmp_path
    plugins.declared.cache_clear()


@pytest.fixture
def example(site, monkeypatch):
    """The example plugin, declared as pip would, its package importable from the checkout."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    declare(site, "peftbench-lora-fa", {"peftbench.methods": {"lora_fa": "peftbench_lora_fa.lora_fa:METHOD"}})
    importlib.invalidate_caches()
    plugins.declared.cache_clear()
    return site


def test_an_installed_plugin_method_is_an_option_that_composes_and_builds(example):
    plugins.check()
    assert plugins.conf_dirs() == [EXAMPLE / "peftbench_lora_fa" / "conf"]
    assert check_group_choices(["method=lora_fa"]) == ["method=lora_fa"]
    with pytest.raises(UserError, match="Did you mean 'lora_fa'"):
        check_group_choices(["method=lora_af"])
    cfg = make_cfg(*TINY_MODEL, "method=lora_fa")  # Hydra finds the YAML through hydra_plugins/peftbench_plugins
    assert (cfg.method.name, cfg.method.r, cfg.train.lr) == ("lora_fa", 8, 5e-4)
    from peftbench_lora_fa.lora_fa import METHOD

    knobs, problems = METHOD.check(cfg.method)
    assert problems == [] and knobs.target_modules == ["query", "value"]


def test_the_method_registers_at_the_first_lookup_whichever_module_is_imported_first(example):
    """A plugin module imports peftbench.methods; importing it first must not find itself half-made."""
    code = ("import peftbench_lora_fa.lora_fa as m; from peftbench.methods import METHODS; "
            "assert METHODS.get('lora_fa') is m.METHOD and 'lora' in METHODS.names()")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(example), str(EXAMPLE), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_params_list_marks_a_plugins_names_with_its_package(example, capsys):
    assert main(["params", "--list"]) == 0
    assert "lora_fa (peftbench-lora-fa)" in capsys.readouterr().out


def test_a_plugin_redefining_a_builtin_name_is_refused_naming_both(site, capsys):
    package(site, "badplug", {"method/lora.yaml": "method/lora.yaml"})
    declare(site, "badplug", {"peftbench.methods": {"lora": "badplug:METHOD"}})
    assert main(["params", "method=lora"]) == 2
    err = capsys.readouterr().err
    assert "method 'lora' is defined twice: by peftbench itself" in err and str(CONF_DIR / "method" / "lora.yaml") in err
    assert "the plugin package 'badplug' (entry point peftbench.methods: lora = badplug:METHOD)" in err
    assert "pip uninstall badplug" in err
    from peftbench.methods import register_plugins

    with pytest.raises(UserError, match="defined twice: by peftbench itself"):
        register_plugins()  # the same refusal where methods register, if a caller skipped the check


def test_two_plugins_with_one_task_name_are_refused_naming_both(site):
    for dist in ("plug-a", "plug-b"):
        name = dist.replace("-", "_")
        package(site, name, {"task/sentiment.yaml": "task/demo.yaml"})
        declare(site, dist, {"peftbench.tasks": {"sentiment": name}})
    with pytest.raises(UserError) as err:
        plugins.check()
    assert ("task 'sentiment' is defined twice: by the plugin package 'plug-a' (entry point peftbench.tasks: "
            "sentiment = plug_a) and by the plugin package 'plug-b'") in str(err.value)


def test_a_plugin_name_without_its_yaml_is_refused_with_the_path_it_needs(site):
    package(site, "halfplug", {})
    declare(site, "halfplug", {"peftbench.models": {"big": "halfplug"}})
    with pytest.raises(UserError, match=r"model 'big' from the plugin package 'halfplug' .* has no YAML: the "
                                        r"package must ship halfplug/conf/model/big.yaml"):
        plugins.check()


@pytest.mark.slow
def test_the_example_plugin_installs_offline_and_its_own_test_passes(tmp_path):
    """pip wheel --no-deps --no-build-isolation, pip install --no-deps --target: no network, then the
    plugin's test (listed by params, counted, trained) beside this checkout's peftbench."""
    from test_install import build_and_install

    source = tmp_path / "source"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    target = build_and_install(source, tmp_path, "peftbench_lora_fa")
    assert (target / "peftbench_lora_fa" / "conf" / "method" / "lora_fa.yaml").is_file()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(source / "tests")],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
