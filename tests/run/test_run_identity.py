"""Run identity (issue 12, points 4-6): the config hash sees the data files' contents; run-folder names
never collide for different configs; an ok run is never hidden from report and skip; a mistake found
before training leaves no run folder; run files and checkpoints follow the umask."""

import json
import os
import stat
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from conftest import TINY, TINY_MODEL, make_cfg
from peftbench import runfile
from peftbench.config import CONF_DIR, name_tag
from peftbench.errors import UserError
from peftbench.run import sweep
from peftbench.run.runner import run
from peftbench.tasks.synthetic import write_glue_tsv


def run_dir_name(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    return cfg.hydra.run.dir.rsplit("/", 1)[-1]


def test_folder_names_differ_whenever_the_readable_name_drops_something():
    a, b = run_dir_name("task.data_dir=/d/okdir"), run_dir_name("task.data_dir=/d/ok dir")
    assert a != b and a.startswith("minilm_lora_demo_s42_task.data_dir-h")
    assert run_dir_name("task.data_dir=/d/okdir") == a  # the same command finds its own folder again
    assert run_dir_name("data_root=/d/x") != run_dir_name("data_root=/d/y")
    # a readable name that keeps everything stays as it was
    assert run_dir_name("method.r=16", "train.lr=0.001") == "minilm_lora_demo_s42_method.r=16,train.lr=0.001"
    assert run_dir_name() == "minilm_lora_demo_s42"
    # characters made file-safe: '/' and ' ' would map these two onto one name
    assert name_tag("method.target_modules=[a/b]") != name_tag("method.target_modules=[a-b]")
    assert name_tag("x=a b") != name_tag("x=ab")
    long = ",".join(f"method.k{i}=1" for i in range(30))
    assert name_tag(long) != name_tag(long + "2") and len(name_tag(long)) <= 120


def glue_dir(tmp_path):
    folder = tmp_path / "SST-2"
    write_glue_tsv(folder, n_train=40, n_eval=16)
    return folder


def test_editing_a_data_file_changes_the_hash_touching_it_does_not(tmp_path):
    folder = glue_dir(tmp_path)
    cfg = make_cfg("task=glue/sst2", f"task.data_dir={folder}")
    before = sweep.config_hash(cfg)
    os.utime(folder / "train.tsv", (1, 1))  # touched (or copied without -p): same bytes, same run
    assert sweep.config_hash(cfg) == before
    text = (folder / "train.tsv").read_text()
    (folder / "train.tsv").write_text(text.replace("\t1\n", "\t0\n", 1))  # one label edited in place
    assert sweep.config_hash(cfg) != before
    (folder / "train.tsv").write_text(text)
    assert sweep.config_hash(cfg) == before
    # a generator task has no files: its config alone is its identity
    assert sweep.config_hash(make_cfg()) == sweep.config_hash(make_cfg())


def test_an_edited_data_file_is_not_done_and_the_run_file_records_the_files(tmp_path):
    folder = glue_dir(tmp_path)
    cfg = make_cfg(*TINY_MODEL, "task=glue/sst2", f"task.data_dir={folder}", f"results_dir={tmp_path / 'results'}")
    record = run(cfg, tmp_path / "results" / "runs" / "a")
    files = {f["split"]: f for f in record["data"]["files"]}
    assert set(files) == {"train", "validation"} and files["train"]["path"] == str(folder / "train.tsv")
    assert files["train"]["size"] == (folder / "train.tsv").stat().st_size and len(files["train"]["sha256"]) == 64
    assert sweep.find_ok_run(cfg.results_dir, sweep.config_hash(cfg)) is not None  # done
    (folder / "dev.tsv").write_text((folder / "dev.tsv").read_text() + "one more fine film\t1\n")
    assert sweep.find_ok_run(cfg.results_dir, sweep.config_hash(cfg)) is None  # edited data: run it again


def test_an_ok_run_of_another_config_is_moved_aside_where_report_and_skip_see_it(tmp_path):
    run_dir = tmp_path / "runs" / "same_name"
    first = run(make_cfg(*TINY, "train.max_steps=2"), run_dir)
    # a mistake found before training leaves the ok run where it is, untouched
    with pytest.raises(UserError, match="method.r=0"):
        run(make_cfg(*TINY, "method.r=0"), run_dir)
    assert runfile.read(run_dir / "run.json") == first
    second = run(make_cfg(*TINY, "train.max_steps=3"), run_dir)  # another config, same folder
    aside = tmp_path / "runs" / f"same_name.{first['config_hash'][:12]}"
    moved = runfile.read(aside / "run.json")
    assert moved["status"] == "ok" and moved["run_dir"] == str(aside) and (aside / "trainable.safetensors").is_file()
    assert runfile.read(run_dir / "run.json")["config_hash"] == second["config_hash"]
    assert sweep.find_ok_run(tmp_path, first["config_hash"]) == aside / "run.json"
    assert sweep.find_ok_run(tmp_path, second["config_hash"]) == run_dir / "run.json"
    assert not list(run_dir.glob("run.*.json"))  # no hidden run.<hash>.json any more


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "peftbench.cli", "run", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def test_a_mistake_before_training_leaves_no_run_folder(tmp_path):
    for mistake in ("method.r=0", f"task.data_dir={tmp_path / 'nowhere'}"):
        out = cli(*TINY, mistake, f"results_dir={tmp_path}")
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "method.r=0: must be >= 1" in cli(*TINY, "method.r=0", f"results_dir={tmp_path}").stderr
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_in_a_multirun_the_mistaken_job_leaves_no_folder_and_the_others_run(tmp_path):
    out = cli("-m", *TINY, "train.max_steps=2", "method.r=0,4", "launch.process=inline", f"results_dir={tmp_path}")
    assert out.returncode == 1, out.stderr  # a job failed; the sweep went on
    names = [p.name for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert len(names) == 1 and "method.r=4" in names[0], names
    summary = json.loads(next((tmp_path / "sweeps").glob("*/summary.json")).read_text())
    assert summary["counts"]["ok"] == 1 and summary["counts"]["failed"] == 1


def modes(folder):
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_run_files_and_checkpoints_follow_the_umask(tmp_path, mask, mode):
    from peftbench.tasks.tokenized import clear_memory

    clear_memory()  # tokenise again, into this test's cache_dir
    old = os.umask(mask)
    try:
        run(make_cfg(*TINY, "train.max_steps=4", "train.checkpoint_every=2", "train.keep_checkpoint=true",
                     f"cache_dir={tmp_path / 'cache'}"), tmp_path / "run")
        runfile.write_atomic(tmp_path / "ledger" / "x.json", {"a": 1})
    finally:
        os.umask(old)
    found = {**modes(tmp_path / "run"), **modes(tmp_path / "ledger"), **modes(tmp_path / "cache")}
    assert {"run.json", "trainable.safetensors"} <= set(found)
    checkpoint = {name.split("/", 2)[-1] for name in found if name.startswith("checkpoints/")}
    assert {"state.json", "state.safetensors", "trainable.safetensors", "rank-0.json", "rank-0.safetensors",
            "manifest.json"} <= checkpoint, found  # the checkpoint format: safetensors + JSON, no pickles
    assert any(name.endswith(".npz") for name in found)  # the tokenised cache
    assert {name: m for name, m in found.items() if m != mode} == {}


# A value for every key that must not change a run's identity (config/schema.py: VOLATILE, expanded).
VOLATILE_VALUES = {"results_dir": "elsewhere", "force": "true", "train.checkpoint_every": "7",
                   "train.keep_checkpoint": "true", "train.save_trainable": "false", "cache_dir": "/tmp/c",
                   "train.throughput_warmup_steps": "3", "train.log_with": "tensorboard", "launch.process": "inline",
                   "launch.if_locked": "wait", "launch.stale_lock_min": "3"}


def test_identity_excluded_keys_have_one_source():
    """Hydra's exclude_keys (run-folder names) is read from config/schema.py, where the hash's VOLATILE is."""
    from peftbench.config.schema import LOCATION_KEYS, NAME_KEYS, VOLATILE, name_excluded_keys

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    assert list(cfg.hydra.job.config.override_dirname.exclude_keys) == name_excluded_keys()
    volatile = [k for k in name_excluded_keys() if k not in (*NAME_KEYS, *LOCATION_KEYS)]
    assert set(volatile) == set(VOLATILE_VALUES)  # a key added to VOLATILE gets a value here
    assert {k.split(".")[0] if k.startswith("launch.") else k for k in volatile} == set(VOLATILE)


@pytest.mark.parametrize("key", sorted(VOLATILE_VALUES))
def test_a_volatile_key_changes_neither_the_hash_nor_the_folder_name(key):
    override = f"{key}={VOLATILE_VALUES[key]}"
    assert sweep.config_hash(make_cfg(*TINY, override)) == sweep.config_hash(make_cfg(*TINY))
    assert run_dir_name(override) == run_dir_name()
