"""The config schema: typed dataclasses registered in Hydra's ConfigStore, the config folder and its groups.

The configs ship inside the package (`peftbench/conf/`, found with importlib.resources), so a wheel or a
plain `pip install` runs from any folder. Hydra composes `conf/config.yaml` over `RunConfig`, so a
misspelt key or a wrong type in a group file or an override fails at compose time with the key's name.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import II, MISSING, OmegaConf


# A real folder: pip installs packages unzipped, and Hydra's file:// search path needs one.
CONF_DIR = Path(str(files("peftbench") / "conf"))
GROUPS = ("model", "method", "task", "hardware", "experiment")
# model.pooling: what a BERT classifier's classifier reads (peftbench/models/pooling.py says each)
POOLINGS = ("default", "pooler", "cls", "mean")


@dataclass
class ModelConfig:
    name: str = MISSING
    name_or_path: Optional[str] = None  # hub id, local folder, or "package:<pkg>/<subdir>"
    tokenizer: Optional[str] = None  # defaults to name_or_path
    family: Optional[str] = None  # bert | roberta | ...; null: the checkpoint's model_type
    max_length: int = 128
    quantization: Optional[str] = None  # 4bit | 8bit: bitsandbytes on load, peft's k-bit prep (models/quantization.py)
    # The architecture as config kwargs (model_type, hidden_size, ...). With name_or_path null the model
    # is built from it with random weights; `peftbench params` uses it to count without downloading.
    arch: Optional[Dict[str, Any]] = None
    # The classifier's input, the same for every method: default (as transformers builds it) | pooler (BERT's
    # pooler trained as part of the head) | cls | mean (peftbench/models/pooling.py)
    pooling: str = "default"


@dataclass
class TaskConfig:
    name: str = MISSING
    dataset: Optional[str] = None  # hub id, e.g. nyu-mll/glue
    subset: Optional[str] = None  # hub config name, e.g. sst2
    generator: Optional[str] = None  # a peftbench data generator (offline tasks)
    generator_args: Dict[str, Any] = field(default_factory=dict)
    data_dir: Optional[str] = None  # local files instead of the hub
    data_subdir: Optional[str] = None  # this task's folder inside `data_root` (GLUE's names: RTE, SST-2, ...)
    files: Dict[str, List[str]] = field(default_factory=dict)  # split -> file stems tried in data_dir
    tsv_columns: Optional[List[str]] = None  # column names for header-less TSV files
    column_aliases: Dict[str, str] = field(default_factory=dict)  # file column -> field name
    text_fields: List[str] = field(default_factory=list)  # classification: one field or a pair
    label_field: str = "label"
    label_names: Optional[List[str]] = None  # null: regression (one float output)
    train_split: str = "train"
    eval_splits: Optional[Dict[str, str]] = None  # split -> metric-name suffix; null: {validation: ""}
    metrics: List[str] = MISSING
    main_metric: str = MISSING
    score_metrics: Optional[List[str]] = None  # the metrics of the benchmark score (GLUE avg); null: all metrics
    max_train_samples: Optional[int] = None
    max_eval_samples: Optional[int] = None
    sample_seed: Optional[int] = None  # the seed of the max_*_samples subsets; null: the run's seed
    # Task kinds beyond classification (peftbench/config/kinds.py documents each field).
    kind: str = "classification"  # classification | generation | multiple_choice | seq2seq | image_ / audio_ / token_classification
    version: Optional[str] = None  # the task definition's version, recorded in every run file
    data_files: Dict[str, str] = field(default_factory=dict)  # split -> file (in data_dir, or a path)
    template: Optional[str] = None  # prompt, e.g. "Question: {question}\nAnswer:" ({column} placeholders)
    target_field: Optional[str] = None  # generation / seq2seq: the answer or summary column
    target_delimiter: str = " "  # put between the prompt and the answer (or each choice)
    choices_field: Optional[str] = None  # multiple choice: a column holding the list of choices
    choice_fields: Optional[List[str]] = None  # ... or one column per choice (PIQA: sol1, sol2)
    choices: Optional[List[str]] = None  # ... or the same choices for every example (BoolQ: no, yes)
    image_field: str = "image"  # image classification: the image column (file path, bytes or array)
    audio_field: str = "audio"  # audio classification: the audio column (.wav/.npy path, {array, sampling_rate})
    extract: Optional[str] = None  # generation: "number" compares the final number ("#### 42", else the last)
    stop: List[str] = field(default_factory=list)  # generation: cut the output at the first of these
    max_new_tokens: int = 32  # generation / seq2seq: greedy decoding stops after this many tokens


@dataclass
class HardwareConfig:
    name: str = MISSING
    device: str = "auto"  # auto | cpu | cuda
    mixed_precision: str = "no"  # no | fp16 | bf16 | auto (bf16 where the CPU or GPU has it: train/precision.py)
    busy_gpu: str = "record"  # record | refuse: memory other processes hold on the GPU at the start (train/measure.py)
    num_processes: int = 1  # > 1: peftbench starts this many processes on this node (DDP through accelerate)
    # torch's CPU threads per process: "auto" = the CPUs this process may use (affinity, SLURM_CPUS_PER_TASK)
    # divided among the runs started at once and their processes; or a number (run/threads.py)
    threads: Any = "auto"


@dataclass
class ISTConfig:
    """`train.ist`: IST-style layer-wise importance sampling (Yao et al. 2024; peftbench/train/layerwise.py)."""

    layers: int = 0  # method layers updated per step (0: off, every layer trains every step)
    every: int = 10  # optimizer steps between importance updates
    trials: int = 4  # importance update: random layer subsets whose adaptation is suppressed, one forward each
    decay: float = 0.9  # importance: exponential moving average of the loss increase each suppression causes
    seed: int = 0

    def problems(self) -> list[str]:
        out = [f"train.ist.{k}={getattr(self, k)}: must be >= {low}." for k, low in
               (("layers", 0), ("every", 1), ("trials", 1)) if getattr(self, k) < low]
        if not 0 <= self.decay < 1:
            out.append(f"train.ist.decay={self.decay}: must be in [0, 1).")
        return out


@dataclass
class TrainConfig:
    lr: float = II("method.default_lr")  # each method file recommends a learning rate; train.lr=... overrides it
    epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = 32
    eval_batch_size: int = 128
    grad_accum: int = 1
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    eval_every: Any = 0  # evaluate every N optimizer steps, or "epoch", as well as at the end (0: end only)
    log_every: int = 10
    metric_for_best: Optional[str] = None  # null: the task's main_metric
    report: str = "last"  # the run's metrics: its last evaluation, or "best" by metric_for_best (eval_history keeps all)
    init_from: Optional[str] = None  # start from another run's trained tensors: a run dir, or task:<name> (same model/method/seed)
    save_trainable: bool = True  # write the trained tensors (only those) to <run dir>/trainable.safetensors
    checkpoint_every: int = 200  # resumable checkpoint every N optimizer steps in <run dir>/checkpoints (0: never)
    keep_checkpoint: bool = False  # keep <run dir>/checkpoints/ after the run ends ok
    throughput_warmup_steps: int = 5  # optimizer steps left out of the throughput window (at most half the run; README.md, "Measurement")
    # Batches of examples of about the same length (mega-batches of group_megabatch batches sorted by length, batch
    # order shuffled, seeded): far less padding on real text (train/batches.py, LengthGroupedShuffle). Measured
    # (MiniLM + LoRA, real SST-2, glue_minilm's 5,000 examples, 1 epoch, seed 1, fp32, 1 thread, busy 2-core
    # CPU): real/padded tokens 0.34 -> 0.95, 4.0 -> 8.9 samples/s, dev accuracy 76.8 -> 77.1. Off by default
    # all the same: it changes which examples share a batch, so runs made without it (the committed glue_minilm
    # table) keep their batches and config hash; a protocol turns it on where its parity runs show equal scores.
    group_by_length: bool = False
    group_megabatch: int = 50  # group_by_length: batches per mega-batch sorted by length (HF Trainer's 50)
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, slower steps
    inference_cost: bool = False  # after training: latency at batch 1 and eval_batch_size, unmerged and merged (train/inference.py)
    inference_examples: int = 64  # eval examples the latency is timed on
    forgetting: bool = False  # causal LMs: general-text loss after training minus the base model's (train/forgetting.py)
    forgetting_text: Optional[str] = None  # a text file, one text per line; null: peftbench/train/general_text.txt
    log_with: Optional[str] = None  # tensorboard (offline, <run dir>/tracker/) | wandb | mlflow, comma-separated: train/trackers.py
    ist: ISTConfig = field(default_factory=ISTConfig)  # layer-wise importance sampling (off unless ist.layers > 0)


@dataclass
class MethodConfig:
    """Keys every method has; each method subclasses this with its own knobs."""

    name: str = MISSING
    default_lr: float = MISSING

    def problems(self) -> list[str]:
        """Value checks of the method's own knobs; each message names the key and the fix."""
        return []


@dataclass
class LaunchConfig:
    """How `peftbench run` starts and guards a run; none of it changes a result (run/job.py, run/lock.py)."""

    process: str = "auto"  # auto: each job of a multirun in a child process of its own | child: always | inline: in this process
    if_locked: str = "skip"  # another process runs the same run (its lock file): skip the job, or wait for it
    stale_lock_min: float = 10.0  # a lock from another host not refreshed for this long is taken over (same host: dead pid)


@dataclass
class RunConfig:
    """The run's own keys and their defaults, the one place they are written: `conf/config.yaml` holds only
    the defaults list (which model, method, task, hardware) and Hydra's settings (tests/config/test_defaults.py)."""

    model: ModelConfig = MISSING
    method: Any = MISSING  # checked against the method's own dataclass by check_config
    task: TaskConfig = MISSING
    # A folder laid out as GLUE distributes it (RTE/, MRPC/, CoLA/, STS-B/, SST-2/, QNLI/, QQP/, MNLI/): each task
    # reads <data_root>/<task.data_subdir>; task.data_dir still wins; tasks without data_subdir ignore it.
    data_root: Optional[str] = None
    hardware: HardwareConfig = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 42
    results_dir: str = "results"
    force: bool = False  # run even if an `ok` run file with the same resolved config exists (--force)
    # Tokenised splits are cached here (and in memory), keyed on data x tokenizer x max_length, so a sweep tokenises
    # each task once (<cache_dir>/tokenized/); PEFTBENCH_CACHE_DIR moves it, cache_dir=null keeps the in-process cache only.
    cache_dir: Optional[str] = "${oc.env:PEFTBENCH_CACHE_DIR,${results_dir}/cache}"
    # {task name: {dotted key: value}}: a protocol's per-task settings, e.g. {glue/rte: {train.epochs: 80}}, applied to
    # each job for its task except keys given on the command line (config/overrides.py, conf/experiment/glue_minilm.yaml)
    per_task: Dict[str, Any] = field(default_factory=dict)
    launch: LaunchConfig = field(default_factory=LaunchConfig)  # README.md, "Sweeps"


# The one list of keys that do not change a result: left out of the config hash (run/sweep.py) and, through
# `name_excluded_keys`, of run-folder names (conf/config.yaml's Hydra exclude_keys reads it).
VOLATILE = ("results_dir", "force", "train.checkpoint_every", "train.keep_checkpoint", "train.save_trainable",
            "cache_dir", "train.throughput_warmup_steps", "launch", "train.log_with")
# Keys that say where the data live on this machine: out of the readable folder name, but they change the
# result (another folder, other data), so a name without them gets a short hash of them (`name_tag`).
LOCATION_KEYS = ("data_root", "task.data_dir")
NAME_KEYS = ("model", "method", "task", "seed")  # a run folder's readable start: <model>_<method>_<task>_s<seed>


def name_excluded_keys() -> list[str]:
    """Override keys left out of a run folder's `_<overrides>` part: those already in its name, VOLATILE
    (a group such as `launch` as each of its keys, as the command line writes them) and LOCATION_KEYS."""
    groups = {"launch": LaunchConfig}
    volatile = [f"{key}.{f.name}" for key in VOLATILE if key in groups for f in dataclasses.fields(groups[key])]
    return [*NAME_KEYS, *(k for k in VOLATILE if k not in groups), *volatile, *LOCATION_KEYS]


def slug(text: str) -> str:
    """A string safe in a file name: glue/sst2 -> glue-sst2."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", str(text)).strip("-")


def name_tag(override_dirname: str, overrides=(), limit: int = 120) -> str:
    """The run-dir suffix for overrides beyond model/method/task/seed: '' or '_method.r=16,train.lr=0.001'.

    Whenever the readable part drops something that changes the result (a character made file-safe, the
    tail cut at `limit`, a data location from `overrides` such as task.data_dir), a short hash of
    everything it stands for is appended ('_task.data_dir-h3f2a9c1d'), so different configs never share
    a folder while the same command always finds its own."""
    import hashlib

    located = sorted(str(o).lstrip("+~") for o in overrides or ()
                     if str(o).lstrip("+~").split("=")[0] in LOCATION_KEYS)
    readable = override_dirname.replace("/", "-").replace(" ", "")
    if not override_dirname and not located:
        return ""
    if readable == override_dirname and not located and len(readable) < limit:
        return "_" + readable
    digest = hashlib.sha1("\n".join([override_dirname, *located]).encode()).hexdigest()[:8]
    named = ",".join(o.split("=")[0] for o in located)  # which location keys are in the hash
    tag = "_" + ",".join(t for t in (readable[:limit - 12 - len(named)], named) if t)
    return f"{tag}-h{digest}"


def register() -> None:
    """Register the schema and resolvers; idempotent. Call before Hydra composes."""
    ConfigStore.instance().store(name="run_schema", node=RunConfig)
    if not OmegaConf.has_resolver("slug"):
        OmegaConf.register_new_resolver("slug", slug)
    if not OmegaConf.has_resolver("name_tag"):
        OmegaConf.register_new_resolver("name_tag", name_tag)
    if not OmegaConf.has_resolver("name_excluded_keys"):
        OmegaConf.register_new_resolver("name_excluded_keys", name_excluded_keys)


register()


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The options of a config group, as written on the command line (glue/sst2)."""
    root = conf_dir / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))
