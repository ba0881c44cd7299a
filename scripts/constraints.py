"""The pinned install: `constraints.txt` holds the exact version of every package `make install` puts into
.venv, except torch (its build is the machine's choice: CPU wheel or the user's CUDA build).

    python scripts/constraints.py freeze > constraints.txt       # `make lock`: from a fresh install
    python scripts/constraints.py for-torch constraints.txt      # `make install`: what pip gets with -c

`freeze` writes this interpreter's `pip freeze` without torch, its CUDA wheels (nvidia-*, triton) and
peftbench itself. `for-torch` prints the constraints without the packages the installed torch itself
requires (sympy, networkx, ...): a GPU user's older torch may pin one of them exactly (torch 2.5 pins
sympy==1.13.1), and the lock must not fight it. With the CPU pin the Makefile installs torch under the
full constraints first, so those packages are pinned all the same.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import subprocess
import sys
from importlib import metadata

NOT_LOCKED = re.compile(r"^(torch|peftbench|triton|nvidia-.*)$")  # torch's build is the machine's choice


def normalize(name: str) -> str:
    """PEP 503 form: `Jinja2`, `typing_extensions` -> `jinja2`, `typing-extensions`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str | None:
    """The package a `name==version` (or `name @ url`) line pins; None for comments and blank lines."""
    line = line.split("#", 1)[0].strip()
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
    return normalize(match.group(0)) if match else None


def frozen_lines(freeze: str) -> list[str]:
    """`pip freeze` output without what the lock leaves to the machine (and without editable installs)."""
    kept = []
    for line in freeze.splitlines():
        name = requirement_name(line)
        if name and not line.startswith("-e") and not NOT_LOCKED.match(name):
            kept.append(line.strip())
    return sorted(kept, key=lambda line: line.split("==")[0].lower())  # as pip freeze orders them


def torch_requirements() -> set[str]:
    """Names of the packages the installed torch requires (none when torch is not installed)."""
    try:
        requires = metadata.requires("torch") or []
    except metadata.PackageNotFoundError:
        return set()
    return {requirement_name(r) for r in requires if "extra ==" not in r} - {None}


def for_torch(text: str, skip: set[str]) -> str:
    """The constraints file's lines, less those naming a package in `skip`."""
    return "".join(line + "\n" for line in text.splitlines() if requirement_name(line) not in skip)


def freeze() -> str:
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], check=True,
                         capture_output=True, text=True).stdout
    try:
        torch = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch = "none"
    header = (f"# Exact versions for `make install` (pip install -c constraints.txt). Refresh on purpose with\n"
              f"# `make lock`, then `make test`; pyproject.toml keeps the ranges users install from.\n"
              f"# Written {datetime.date.today()} by scripts/constraints.py freeze: Python {platform.python_version()}, "
              f"{platform.system()} {platform.machine()}, torch {torch} (torch itself is not pinned here).\n")
    return header + "".join(line + "\n" for line in frozen_lines(out))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("freeze", help="print this environment's versions as constraints (make lock)")
    filt = sub.add_parser("for-torch", help="print FILE less the packages the installed torch requires (make install)")
    filt.add_argument("file")
    args = parser.parse_args(argv)
    if args.command == "freeze":
        sys.stdout.write(freeze())
    else:
        with open(args.file) as f:
            sys.stdout.write(for_torch(f.read(), torch_requirements()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
