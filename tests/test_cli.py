"""The user's path, through the installed console script: run -> run file -> report."""

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import TINY


def test_run_then_report(tmp_path):
    exe = Path(sys.executable).parent / "peftbench"  # the console script installed beside this Python
    assert exe.is_file(), "no peftbench script: install with `make install` (pip install -e .)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}  # this checkout's package, via the script
    out = subprocess.run([exe, "run", *TINY, "method=bitfit", f"results_dir={tmp_path}"], capture_output=True,
                         text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    run_files = list(tmp_path.rglob("run.json"))
    assert len(run_files) == 1 and run_files[0].parent.name.startswith("tiny_bitfit_demo_s42_")
    assert f"run file:   {run_files[0]}" in out.stdout
    assert (run_files[0].parent / ".hydra" / "config.yaml").is_file()
    record = json.loads(run_files[0].read_text())
    assert record["status"] == "ok" and record["method"] == "bitfit"
    report = subprocess.run([exe, "report", str(tmp_path)], capture_output=True, text=True, timeout=60, env=env)
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith("| method | demo acc | demo F1 | avg | # params | params % | peak mem (MB) | samples/s |")
    assert "| bitfit | " in report.stdout
