"""Section 5, startup: `peftbench --help` and `peftbench report` on 10,000 fixture run files, in seconds,
and which heavy modules each imports."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from .common import ROOT, peftbench_run, table, warn


def fixture_run_files(folder: Path, n: int) -> Path:
    """n copies of a real run file (a tiny run), as from a grid of models x methods x seeds."""
    template = peftbench_run(["model=tiny", "hardware=cpu", "train.max_steps=2", "task.generator_args.n_train=64",
                              "task.generator_args.n_eval=32", "cache_dir=null"], folder / "template")
    methods = ["lora", "ia3", "bitfit", "full", "lst", "adapter_houlsby", "vera", "loha", "dora", "boft"]
    for i in range(n):
        model, method, seed = f"m{i % 10}", methods[(i // 10) % 10], i // 100
        record = {**template, "model": model, "method": method, "seed": seed,
                  "metrics": {"accuracy": 0.5 + (i % 37) / 100, "f1": 0.5 + (i % 41) / 100}}
        record["main_score"] = record["metrics"]["accuracy"]
        path = folder / "runs" / f"{model}_{method}_s{seed}" / "run.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    return folder / "runs"


def timed(cmd: list[str]) -> tuple[float, str]:
    began = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return time.perf_counter() - began, out.stdout


def startup(args) -> None:
    runs = fixture_run_files(Path(args.tmp) / "fixture", args.run_files)
    py, code = sys.executable, ("import sys\nfrom peftbench.cli import main\ntry: main(sys.argv[1:])\nfinally: "
                                "print(sorted(m for m in ('torch', 'transformers', 'hydra', 'pandas') if m in sys.modules))")
    rows = []
    for label, argv in (("python -c pass", None), ("peftbench --help", ["--help"]),
                        ("peftbench report --help", ["report", "--help"]),
                        (f"peftbench report ({args.run_files:,} run files)", ["report", str(runs)]),
                        ("peftbench run --help", ["run", "--help"])):
        cmd = [py, "-c", "pass"] if argv is None else [py, "-c", code, *argv]
        seconds = min(timed(cmd)[0] for _ in range(2))
        heavy = "-" if argv is None else timed(cmd)[1].strip().splitlines()[-1]
        rows.append([label, f"{seconds:.2f}", heavy])
        if argv and argv[0] != "run" and ("torch" in heavy or "transformers" in heavy):
            warn(f"{label} imports {heavy}")
    table("5. Startup (best of 2, seconds)", ["command", "seconds", "heavy modules imported"], rows)
