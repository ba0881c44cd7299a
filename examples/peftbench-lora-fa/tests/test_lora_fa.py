"""The plugin installed beside peftbench: listed, counted and trained like peftbench's own methods,
offline on peftbench's tiny model (random init, seconds). Run it where both are installed:
`python -m pytest examples/peftbench-lora-fa/tests`."""

import json
import os
import subprocess
import sys


def peftbench(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "peftbench.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def test_listed_counted_and_trained(tmp_path):
    listed = peftbench("params", "--list", cwd=tmp_path)
    assert "lora_fa (peftbench-lora-fa)" in listed.stdout, listed.stderr

    counted = peftbench("params", "model=tiny", "method=lora_fa", "--json", cwd=tmp_path)
    assert counted.returncode == 0, counted.stderr
    # tiny: 2 layers x (query, value), B of 32 x 8 each, plus the 2-label head (32 x 2 + 2); A is frozen
    assert json.loads(counted.stdout)["trainable"] == 2 * 2 * 32 * 8 + 66

    ran = peftbench("run", "model=tiny", "method=lora_fa", "hardware=cpu", "train.max_steps=4",
                    "task.generator_args.n_train=64", "task.generator_args.n_eval=64", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    record = json.loads(next((tmp_path / "results" / "runs").glob("tiny_lora_fa_demo_*/run.json")).read_text())
    assert record["status"] == "ok" and record["method"] == "lora_fa"
