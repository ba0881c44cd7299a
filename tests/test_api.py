"""The Python API (peftbench/api.py): `run` trains one combination through the command line's own path and
returns its run record (a second call skips it, as the CLI does); `table` over `load`'s frame prints what
`peftbench report` prints for the same run files; README's "Python API" example runs as written."""

import re
from pathlib import Path

import pytest

from peftbench import api, cli
from peftbench.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
TINY = {"model": "tiny", "task": "demo", "hardware": "cpu",
        "train": {"max_steps": 8, "log_every": 2}, "task.generator_args": {"n_train": 256, "n_eval": 128}}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    lora = api.run({**TINY, "method": "lora", "results_dir": str(folder)})
    bitfit = api.run([*api.overrides_of(TINY), "method=bitfit", f"results_dir={folder}"])
    return folder, lora, bitfit


def test_run_returns_the_run_record_the_cli_writes(two_runs):
    folder, lora, bitfit = two_runs
    assert lora["status"] == "ok" and lora["method"] == "lora" and bitfit["method"] == "bitfit"
    assert Path(lora["run_dir"]).parent == folder / "runs"
    assert Path(lora["run_dir"]).name.startswith("tiny_lora_demo_s42_")  # the CLI's run-folder name
    assert (Path(lora["run_dir"]) / ".hydra" / "config.yaml").is_file()  # made by Hydra, as `peftbench run` does
    assert lora["config"]["train"]["max_steps"] == 8 and lora["config"]["task"]["generator_args"]["n_train"] == 256


def test_a_second_run_of_the_same_config_is_skipped_and_returns_the_same_record(two_runs):
    folder, lora, _ = two_runs
    again = api.run({**TINY, "method": "lora", "results_dir": str(folder)})
    assert again == lora
    assert len(list(folder.rglob("run.json"))) == 2


@pytest.mark.parametrize("argv, options", [
    ([], {}),
    (["--table", "cost", "--baseline", "bitfit"], {"kind": "cost", "baseline": "bitfit"}),
    (["--format", "csv", "--decimals", "3"], {"format": "csv", "decimals": 3}),
    (["--format", "latex", "--ci", "--metrics", "all"], {"format": "latex", "ci": True, "metrics": "all"}),
    (["--methods", "lora", "--rows", "method,config.train.lr"], {"methods": "lora", "rows": "method,config.train.lr"}),
])
def test_table_of_the_frame_is_the_cli_report(two_runs, capsys, argv, options):
    folder = two_runs[0]
    capsys.readouterr()
    assert cli.main(["report", str(folder), *argv]) == 0
    printed = capsys.readouterr().out
    assert api.table(api.load(folder), **options) == printed
    assert re.search(r"\blora\b", printed) and ("bitfit" in printed) == ("methods" not in options)


def test_rows_of_the_frame_pick_the_runs(two_runs, capsys):
    folder = two_runs[0]
    runs = api.load(folder)
    capsys.readouterr()
    cli.main(["report", str(folder), "--methods", "bitfit"])
    assert api.table(runs[runs.method == "bitfit"]) == capsys.readouterr().out


def test_mistakes_raise_user_errors():
    with pytest.raises(UserError, match="Did you mean 'lora'"):
        api.run({**TINY, "method": "lorax"})
    with pytest.raises(UserError, match="only key=value overrides"):
        api.run(["-m", "method=lora,ia3"])
    with pytest.raises(UserError, match="output"):
        api.table(api.load(ROOT / "docs" / "example-report"), output="x.md")
    with pytest.raises(UserError, match="Unknown table 'costs'"):
        api.table(api.load(ROOT / "docs" / "example-report"), kind="costs")


def test_overrides_of_a_dict_are_hydra_overrides():
    assert api.overrides_of({"method": "lora", "train": {"lr": 1e-3, "report": "best"}, "seed": 2,
                             "task.label_names": ["a b", "c"], "train.init_from": None, "force": True,
                             "name": "3"}) == [
        "method=lora", "train.lr=0.001", "train.report=best", "seed=2", "task.label_names=['a b',c]",
        "train.init_from=null", "force=true", "name='3'"]


def readme_python_example() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"<!-- readme_check: python -->\n```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1, "README.md should hold one Python block marked for readme_check"
    return blocks[0]


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # its results/ lands here
    exec(compile(readme_python_example(), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "| lora |" in out and (tmp_path / "results").is_dir()
