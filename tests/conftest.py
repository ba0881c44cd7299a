"""Shared test helpers: compose configs exactly as `peftbench run` does, offline, on tiny models."""

import os
import tempfile

for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(var, "1")  # tests never reach a hub
os.environ.setdefault("PEFTBENCH_CACHE_DIR", tempfile.mkdtemp(prefix="peftbench-test-cache-"))  # not ./results

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from peftbench.config import CONF_DIR  # noqa: E402

# A few seconds per run: 2-layer BERT (d=32), 256 training examples, CPU.
TINY_MODEL = ["model=tiny", "hardware=cpu", "train.max_steps=8", "train.log_every=2"]
TINY = [*TINY_MODEL, "task.generator_args.n_train=256", "task.generator_args.n_eval=128"]  # on the demo task


def make_cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One LoRA run on the tiny model, shared by the tests that only read its run file."""
    from peftbench.run.runner import run

    run_dir = tmp_path_factory.mktemp("tiny_run")
    return run(make_cfg(*TINY), run_dir), run_dir


def pytest_collection_modifyitems(config, items):
    """`cluster` tests start daemons: they run only when the -m expression names them (pytest -m cluster)."""
    if "cluster" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="starts a SLURM cluster: run with pytest -m cluster")
    for item in items:
        if "cluster" in item.keywords:
            item.add_marker(skip)
