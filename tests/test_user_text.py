"""User-facing text names nothing a user does not have: no `../shared/...` paths (this repository's own
test data) and no issue numbers, in the README, CONTRIBUTING, the Makefile, scripts/, the package's code,
messages and configs, and docs/ (the committed run files there are records of what ran, left as they are);
and the GLUE targets without GLUE_DATA stop with an error naming the variable."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = re.compile(r"\.\./shared|\bissues? #?\d+", re.I)
SUFFIXES = {".md", ".py", ".sh", ".yaml", ".yml", ".toml", ".txt"}  # not the report pages: data from run files


def user_facing_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "Makefile"]
    for folder in ("scripts", "peftbench", "docs", "examples"):
        for path in sorted((ROOT / folder).rglob("*")):
            parts = path.relative_to(ROOT).parts
            if path.is_file() and path.suffix in SUFFIXES and "runs" not in parts and ".hydra" not in parts \
                    and "vendor" not in parts:
                files.append(path)
    return files


def test_no_shared_paths_or_issue_numbers_in_user_facing_text():
    hits = [f"{path.relative_to(ROOT)}:{n}: {line.strip()[:160]}"
            for path in user_facing_files()
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1) if FORBIDDEN.search(line)]
    assert len(user_facing_files()) > 50  # the walk found the package, not an empty folder
    assert not hits, "\n".join(hits)


def test_no_test_reads_the_shared_folder_by_itself():
    """Tests get the repository's real data only through PEFTBENCH_GLUE_DATA, never a path of their own."""
    pattern = re.compile(r"\.\./shared|[\"']shared[\"']")
    hits = [str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py")
            if p.name != Path(__file__).name and pattern.search(p.read_text())]
    assert not hits


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
@pytest.mark.parametrize("target", ["glue", "glue-v2"])
def test_glue_targets_need_glue_data(target):
    env = {k: v for k, v in os.environ.items() if k not in ("GLUE_DATA", "MAKEFLAGS", "MAKELEVEL")}
    done = subprocess.run(["make", "-s", target], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "GLUE_DATA is not set" in done.stderr and "Getting the data" in done.stderr
    missing = subprocess.run(["make", "-s", target, "GLUE_DATA=/no/such/glue"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "GLUE_DATA=/no/such/glue: no such folder" in missing.stderr


def test_glue_script_needs_glue_data():
    env = {k: v for k, v in os.environ.items() if k != "GLUE_DATA"}
    done = subprocess.run(["bash", "scripts/glue_minilm.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "GLUE_DATA is not set" in done.stderr
