"""peftbench installed like a library: the configs ship inside the package, so a wheel installed
anywhere runs `peftbench run` from any folder, without the checkout."""

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import peftbench
from peftbench.config import CONF_DIR

ROOT = Path(__file__).resolve().parents[1]


def test_configs_live_inside_the_package_and_the_wheel_takes_them_all():
    assert CONF_DIR == Path(peftbench.__file__).parent / "conf"
    assert (CONF_DIR / "config.yaml").is_file() and (CONF_DIR / "method" / "lora.yaml").is_file()
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["peftbench"]
    shipped = {p for g in globs for p in CONF_DIR.parent.glob(g)}
    assert shipped and shipped == {p for p in CONF_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def build_and_install(source: Path, tmp: Path, name: str) -> Path:
    """`pip wheel` `source` (a fresh copy: no stale build/ folder), then `pip install --target` it; offline."""
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "wheels"), str(source)],
                   check=True, cwd=tmp)
    wheel = next((tmp / "wheels").glob(f"{name}-*.whl"))
    target = tmp / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True, cwd=tmp)
    return target


def run_installed(target: Path, cwd: Path, args: list[str], extra_path: str = "") -> subprocess.CompletedProcess:
    """`peftbench <args>` with the installed copy first on the path (asserted), from `cwd`."""
    code = ("import sys, peftbench; from pathlib import Path; "
            f"assert Path(peftbench.__file__).is_relative_to({str(target)!r}), peftbench.__file__; "
            f"from peftbench.cli import main; sys.exit(main({args!r}))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(target), extra_path) if p),
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_a_wheel_installed_elsewhere_runs_outside_the_checkout(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "peftbench", source / "peftbench", ignore=shutil.ignore_patterns("__pycache__"))
    target = build_and_install(source, tmp_path, "peftbench")
    assert (target / "peftbench" / "conf" / "method" / "lora.yaml").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_installed(target, elsewhere, ["run", "model=tiny", "method=lora", "train.max_steps=2",
                                             "train.eval_batch_size=64", "hardware=cpu"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((elsewhere / "results" / "runs").glob("tiny_lora_demo_*/run.json"))) == 1
