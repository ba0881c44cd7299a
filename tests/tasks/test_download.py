"""`peftbench data glue DIR`: the files it writes from the hub (a small in-memory dataset stands in for
`nyu-mll/glue`) load through the real task loader as the same examples the hub path gives; GLUE's zip files
land in the same layout; offline it fails with exit 2, naming the task, the network and data_root."""

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import datasets
import pytest

from peftbench import cli
from peftbench.errors import UserError
from peftbench.tasks import load_task
from peftbench.tasks.download import task_config, write_task

ROOT = Path(__file__).resolve().parents[2]
HUB = {  # config: {split: columns} as nyu-mll/glue has them (labels are class ids; STS-B a float score)
    "rte": {s: {"sentence1": ["A man sleeps.", 'He said "no" .', "x"], "sentence2": ["A man rests.", "He agreed.", "y"],
                "label": [0, 1, 1], "idx": [0, 1, 2]} for s in ("train", "validation", "test")},
    "cola": {s: {"sentence": ["The cat sat.", "Cat the sat.", "it 's fine . "], "label": [1, 0, 1],
                 "idx": [0, 1, 2]} for s in ("train", "validation")},
    "stsb": {s: {"sentence1": ["A dog runs.", "Two men talk."], "sentence2": ["A dog is running.", "A cat."],
                 "label": [4.75, 0.2], "idx": [0, 1]} for s in ("train", "validation")},
    "mnli": {s: {"premise": ["P one.", "P two."], "hypothesis": ["H one.", "H two."], "label": [0, 2],
                 "idx": [0, 1]} for s in ("train", "validation_matched", "validation_mismatched")},
}


@pytest.fixture
def fake_hub(monkeypatch):
    calls = []

    def load_dataset(path, name=None, **kw):
        calls.append((path, name))
        return datasets.DatasetDict({s: datasets.Dataset.from_dict(cols) for s, cols in HUB[name].items()})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


@pytest.mark.parametrize("name", sorted(HUB))
def test_hub_files_load_as_the_hub_examples(fake_hub, tmp_path, name):
    folder, rows = write_task(name, tmp_path, "hub")
    task = task_config(name)
    from_files, from_hub = load_task(task, data_root=str(tmp_path)), load_task(task)
    assert from_files.source == f"data_dir:{folder}" and from_hub.source.startswith("hub:")
    assert from_files.train.equals(from_hub.train)
    assert list(from_files.evals) == list(from_hub.evals)
    for split, frame in from_files.evals.items():
        assert frame.equals(from_hub.evals[split])
    assert rows[task.train_split] == len(from_hub.train) > 0
    assert not (folder / "test.tsv").exists()  # hidden labels: never written
    assert ("nyu-mll/glue", name) in fake_hub


def test_file_layout_is_glues(fake_hub, tmp_path):
    assert cli.main(["data", "glue", str(tmp_path), "--tasks", "rte,cola,mnli"]) == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.tsv")) == [
        "CoLA/dev.tsv", "CoLA/train.tsv", "MNLI/dev_matched.tsv", "MNLI/dev_mismatched.tsv", "MNLI/train.tsv",
        "RTE/dev.tsv", "RTE/train.tsv"]
    assert (tmp_path / "RTE" / "dev.tsv").read_text().splitlines()[0] == "sentence1\tsentence2\tlabel"
    assert (tmp_path / "CoLA" / "dev.tsv").read_text().splitlines()[0] == "\t1\t\tThe cat sat."  # no header, as GLUE


def test_a_tab_inside_a_text_becomes_a_space(monkeypatch, tmp_path):
    cols = {"sentence": ["good\tfilm", "bad\nfilm"], "label": [1, 0], "idx": [0, 1]}
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.DatasetDict(
        {s: datasets.Dataset.from_dict(cols) for s in ("train", "validation")}))
    write_task("sst2", tmp_path, "hub")
    assert load_task(task_config("sst2"), data_root=str(tmp_path)).train["sentence"].tolist() == ["good film",
                                                                                                 "bad film"]


def glue_zip(folder: str, files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, text in files.items():
            archive.writestr(f"{folder}/{name}", text)
    return out.getvalue()


def test_glue_zip_source_writes_train_and_dev(tmp_path):
    rows = "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n1\tC.\tD.\tnot_entailment\n"
    urls = []
    blob = glue_zip("RTE", {"train.tsv": rows, "dev.tsv": rows, "test.tsv": "index\tsentence1\tsentence2\n"})
    folder, counts = write_task("rte", tmp_path, "glue", fetch=lambda url: urls.append(url) or blob)
    assert urls == ["https://dl.fbaipublicfiles.com/glue/data/RTE.zip"]
    assert sorted(p.name for p in folder.iterdir()) == ["dev.tsv", "train.tsv"]
    assert counts == {"train": 2, "validation": 2}


def test_glue_zip_offline_is_a_user_error(tmp_path):
    def no_network(url):
        raise OSError("Name or service not known")

    with pytest.raises(UserError, match=r"glue/rte.*needs a network.*data_root="):
        write_task("rte", tmp_path, "glue", fetch=no_network)
    assert not (tmp_path / "RTE").exists()  # nothing half-written


def test_mistakes_name_the_valid_values(tmp_path, capsys):
    assert cli.main(["data", "glue", str(tmp_path), "--tasks", "rtx"]) == 2
    assert "Unknown GLUE task 'rtx'. Did you mean 'rte'?" in capsys.readouterr().err
    assert cli.main(["data", "glue", str(tmp_path), "--source", "zip"]) == 2
    assert "Available: glue, hub." in capsys.readouterr().err
    assert cli.main(["data", "glue", str(tmp_path), "--tasks", "mrpc", "--source", "glue"]) == 2
    assert "--source hub" in capsys.readouterr().err


def test_offline_fails_with_exit_2_naming_the_task(tmp_path):
    """The real `datasets` with HF_DATASETS_OFFLINE=1, in a fresh process (datasets reads it at import)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "peftbench.cli", "data", "glue", str(tmp_path / "glue"),
                           "--tasks", "rte"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "task 'glue/rte'" in done.stderr and "needs a network" in done.stderr and "data_root=" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "glue" / "RTE").exists()
