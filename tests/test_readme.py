"""The README's commands that `.ci/run` runs verbatim (scripts/readme_check.py) are still in the README,
and they include the whole quick-start block a new user tries first. Runs nothing but the script's check."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "readme_check.py"


def test_every_command_the_ci_runs_is_a_readme_line(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--list"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    commands = out.stdout.splitlines()
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert quick_start and all(line.rstrip() in commands for line in quick_start)
    assert any(c.startswith("python scripts/") for c in commands)  # `python` inside the venv, as the README says

    edited = tmp_path / "README.md"  # a README line changed: the check names it instead of running stale lines
    edited.write_text(readme.replace("peftbench report results --format csv", "peftbench report results -f csv"))
    code = (f"import sys; sys.path.insert(0, {str(SCRIPT.parent)!r}); import readme_check as r; "
            f"from pathlib import Path; print(r.missing_from_readme(Path({str(edited)!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "peftbench report results --format csv" in out.stdout, out.stderr
