"""One home per default: the run's defaults live in the schema (config/schema.py), each in-house
method's knob values in its YAML (what Hydra composes and the run file records), never in both."""

import dataclasses
import os

import pytest
from omegaconf import MISSING, OmegaConf

from conftest import make_cfg
from peftbench.config import CONF_DIR, MethodConfig
from peftbench.methods import METHODS

IN_HOUSE = [n for n in METHODS.names() if METHODS.get(n).valid_keys is None]


def test_config_yaml_only_chooses_the_groups_and_sets_hydra():
    """Every run key's default is in RunConfig & co.; a second copy in config.yaml could drift."""
    assert set(OmegaConf.load(CONF_DIR / "config.yaml")) == {"defaults", "hydra"}


def test_the_schema_defaults_reach_the_composed_config():
    cfg = make_cfg()
    assert (cfg.seed, cfg.train.epochs, cfg.train.batch_size, cfg.launch.if_locked) == (42, 3.0, 32, "skip")
    assert cfg.train.lr == cfg.method.default_lr and cfg.cache_dir == os.environ["PEFTBENCH_CACHE_DIR"]


@pytest.mark.parametrize("name", IN_HOUSE)
def test_each_knob_has_one_home_the_methods_yaml(name):
    """A knob with a default in its dataclass and a value in its YAML is written twice (compacter's
    non_linearity once said relu in one and gelu in the other); the YAML is the one that runs."""
    method_keys = {f.name for f in dataclasses.fields(MethodConfig)}
    knobs = [f for f in dataclasses.fields(METHODS.get(name).knobs) if f.name not in method_keys]
    node = make_cfg(f"method={name}").method
    twice = [f"{f.name}: dataclass {f.default if f.default_factory is dataclasses.MISSING else f.default_factory()!r}, "
             f"YAML {node.get(f.name)!r}" for f in knobs
             if f.default != MISSING or f.default_factory is not dataclasses.MISSING]
    assert twice == [], f"method {name}: give these knobs no default in the dataclass (= MISSING): {twice}"
    assert [f.name for f in knobs if f.name not in node] == [], f"conf/method/{name}.yaml lacks knobs"


def test_compacter_uses_the_authors_gelu():
    """The Compacter authors' configs set non_linearity gelu_new (rabeehk/compacter, seq2seq/configs)."""
    assert make_cfg("method=compacter").method.non_linearity == "gelu"
    assert make_cfg("method=compacterpp").method.non_linearity == "gelu"


def test_a_knob_missing_from_the_yaml_is_named_with_the_fix():
    cfg = make_cfg("method=compacter", "~method.phm_rank")
    knobs, problems = METHODS.get("compacter").check(cfg.method)
    assert knobs is None and "no value for phm_rank" in problems[0] and "+method.phm_rank=" in problems[0]
