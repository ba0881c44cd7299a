"""Every option of `peftbench report`, `params` and `run` given a wrong-type or out-of-range value: exit 2,
one line on stderr naming the value, no traceback, nothing written."""

import subprocess
import sys
from pathlib import Path

import pytest

from peftbench.cli import main
from test_report import fixture_runs

ROOT = Path(__file__).resolve().parents[1]

# (arguments after the command, text the one line must hold); {runs}: a folder of run files,
# {tmp}: the test's folder (a file `afile`, a folder `outdir`, a non-JSON `notes.txt` and a JSON list in it).
REPORT = [
    (["--decimals", "-1"], "--decimals -1"), (["--decimals", "11"], "--decimals 11"),
    (["--decimals", "x"], "invalid int value: 'x'"), (["--seeds", "0"], "--seeds 0"), (["--seeds", "-2"], "--seeds -2"),
    (["--seeds", "2.5"], "invalid int value: '2.5'"), (["--rows", "bogus"], "row key 'bogus'"),
    (["--rows", ""], "--rows ''"), (["--rows", "method,,model"], "row key ''"), (["--columns", ""], "--columns ''"),
    (["--columns", "glue/zzz"], "column 'glue/zzz'"), (["--tasks", "nope/*"], "task 'nope/*'"),
    (["--methods", "zzz"], "method 'zzz'"), (["--models", " , "], "--models ' , '"),
    (["--format", "pdf"], "format 'pdf'"), (["--table", "x"], "table 'x'"), (["--metrics", "x"], "metrics 'x'"),
    (["--aggregate", "x"], "aggregate 'x'"), (["--best-of", "train.zz"], "'train.zz'"),
    (["--table", "cost", "--baseline", "zzz"], "baseline method 'zzz'"),
    (["-o", "{tmp}/outdir"], "--output {tmp}/outdir: is a folder"),
    (["-o", "{tmp}/afile/t.md"], "--output {tmp}/afile/t.md: is under {tmp}/afile, a file"),
    (["--plots", "{tmp}/afile"], "--plots {tmp}/afile: is a file"),
    (["--plots", "{tmp}/afile/plots"], "--plots {tmp}/afile/plots: is under"),
    (["--compare", "{runs}"], "--compare: expected 2 arguments"), (["--bogus"], "unrecognized arguments: --bogus"),
]
NAMED_FILES = [(["{tmp}/notes.txt"], "{tmp}/notes.txt: not a run file: not JSON"),
               (["{tmp}/list.json"], "{tmp}/list.json: not a run file: a JSON list")]
PARAMS = [(["--labels", "0"], "--labels '0'"), (["--labels", "x"], "--labels 'x'"), (["--labels"], "--labels ''"),
          (["--bogus"], "unknown option '--bogus'")]
RUN = [(["--bogus"], "unknown option '--bogus'"), (["-m", "seed=1,2", "--cfg", "job"], "--multirun and --cfg"),
       (["--cfg", "jobb"], "--cfg 'jobb'"), (["--run", "--info"], "--run and --info")]
CASES = ([("report", ["{runs}", *a], e) for a, e in REPORT] + [("report", a, e) for a, e in NAMED_FILES]
         + [("params", a, e) for a, e in PARAMS] + [("run", a, e) for a, e in RUN])


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("options")
    fixture_runs(tmp / "runs")
    (tmp / "afile").write_text("x")
    (tmp / "outdir").mkdir()
    (tmp / "notes.txt").write_text("not json")
    (tmp / "list.json").write_text("[1, 2]")
    return tmp


@pytest.mark.parametrize("command, args, expected", CASES, ids=[f"{c} {' '.join(a)}" for c, a, _ in CASES])
def test_a_bad_option_value_is_one_line_exit_2_and_writes_nothing(folders, monkeypatch, capsys, command, args,
                                                                   expected):
    monkeypatch.chdir(folders)
    fill = {"runs": str(folders / "runs"), "tmp": str(folders)}
    before = sorted(folders.rglob("*"))
    rc = main([command, *(a.format(**fill) for a in args)])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("peftbench: error: "), err
    assert expected.format(**fill) in lines[0] and "Traceback" not in err + out
    assert sorted(folders.rglob("*")) == before


def test_help_of_a_sweep_shows_its_first_job_instead_of_a_hydra_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "peftbench.cli", "run", "-m", "method=lora,bitfit", "--help"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert "results_dir" in out.stdout and not any(tmp_path.iterdir())
