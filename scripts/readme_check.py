"""Run README.md's commands verbatim, as a new user would after `make demo`: `.ci/run` calls it.

Each line of COMMANDS is a line of a ```bash block in README.md, copied exactly; the check fails, naming
it, when the README no longer has that line (tests/test_readme.py checks this too, without running
anything). Each runs in bash in the repository root after `source .venv/bin/activate`, as the README
says to, and must exit 0. Chosen: every command that runs offline in seconds to a minute on 2 cores;
the README's hub, GPU, SLURM and hours-long commands are left out. Files a command makes outside
results/ are removed afterwards. Then every ```python block that the line `<!-- readme_check: python -->`
introduces runs, as written, in the venv's Python from the repository root.

    .venv/bin/python scripts/readme_check.py          # after make demo (about a minute on 2 cores)
    python scripts/readme_check.py --list             # the lines it runs, checked against README.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [  # in README order
    "peftbench run                                        # MiniLM + LoRA on the offline demo task",
    "peftbench run method=bitfit seed=2 train.epochs=1    # any combination, Hydra overrides",
    "peftbench report results                             # Markdown table of every run file under results/",
    "python scripts/make_demo_glue_files.py demo_sst2          # the demo data, in SST-2's format",
    "peftbench report results --format csv                      # also html; -o FILE writes a file",
    "peftbench report results --format html -o page.html         # one page: sortable table, charts, each row's runs",
    "peftbench report results --aggregate median                # median over seeds (LoRA paper), not mean",
]
MADE = ["demo_sst2", "page.html"]  # what the commands above make outside results/, removed afterwards when new


def readme_commands(readme: Path = ROOT / "README.md") -> list[str]:
    """Every line inside the README's ```bash blocks, trailing spaces removed."""
    lines, inside = [], False
    for line in readme.read_text().splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```bash"
            continue
        if inside:
            lines.append(line.rstrip())
    return lines


PYTHON_MARK = "<!-- readme_check: python -->"


def readme_python_blocks(readme: Path = ROOT / "README.md") -> list[str]:
    """The code of each ```python block right after a PYTHON_MARK line."""
    blocks, lines = [], readme.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() == PYTHON_MARK and i + 1 < len(lines) and lines[i + 1].strip() == "```python":
            end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
            blocks.append("\n".join(lines[i + 2:end]) + "\n")
    return blocks


def missing_from_readme(readme: Path = ROOT / "README.md") -> list[str]:
    found = set(readme_commands(readme))
    return [c for c in COMMANDS if c not in found]


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--list", action="store_true", help="print the lines it runs, check them, run nothing")
    args = args.parse_args(argv)
    missing = missing_from_readme()
    if missing:
        print("readme_check: these lines are no longer in README.md's bash blocks; update COMMANDS in "
              f"{Path(__file__).name}:\n" + "\n".join(f"  {c}" for c in missing), file=sys.stderr)
        return 1
    if args.list:
        print("\n".join(COMMANDS))
        return 0
    if not (ROOT / ".venv" / "bin" / "activate").is_file():
        print("readme_check: no .venv here: run `make demo` first (the README's order).", file=sys.stderr)
        return 1
    new = [ROOT / m for m in MADE if not (ROOT / m).exists()]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    failed = 0
    try:
        for command in COMMANDS:
            print(f"readme_check: $ {command}", flush=True)
            began = time.perf_counter()
            rc = subprocess.run(["bash", "-c", f"source .venv/bin/activate && {command}"], cwd=ROOT, env=env).returncode
            print(f"readme_check: exit {rc} in {time.perf_counter() - began:.1f} s", flush=True)
            failed += rc != 0
        for block in readme_python_blocks():
            print(f"readme_check: python <<EOF\n{block}EOF", flush=True)
            rc = subprocess.run(["bash", "-c", "source .venv/bin/activate && python -"], cwd=ROOT, env=env,
                                input=block, text=True).returncode
            print(f"readme_check: exit {rc}", flush=True)
            failed += rc != 0
    finally:
        for path in new:
            shutil.rmtree(path, ignore_errors=True)
    total = len(COMMANDS) + len(readme_python_blocks())
    print(f"readme_check: {total - failed} of {total} README commands and Python blocks ran ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
