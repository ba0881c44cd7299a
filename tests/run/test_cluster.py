"""A sweep through a real SLURM: a one-node cluster (scripts/slurm_single_node.sh: munged, slurmctld,
slurmd as this user) and `peftbench run -m hydra/launcher=slurm_cpu`, which submits a job array through
hydra-submitit-launcher and waits for it. Needs the Debian packages `slurm-wlm munge` and the `cluster`
extra; runs only when asked for: `pytest -m cluster`. Uses a cluster already up when SLURM_CONF is set."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import TINY_MODEL

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    for tool in ("slurmctld", "slurmd", "munged", "sbatch"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found: apt-get install -y slurm-wlm munge")
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install 'peftbench[cluster]'")
    if os.environ.get("SLURM_CONF"):
        yield os.environ["SLURM_CONF"]
        return
    state = tmp_path_factory.mktemp("slurm")
    script = ROOT / "scripts" / "slurm_single_node.sh"
    out = subprocess.run(["bash", str(script), "start", str(state)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    try:
        yield out.stdout.strip().rpartition("=")[2]
    finally:
        subprocess.run(["bash", str(script), "stop", str(state)], timeout=60)


def test_a_sweep_runs_as_slurm_jobs_to_the_end(slurm, tmp_path, monkeypatch, capsys):
    from peftbench.cli import main

    monkeypatch.setenv("SLURM_CONF", slurm)
    monkeypatch.chdir(ROOT)  # the jobs import peftbench from the submitting directory
    code = main(["run", "-m", "hydra/launcher=slurm_cpu", *TINY_MODEL, "task.generator_args.n_train=64",
                 "task.generator_args.n_eval=32", "train.max_steps=4", "method=lora,bitfit", "seed=1,2",
                 f"results_dir={tmp_path}"])
    assert code == 0
    assert "peftbench sweep: 4 jobs: 4 ok" in capsys.readouterr().out
    runs = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/run.json")]
    assert sorted((r["method"], r["seed"], r["status"]) for r in runs) == [
        ("bitfit", 1, "ok"), ("bitfit", 2, "ok"), ("lora", 1, "ok"), ("lora", 2, "ok")]
    tasks = [p.name for p in (tmp_path / "runs" / ".submitit").glob("[0-9]*_[0-9]*")]  # <array job>_<task>
    assert len(tasks) == 4 and len({t.split("_")[0] for t in tasks}) == 1
