import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY, make_cfg
from peftbench.cli import main
from peftbench.errors import UserError
from peftbench.run.runner import run


def test_unknown_method_names_value_suggestion_and_choices(capsys):
    assert main(["run", "method=loraa"]) == 2
    err = capsys.readouterr().err
    assert "Unknown method 'loraa'. Did you mean 'lora'? Available: adalora, adamss, adapter_houlsby," in err
    assert ", lora, lst," in err


@pytest.mark.parametrize("arg,text", [
    ("task=glue/sst", "Unknown task 'glue/sst'. Did you mean 'glue/sst2'?"),
    ("task=glue", "'glue' is a folder: pick one, e.g. task=glue/cola"),
    ("model=bert-base", "model=hf model.name_or_path="),
    ("hardware=tpu", "Available: auto, cpu, gpu, multi_cpu, multi_gpu."),
    ("method=lora,bitfitt", "Unknown method 'bitfitt'"),
])
def test_unknown_group_options(capsys, arg, text):
    assert main(["run", arg]) == 2
    assert text in capsys.readouterr().err


def test_unknown_command(capsys):
    assert main(["rnu"]) == 2
    assert "Unknown command 'rnu'. Did you mean 'run'?" in capsys.readouterr().err


def test_all_bad_values_reported_at_once_and_no_run_file_written(tmp_path):
    cfg = make_cfg(*TINY, "method.r=0", "train.lr=-1", "train.warmup_ratio=1.5")
    with pytest.raises(UserError) as info:
        run(cfg, tmp_path)
    message = str(info.value)
    for text in ("3 problem(s)", "method.r=0", "train.lr=-1", "train.warmup_ratio=1.5"):
        assert text in message
    assert not (tmp_path / "run.json").exists()  # a mistake found before training leaves no run file


def test_unknown_method_knob_suggests_the_right_one(tmp_path):
    cfg = make_cfg(*TINY, "+method.alpah=4")
    with pytest.raises(UserError, match=r"method.alpah: not a knob of method 'lora'. Did you mean 'lora_alpha'\?"):
        run(cfg, tmp_path)


def test_cli_user_error_has_no_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "peftbench.cli", "run", *TINY, "method.r=0",
                          f"results_dir={tmp_path}"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "method.r=0: must be >= 1 (the rank" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_launcher_without_its_plugin_names_the_extra_to_install(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("hydra_plugins.") else real(name, *a))
    assert main(["run", "-m", "hydra/launcher=slurm", "model=tiny"]) == 2
    err = capsys.readouterr().err
    assert "hydra/launcher=slurm needs the Hydra plugin hydra-submitit-launcher" in err
    assert "pip install 'peftbench[cluster]'" in err


# Mistakes as a user makes them: the console entry point, exit status 2, one message, no traceback.
# (args, texts the message must hold); `{tmp}` is a fresh folder, `results_dir` is set there unless given.
MISTAKES = [
    (["train.lrr=0.1"], ["Unknown key 'lrr' in train. Did you mean 'lr'? Valid keys: batch_size,"]),
    (["metod=lora"], ["Unknown key 'metod'. Did you mean 'method'? Valid keys:", "per_task"]),
    (["method.lora_alpah=32"], ["Unknown key 'lora_alpah' in method. Did you mean 'lora_alpha'?",
                                "+method.<knob>=<value>"]),
    (["-m", "method=lora,bitfit", "task.text_feilds=[a]"], ["Unknown key 'text_feilds' in task. Did you mean "
                                                            "'text_fields'?"]),
    (["train.lr=abc"], ["train.lr='abc': expected a float."]),
    (["seed=abc"], ["seed='abc': expected an integer."]),
    (["train.batch_size=2.5"], ["train.batch_size=2.5: expected an integer."]),
    (["-m", "seed=1,abc"], ["seed='abc': expected an integer."]),
    (["train.max_steps=-5"], ["train.max_steps=-5: must be > 0, or -1 to train by epochs."]),
    (["model=hf", "model.name_or_path=/nonexistent"], ["model.name_or_path=/nonexistent: no such folder."]),
    (["-m", "hydra/launcher=slurm"], ["hydra/launcher=slurm needs the Hydra plugin hydra-submitit-launcher",
                                      "pip install 'peftbench[cluster]'"]),
    (["results_dir={tmp}/header_only/dev.tsv"], ["header_only/dev.tsv is a file, not a folder."]),
    (["results_dir=/proc/peftbench"], ["results_dir=/proc/peftbench: cannot write in /proc"]),
    (["task=glue/sst2", "task.data_dir={tmp}/header_only"], ["header_only/train.tsv: no rows"]),
    (["task=glue/sst2", "task.data_dir={tmp}/extra_column"], ["extra_column/dev.tsv: cannot be read as TSV",
                                                               "Expected 2 fields in line 3, saw 3"]),
    (["task=glue/sst2", "task.data_dir={tmp}/not_utf8"], ["not_utf8/dev.tsv: line 3, byte 0xff", "not UTF-8"]),
    (["model.max_length=512"], ["model.max_length=512: model 'tiny' reads at most 128 tokens",
                                "Set model.max_length=128 or less."]),
    (["--config-dir", "{tmp}/conf", "task=mine"], ["conf/task/mine.yaml: unknown task field 'text_feild'. Did you "
                                                   "mean 'text_fields'? Valid fields: name,"]),
    (["seed=1", "--config-dir", "{tmp}/conf", "task=mine"], ["conf/task/mine.yaml: unknown task field 'text_feild'"]),
    (["--config-dir", "{tmp}/conf", "task=mien"], ["Unknown task 'mien'. Did you mean 'mine'? Available:", "glue/cola"]),
    (["--config-dir", "{tmp}/nowhere", "task=mine"], ["--config-dir {tmp}/nowhere: no such folder."]),
    (["seed=-1"], ["seed=-1: must be in 0..4294967295 (2**32-1)."]),
    (["seed=4294967296"], ["seed=4294967296: must be in 0..4294967295"]),
    (["train.epochs=0", "train.max_steps=-1"], ["train.epochs=0.0 and train.max_steps=-1: set one of them > 0."]),
    (["+per_task={glue/sst22: {train.lr: 0.1}}"], ["per_task: Unknown task 'glue/sst22'. Did you mean 'glue/sst2'?"]),
    (["train.init_from=task:glue/mnlii"], ["train.init_from=task:glue/mnlii: Unknown task 'glue/mnlii'. Did you "
                                           "mean 'glue/mnli'?"]),
    (["method.target_modules=[query,vlaue]"], ["'vlaue' matches no layer of this bert model. Did you mean 'value'?",
                                               "Layer names lora can adapt here: classifier, dense, key"]),
    (["hardware=gpu"], ["hardware=gpu (hardware.device=cuda): torch", "sees no CUDA device here. Use hardware=cpu"]),
    (["hardware=multi_gpu"], ["hardware=multi_gpu (hardware.device=cuda): torch", "sees no CUDA device here."]),
]


@pytest.mark.parametrize("args,texts", MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_a_mistake_gets_one_message_and_status_2(tmp_path, args, texts):
    from peftbench.cli import is_installed

    if "hydra/launcher=slurm" in args and is_installed("hydra_plugins.hydra_submitit_launcher"):
        pytest.skip("the SLURM launcher plugin is installed here")
    if any(a.startswith("hardware=") and "gpu" in a for a in args) and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    rows = "sentence\tlabel\na fine film\t1\n"
    for folder, train, dev in [("header_only", "sentence\tlabel\n", rows),
                               ("extra_column", rows, rows + "a dull film\t0\tstray\n"),
                               ("not_utf8", rows, rows + "a d\xffll film\t0\n")]:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "train.tsv").write_text(train)
        (tmp_path / folder / "dev.tsv").write_bytes(dev.encode("latin-1"))
    write_task_file(tmp_path / "conf", "mine", "text_feild: [sentence]\n")
    texts = [t.replace("{tmp}", str(tmp_path)) for t in texts]
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if not any(a.startswith("results_dir=") for a in args):
        args.append(f"results_dir={tmp_path / 'results'}")
    out = subprocess.run([sys.executable, "-m", "peftbench.cli", "run", "model=tiny", "hardware=cpu", *args],
                         capture_output=True, text=True, timeout=300)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 2, out.stderr
    for text in texts:
        assert out.stderr.count(text) == 1, out.stderr  # one message per problem
    assert not (tmp_path / "results" / "runs").exists()  # no run folder, not even an empty runs/


def write_task_file(conf: Path, name: str, extra: str = "") -> Path:
    """conf/task/<name>.yaml for --config-dir: the demo task under another name, plus `extra` lines."""
    from peftbench.config import CONF_DIR

    path = conf / "task" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((CONF_DIR / "task" / "demo.yaml").read_text().replace("name: demo", f"name: {name}") + extra)
    return path


def test_config_dir_after_the_overrides_is_accepted(tmp_path):
    """Hydra's argparse refuses flags between overrides; `peftbench run` puts Hydra's flags first."""
    write_task_file(tmp_path / "conf", "mine")
    out = subprocess.run([sys.executable, "-m", "peftbench.cli", "run", "model=tiny", "--config-dir",
                          str(tmp_path / "conf"), "task=mine", "--cfg", "job", "seed=7"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "name: mine" in out.stdout and "seed: 7" in out.stdout


def test_sigterm_ends_a_run_with_one_line_and_status_143(tmp_path):
    """A real run of the console entry point, stopped by SIGTERM while it trains: the run file says
    `killed`, the terminal gets one line (no traceback), the exit status is 128 + 15."""
    proc = subprocess.Popen([sys.executable, "-m", "peftbench.cli", "run", "model=tiny", "hardware=cpu",
                             "train.max_steps=100000", "train.checkpoint_every=5", f"results_dir={tmp_path}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not list(tmp_path.glob("runs/*/checkpoints/step-*")):  # training has started
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err, err
    [line] = [x for x in err.splitlines() if x.startswith("peftbench:")]
    assert line.startswith("peftbench: killed  tiny_lora_demo_s42") and "stopped by SIGTERM" in line
    [path] = tmp_path.glob("runs/*/run.json")
    record = json.loads(path.read_text())
    assert record["status"] == "killed" and record["error"]["type"] == "Stopped"
    assert str(path) in line


def test_a_misspelt_target_module_is_named_before_the_data_loads(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="peftbench"), \
            pytest.raises(UserError, match=r"'vlaue' matches no layer of this bert model. Did you mean 'value'\?"):
        run(make_cfg(*TINY, "method.target_modules=[query,vlaue]"), tmp_path / "run")
    assert not any("task demo from" in r.getMessage() for r in caplog.records)  # no data loaded
    assert not (tmp_path / "run").exists()
