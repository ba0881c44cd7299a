"""constraints.txt (the pinned install `make install` uses) and scripts/constraints.py, which writes it
(`make lock`) and fits it to the installed torch: torch stays out, every dependency pyproject.toml names is
pinned inside its range, and a GPU user's torch keeps the packages it pins itself."""

import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import constraints  # noqa: E402

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


def pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    entries = [line for line in lines if line and not line.startswith("#")]
    assert all("==" in line for line in entries), [line for line in entries if "==" not in line]
    return {constraints.normalize(line.split("==")[0]): line.split("==")[1] for line in entries}


def test_every_dependency_is_pinned_inside_its_range_and_torch_is_not():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = pins()
    assert not any(constraints.NOT_LOCKED.match(name) for name in locked)  # torch is the machine's choice
    for text in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(text)
        name = constraints.normalize(req.name)
        if name == "torch":
            continue
        assert name in locked, f"{name} is not in constraints.txt: run make lock"
        assert req.specifier.contains(locked[name], prereleases=True), (name, locked[name], str(req.specifier))


def test_freeze_leaves_out_torch_its_cuda_wheels_and_peftbench():
    freeze = "\n".join(["Jinja2==3.1.6", "-e git+https://example/peftbench@abc#egg=peftbench", "torch==2.13.0+cpu",
                        "nvidia-cublas-cu12==12.8.4.1", "triton==3.5.0", "peftbench @ file:///src", "accelerate==1.16.0"])
    assert constraints.frozen_lines(freeze) == ["accelerate==1.16.0", "Jinja2==3.1.6"]


def test_for_torch_drops_what_the_installed_torch_requires(monkeypatch):
    text = "# header\naccelerate==1.16.0\nsympy==1.14.0\ntyping_extensions==4.16.0\n"
    # torch 2.5.1 pins sympy exactly: the lock's sympy must not be forced on it
    monkeypatch.setattr(constraints.metadata, "requires",
                        lambda name: ["filelock", "sympy==1.13.1; python_version >= '3.9'", "typing-extensions>=4.8.0",
                                      'opt-einsum>=3.3; extra == "opt-einsum"'])
    assert constraints.for_torch(text, constraints.torch_requirements()) == "# header\naccelerate==1.16.0\n"
    assert constraints.for_torch(text, set()) == text  # no torch installed: every pin stays
