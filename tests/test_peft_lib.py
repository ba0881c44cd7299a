"""methods/peft_lib.py: peft without bitsandbytes unless a model is quantised (no import, no warnings on
stderr), and a method the installed peft is too old for is refused by name, with both versions."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_cfg
from peftbench.errors import UserError
from peftbench.methods import METHODS
from peftbench.methods import peft_lib
from peftbench.methods.peft_methods import CLASSES

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("bitsandbytes", "tensorboard", "wandb", "mlflow")

BUILD = f"""
import sys
sys.path.insert(0, {str(ROOT / 'tests')!r})
from conftest import make_cfg
from peftbench.methods.counting import build_counted
build_counted(make_cfg("model=tiny", "hardware=cpu", "method=lora"), 2)
import peft.import_utils as probes
print(sorted(m for m in {OPTIONAL!r} if sys.modules.get(m)), probes.is_bnb_4bit_available())
"""


def test_a_lora_build_without_quantization_imports_no_optional_package():
    out = subprocess.run([sys.executable, "-c", BUILD], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    installed = importlib.util.find_spec("bitsandbytes") is not None
    # nothing imported, nothing said; peft's (cached) probe still sees bitsandbytes for a later quantised model
    assert out.stdout.split() == ["[]", str(installed)], out.stdout
    assert "bitsandbytes" not in out.stderr.lower(), out.stderr


def test_a_method_newer_than_the_installed_peft_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(peft_lib, "installed_peft", lambda: "0.13.0")
    with pytest.raises(UserError, match=r"^method 'road' needs peft >= 0.18.0; peft 0.13.0 is installed\. "
                                        r"Upgrade it: pip install 'peft>=0.18.0'\.$"):
        METHODS.get("road").check(make_cfg("model=tiny", "method=road").method)
    knobs, problems = METHODS.get("lora").check(make_cfg("model=tiny", "method=lora").method)  # 0.9.0: fine
    assert knobs["name"] == "lora" and problems == []


def test_every_wrapped_method_names_the_peft_it_needs_and_the_installed_one_has_it():
    from packaging.version import Version

    assert set(peft_lib.NEEDS_PEFT) == set(CLASSES)
    assert all(Version(v) <= Version(peft_lib.installed_peft()) for v in peft_lib.NEEDS_PEFT.values())
