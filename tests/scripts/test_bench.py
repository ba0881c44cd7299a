"""scripts/bench.py --quick runs end to end and prints every table (a smoke test: no timings checked)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_quick_prints_every_table():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick"], capture_output=True,
                         text=True, cwd=ROOT, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    for title in ("1. Harness overhead", "1b. Harness overhead at fast steps", "1c. Per-step profile",
                  "2. Parity with peft", "2b. Parity with HF Trainer", "3. Memory while training", "4a. Scaling",
                  "4b. Leaks", "5. Startup", "6. Concurrency", "7. Text throughput"):
        assert f"## {title}" in out.stdout, out.stdout
    assert "| lora " in out.stdout and "| prefix_tuning_peft " in out.stdout
    assert "ms per step (95% CI" in out.stdout and "| sum " in out.stdout  # 1b's overhead, 1c's total
    assert "(peftbench counted otherwise!)" not in out.stdout  # 2b: Trainer and peftbench saw the same tokens
    assert "peftbench report (500 run files)" in out.stdout and "'torch'" not in out.stdout.split("## 5.")[1]
