"""`data_root`: one folder laid out as GLUE distributes it (RTE/, SST-2/, ...), each GLUE task reading its
own subfolder (`task.data_subdir`); `task.data_dir` wins; tasks without a subfolder never read it."""

import re

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import TINY_MODEL, make_cfg
from peftbench.config import CONF_DIR
from peftbench.errors import UserError
from peftbench.tasks import load_task, resolve_data_dir
from peftbench.tasks.synthetic import write_glue_tsv

# GLUE's own folder names, as in the archives it distributes.
GLUE_FOLDERS = {"glue/cola": "CoLA", "glue/sst2": "SST-2", "glue/mrpc": "MRPC", "glue/stsb": "STS-B",
                "glue/qqp": "QQP", "glue/mnli": "MNLI", "glue/qnli": "QNLI", "glue/rte": "RTE"}


def sst2_root(root, *others):
    """A data_root holding SST-2/ (small generated files in SST-2's format) and empty `others` folders."""
    write_glue_tsv(root / "SST-2", n_train=20, n_eval=8)
    for name in others:
        (root / name).mkdir()
    return root


def test_every_glue_task_names_its_glue_folder():
    for name, folder in GLUE_FOLDERS.items():
        assert OmegaConf.load(CONF_DIR / "task" / f"{name}.yaml").data_subdir == folder, name
    assert {p.stem for p in (CONF_DIR / "task" / "glue").glob("*.yaml")} == {n.split("/")[1] for n in GLUE_FOLDERS}


def test_data_root_gives_the_task_its_subfolder(tmp_path):
    root = sst2_root(tmp_path)
    cfg = make_cfg("task=glue/sst2", f"data_root={root}")
    assert cfg.task.data_dir is None and resolve_data_dir(cfg.task, cfg.data_root) == root / "SST-2"
    data = load_task(cfg.task, data_root=cfg.data_root)
    assert data.source == f"data_dir:{root / 'SST-2'}"  # what the run file's data.source records
    assert len(data.train) == 20 and len(data.evals["validation"]) == 8


def test_task_data_dir_wins_over_data_root(tmp_path):
    root = sst2_root(tmp_path / "root")
    own = tmp_path / "own"
    write_glue_tsv(own, n_train=12, n_eval=4)
    cfg = make_cfg("task=glue/sst2", f"data_root={root}", f"task.data_dir={own}")
    assert resolve_data_dir(cfg.task, cfg.data_root) == own
    assert load_task(cfg.task, data_root=cfg.data_root).source == f"data_dir:{own}"


def test_a_task_without_a_subfolder_never_reads_data_root(tmp_path):
    cfg = make_cfg("task=demo", f"data_root={tmp_path / 'absent'}", "task.generator_args.n_train=40",
                   "task.generator_args.n_eval=10")
    assert resolve_data_dir(cfg.task, cfg.data_root) is None
    assert load_task(cfg.task, data_root=cfg.data_root).source == "generator:sentiment"


def test_no_data_root_leaves_the_hub(tmp_path):
    cfg = make_cfg("task=glue/sst2")
    assert cfg.data_root is None and resolve_data_dir(cfg.task, cfg.data_root) is None


def test_tilde_in_data_root_expands(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    sst2_root(tmp_path / "glue")
    cfg = make_cfg("task=glue/sst2", "data_root='~/glue'")  # Hydra takes a leading ~ only quoted
    assert cfg.data_root == "~/glue"
    assert resolve_data_dir(cfg.task, cfg.data_root) == tmp_path / "glue" / "SST-2"
    assert load_task(cfg.task, data_root=cfg.data_root).source == f"data_dir:{tmp_path / 'glue' / 'SST-2'}"


def test_missing_subfolder_names_it_and_lists_the_ones_there(tmp_path):
    root = sst2_root(tmp_path, "RTE", "MRPC")
    (root / "notes.txt").write_text("")  # a file is not a task folder
    cfg = make_cfg("task=glue/qnli", f"data_root={root}")
    with pytest.raises(UserError) as info:
        load_task(cfg.task, data_root=cfg.data_root)
    message = str(info.value)
    assert f"no folder QNLI/ in data_root={root} (looked for {root / 'QNLI'})" in message
    assert "Folders there: MRPC/, RTE/, SST-2/." in message and "notes.txt" not in message
    assert "task.data_dir=<folder>" in message  # the fix for one task


def test_missing_data_root_folder(tmp_path):
    cfg = make_cfg("task=glue/rte", f"data_root={tmp_path / 'nope'}")
    with pytest.raises(UserError, match=re.escape(f"data_root={tmp_path / 'nope'}: no such folder. ") + ".*RTE/"):
        load_task(cfg.task, data_root=cfg.data_root)


def test_a_run_with_a_missing_subfolder_fails_before_training(tmp_path):
    from peftbench.run.runner import run

    root = sst2_root(tmp_path / "glue", "RTE")
    with pytest.raises(UserError, match="no folder MRPC/"):
        run(make_cfg(*TINY_MODEL, "task=glue/mrpc", f"data_root={root}"), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # a mistake found before training leaves no run folder


def test_data_folders_stay_out_of_the_run_dir_name(tmp_path):
    """Where the files live is not part of the experiment's name (the run file records it)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["task=glue/rte", f"data_root={tmp_path}", f"task.data_dir={tmp_path}",
                                           "train.lr=0.01"], return_hydra_config=True)
    assert cfg.hydra.job.override_dirname == "train.lr=0.01"


def test_a_task_with_only_a_subfolder_has_a_data_source_with_data_root(tmp_path):
    from peftbench.config import check_config
    from peftbench.methods import METHODS
    from peftbench.metrics import METRICS

    overrides = ["task=glue/rte", "task.dataset=null", *TINY_MODEL]

    def problems(*extra):
        cfg = make_cfg(*overrides, *extra)
        return [p for p in check_config(cfg, METHODS.get(cfg.method.name), METRICS.names())[1] if "data source" in p]

    assert problems() and not problems(f"data_root={tmp_path}")
