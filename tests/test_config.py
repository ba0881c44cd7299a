import subprocess
import sys

import pytest

from conftest import make_cfg
from peftbench.config import GROUPS, check_config, group_options
from peftbench.methods import METHODS
from peftbench.metrics import METRICS

CASES = [(g, o) for g in GROUPS for o in group_options(g) if not (g == "model" and o == "hf")]


def test_groups_have_options():
    for group in ("model", "method", "task", "hardware"):
        assert group_options(group), group
    assert {"glue/cola", "glue/sst2", "glue/mrpc", "glue/stsb", "glue/qqp", "glue/mnli", "glue/qnli",
            "glue/rte", "demo"} <= set(group_options("task"))
    assert set(group_options("method")) == set(METHODS.names())  # every method has its conf file


@pytest.mark.parametrize("group,option", CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_every_group_file_composes_and_checks(group, option):
    cfg = make_cfg(f"{group}={option}") if group != "experiment" else make_cfg(f"+experiment={option}")
    if group != "experiment":
        assert cfg[group].name == option  # one registry name, used the same in peftbench/conf/ and the code
    _, problems = check_config(cfg, METHODS.get(cfg.method.name), METRICS.names())
    assert problems == []


def test_hf_model_takes_any_checkpoint_and_names_runs_after_it():
    cfg = make_cfg("model=hf", "model.name_or_path=microsoft/deberta-v3-base")
    assert cfg.model.name == "microsoft-deberta-v3-base"


def test_lr_follows_the_method_unless_overridden():
    assert make_cfg("method=full").train.lr == pytest.approx(2e-5)
    assert make_cfg("method=lora").train.lr == pytest.approx(5e-4)
    assert make_cfg("method=lora", "train.lr=0.01").train.lr == pytest.approx(0.01)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "peftbench.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_cfg_job_prints_the_composed_config():
    out = _cli("run", "--cfg", "job", "method=bitfit", "task=glue/rte", "seed=7")
    assert out.returncode == 0, out.stderr
    assert "name: bitfit" in out.stdout and "name: glue/rte" in out.stdout and "seed: 7" in out.stdout


def test_run_help_lists_groups_and_options():
    out = _cli("run", "--help")
    assert out.returncode == 0, out.stderr
    for text in ("method: adalora, adamss, adapter_houlsby, adapter_pfeiffer, beft, binary_adapter, bitfit", "glue/sst2", "hardware:", "peftbench run method.r=16"):
        assert text in out.stdout


def test_a_misspelt_key_fails_at_compose_time_naming_it():
    out = _cli("run", "train.lrr=0.1")
    assert out.returncode != 0
    assert "lrr" in out.stderr
