"""`run(cfg, run_dir)`: one model x method x task x hardware run, start to run file.

A plain function (no Hydra inside), so tests and scripts call it with a composed config. A run file
is written when the run starts (`running`) and when it ends: `ok` with the results, `failed` with the
error (re-raised), or `killed` (SIGTERM, Ctrl-C, a SLURM requeue). A run that dies without a word
(SIGKILL, the OOM killer) stays `running`. Running it again in the same run dir resumes from the last
checkpoint. With `hardware.num_processes` > 1 it starts that many processes (run/launch.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .. import runfile
from . import launch, threads
from ..train.checkpoint import CHECKPOINTS
from ..config import apply_per_task, check_config, eval_splits, raise_problems
from ..errors import UserError
from ..methods.counting import build_counted, summarize_names
from .sweep import config_hash, find_init_run

log = logging.getLogger("peftbench")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_record(cfg: DictConfig, run_dir: Path) -> dict:
    """A run file with every schema key, filled in as the run goes."""
    from ..tasks import data_fingerprint

    record = dict.fromkeys(runfile.SCHEMA_KEYS)
    files = data_fingerprint(cfg.task, cfg.get("data_root"))
    record.update(schema_version=runfile.SCHEMA_VERSION, status="running", run_dir=str(run_dir),
                  model=cfg.model.name, method=cfg.method.name, task=cfg.task.name, seed=cfg.seed,
                  config=OmegaConf.to_container(cfg, resolve=True), config_hash=config_hash(cfg, files),
                  versions=runfile.versions(),
                  git=runfile.git_state(), host=runfile.host(), started_at=_now(), timing={},
                  data={"files": files})
    return record


class Stopped(BaseException):
    """SIGTERM arrived (`kill`, a scheduler stopping the job): end the run, saying so in the run file.
    `exit_status` is the shell's convention for a process ended by that signal (128 + 15)."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}; run the same command again to resume "
                         "from the last checkpoint")
        self.exit_status = 128 + signum


def reason(exc: BaseException) -> str:
    """An error's message, never empty: Ctrl-C's KeyboardInterrupt carries none."""
    if isinstance(exc, KeyboardInterrupt) and not str(exc):
        return "interrupted (Ctrl-C); run the same command again to resume from the last checkpoint"
    return str(exc) or type(exc).__name__


_TRAINED_IN_THIS_PROCESS = [0]  # runs that trained before this one in this Python process


def run(cfg: DictConfig, run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    if launch.needs_processes(cfg):
        if cfg.hardware.device == "cuda" and not _cuda_available():
            raise _no_cuda(cfg.hardware)  # once here, not once per process inside torch elastic's tracebacks
        return launch.run_processes(cfg, run_dir, process_entry)
    threads.apply(threads.resolve(cfg.hardware.get("threads", "auto"), cfg.hardware.num_processes))
    record = new_record(cfg, run_dir)
    _process_state(cfg.hardware)
    apply_per_task(cfg)  # a no-op after run.job applied it (it empties per_task); here for direct calls
    existed, previous, aside, training, spare = run_dir.exists(), None, None, [], None
    path = run_dir / runfile.FILE_NAME
    if _is_main_process():
        aside = _move_other_config_run(run_dir, record["config_hash"])
        path = record_path(run_dir)  # rerun/run.json while run.json holds an ok run
        previous = runfile.read(path)
        runfile.write_atomic(path, record)
        spare = runfile.reserve(path)  # room for the last run file, should the disk fill meanwhile
    started, write = time.perf_counter(), True
    try:
        with sigterm_raises():
            _execute(cfg, record, on_train=lambda: training.append(True))
        record["status"] = "ok"
    except BaseException as exc:  # Ctrl-C and SIGTERM too: the run file says how the run ended
        if isinstance(exc, UserError) and not training:  # a mistake in the command: no run file (README, "Run files")
            write = False
            if _is_main_process():
                if spare is not None:
                    spare.unlink(missing_ok=True)
                _undo_start(run_dir, path, existed, previous, aside)
        record["status"] = "failed" if isinstance(exc, Exception) else "killed"
        record["error"] = {"type": type(exc).__name__, "message": reason(exc), "traceback": traceback.format_exc()}
        raise
    finally:
        record["finished_at"] = _now()
        record["timing"]["total_s"] = round(time.perf_counter() - started, 3)
        if _is_main_process() and write:
            if record["status"] == "ok":  # a re-run that succeeded replaces the earlier ok run file
                path = run_dir / runfile.FILE_NAME
                shutil.rmtree(run_dir / runfile.RERUN_DIR, ignore_errors=True)
            if runfile.write_last(path, record, spare):
                log.info("run file: %s (%s)", path, record["status"])
            if record["status"] == "ok" and not cfg.train.keep_checkpoint:
                shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)
    return record


def record_path(run_dir: Path) -> Path:
    """Where a run in run_dir writes its record until it ends ok: run.json, or rerun/run.json when run.json
    already holds an ok run (a `--force` re-run), so that the ok result is not lost if the re-run fails."""
    path = run_dir / runfile.FILE_NAME
    return run_dir / runfile.RERUN_DIR / runfile.FILE_NAME if (runfile.read(path) or {}).get("status") == "ok" else path


def _undo_start(run_dir: Path, path: Path, existed: bool, previous: dict | None, aside: Path | None) -> None:
    """Put the run dir back as it was before this run started, the run having written its record to `path`
    (run.json, or rerun/run.json beside an ok run): the earlier record there (or the ok run moved aside,
    moved back), or no folder at all."""
    if aside is not None:
        (run_dir / runfile.FILE_NAME).unlink(missing_ok=True)
        for item in aside.iterdir():
            os.replace(item, run_dir / item.name)
        with contextlib.suppress(OSError):
            aside.rmdir()
        runfile.write_atomic(run_dir / runfile.FILE_NAME, {**runfile.read(run_dir / runfile.FILE_NAME),
                                                           "run_dir": str(run_dir)})
    elif not existed:
        shutil.rmtree(run_dir, ignore_errors=True)
    elif previous is not None:
        runfile.write_atomic(path, previous)
    else:
        path.unlink(missing_ok=True)
        if path.parent.name == runfile.RERUN_DIR:
            with contextlib.suppress(OSError):
                path.parent.rmdir()


def _move_other_config_run(run_dir: Path, key: str) -> Path | None:
    """A run dir that holds an ok run of another config (a group file changed since): move that run, with
    its files, to the sibling folder <name>.<its hash>, where report and skip still find it."""
    path = run_dir / runfile.FILE_NAME
    old = runfile.read(path)
    if old is None or old.get("status") != "ok" or old.get("config_hash") in (key, None):
        return None
    aside = run_dir.with_name(f"{run_dir.name}.{old['config_hash'][:12]}")
    aside.mkdir(parents=True, exist_ok=True)
    for item in run_dir.iterdir():  # Hydra's .hydra/ and run.log are this job's by now; the lock is ours
        if item.name not in (".hydra", "run.log", "run.lock") and not item.name.startswith("."):
            os.replace(item, aside / item.name)
    runfile.write_atomic(aside / runfile.FILE_NAME, {**old, "run_dir": str(aside)})
    log.warning("%s held an ok run of another config (hash %s): moved to %s", run_dir, old["config_hash"], aside)
    return aside


@contextlib.contextmanager
def sigterm_raises():
    """Turn SIGTERM into `Stopped` while the run goes on, unless someone else handles it (submitit does)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def stop(signum, frame):
        raise Stopped(signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def process_entry(config: dict, run_dir: str) -> None:
    """One of the `hardware.num_processes` processes that launch.run_processes starts (a fresh interpreter)."""
    if os.environ.get("RANK") == "0":
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(levelname)s] %(message)s", datefmt="%H:%M:%S")
    run(OmegaConf.create(config), run_dir)


def _process_state(hw):
    """accelerate's process state, made first with the device the run asks for: the first one made fixes
    the backend for the process, and one made without `cpu=True` on a machine without CUDA would make
    each process of a multi-process CPU run a lone process instead of a gloo group."""
    from accelerate import PartialState

    return PartialState(cpu=_on_cpu(hw))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _no_cuda(hw) -> UserError:
    import torch

    return UserError(f"hardware={hw.name} (hardware.device=cuda): torch {torch.__version__} sees no CUDA device here. "
                     "Use hardware=cpu or hardware=auto, or install a CUDA build of torch (README, GPU users).")


def _on_cpu(hw) -> bool:
    import torch

    return hw.device == "cpu" or (hw.device == "auto" and not torch.cuda.is_available())


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def throughput(result) -> dict:
    """The run file's `throughput`: the window after warm-up (README.md, "Measurement") and evaluation."""
    m = result.measured
    seconds = m["seconds"]

    def rate(n):
        return round(n / seconds, 3) if seconds else None

    # images have no tokens: no tokens/s rather than 0
    return {"train_samples_per_s": rate(m["samples"]),
            "train_tokens_per_s": rate(m["tokens"]) if m.get("padded_tokens") else None,
            "train_s_per_step": round(seconds / m["steps"], 6) if m["steps"] else None,
            "train_samples": result.samples, "train_tokens": result.tokens, "steps": result.steps,
            "window": {k: round(v, 6) if isinstance(v, float) else v for k, v in m.items()},
            # real / padded tokens of the window: how much of each step's matrix work was not padding
            "padding_efficiency": round(m["tokens"] / m["padded_tokens"], 4) if m.get("padded_tokens") else None,
            "eval_samples_per_s": round(result.eval_examples / result.eval_seconds, 3) if result.eval_seconds else None,
            "eval_s_per_eval": round(result.eval_seconds / result.eval_runs, 3) if result.eval_runs else None,
            "measured": "optimizer steps after the warm-up, evaluation and checkpoints excluded; "
                        "tokens exclude padding"}


def _execute(cfg: DictConfig, record: dict, on_train=lambda: None) -> None:
    """Check, load, build, train, measure; `on_train()` is called when training begins (before it, a
    UserError is a mistake in the command and leaves no run file)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from ..train.measure import PeakMemory, check_busy_gpu
    from ..methods import METHODS
    from ..metrics import METRICS
    from ..models import check_max_length, load_tokenizer
    from ..tasks import load_task
    from ..tasks.tokenized import tokenize
    from ..train import fit, make_loader

    _, problems = check_config(cfg, METHODS.get(cfg.method.name), METRICS.names())
    raise_problems(problems)
    from ..methods.peft_methods import check_targets_early

    check_targets_early(cfg)  # a misspelt method.target_modules name, before the data loads
    hw, t, task = cfg.hardware, cfg.train, cfg.task
    if task.kind != "image_classification":
        check_max_length(cfg.model)
    from accelerate.state import AcceleratorState

    # accelerate keeps one state per process and refuses another precision: a run of another precision earlier
    # in this process (a multirun over hardware.mixed_precision, a test session) would stop this one
    from ..train import precision, trackers

    mixed, mixed_why = precision.resolve(hw.mixed_precision, _on_cpu(hw))  # `auto`: what this hardware has
    if AcceleratorState._shared_state.get("_mixed_precision", mixed) != mixed:
        AcceleratorState._reset_state()
    accelerator = Accelerator(cpu=_on_cpu(hw), mixed_precision=mixed,
                              gradient_accumulation_steps=t.grad_accum,
                              **trackers.accelerator_kwargs(t.log_with, record["run_dir"]))
    if hw.device == "cuda" and accelerator.device.type != "cuda":
        raise _no_cuda(hw)
    if mixed != "no" and not accelerator.native_amp:  # accelerate would run fp32 without a word
        raise UserError(f"hardware.mixed_precision={mixed}: no autocast to it on {accelerator.device.type} "
                        "(fp16 needs a CUDA GPU). On CPU use hardware.mixed_precision=bf16 or no.")
    log.info("mixed precision: %s (%s)", mixed, mixed_why)
    busy = check_busy_gpu(accelerator.device, hw.busy_gpu)  # before this run allocates anything on the GPU
    set_seed(cfg.seed)

    data = load_task(task, seed=cfg.seed, data_root=cfg.data_root)
    record["data"] = {"source": data.source, "train_examples": len(data.train),
                      "eval_examples": {s: len(df) for s, df in data.evals.items()}, **record["data"]}
    log.info("task %s from %s: %d train, %s eval examples", task.name, data.source, len(data.train),
             record["data"]["eval_examples"])
    if task.kind == "classification":  # the other kinds load their tokenizer or image processor in kinds/
        tokenizer = load_tokenizer(cfg.model)
    model, _, record["params"] = build_counted(cfg, data.num_labels)
    family = record["params"]["family"]
    if t.init_from:
        from ..train.checkpoint import load_initial

        record["init_from"] = load_initial(model, find_init_run(cfg), record["params"]["head_modules"])
        log.info("started from %s (%d tensors; task head %s new)", record["init_from"]["run_dir"],
                 record["init_from"]["tensors"], ", ".join(record["init_from"]["skipped_head"]) or "none")
    if getattr(model, "peftbench_cannot_train", None):
        raise UserError(f"method {cfg.method.name} on model {cfg.model.name}: {model.peftbench_cannot_train}")
    if t.gradient_checkpointing:
        from ..train.grad_checkpointing import enable_gradient_checkpointing

        enable_gradient_checkpointing(model, cfg.method.name)
    p = record["params"]
    log.info("method %s on %s (%s): %s of %s parameters train (%.4f%%; method %s, head %s):\n  %s",
             cfg.method.name, cfg.model.name, family, f"{p['trainable']:,}", f"{p['base_total']:,}",
             p["trainable_pct"], f"{p['method']:,}", f"{p['head']:,}",
             "\n  ".join(summarize_names(p["trainable_names"])))

    began, cache = time.perf_counter(), {}

    def features(split, df):  # tokenised once per task x tokenizer x max_length (tasks/tokenized.py)
        out, cache[split] = tokenize(df, tokenizer, task.text_fields, cfg.model.max_length, cfg.cache_dir)
        return out

    suffixes = eval_splits(task)
    if task.kind != "classification":  # generation, multiple choice, seq2seq, images: peftbench/kinds
        from ..train.kinds import make_loaders

        train_loader, eval_loaders, cache = make_loaders(cfg, data)
    else:
        train_loader = make_loader(features(task.train_split, data.train), tokenizer, t.batch_size, shuffle=True,
                                   seed=cfg.seed, group_megabatch=t.group_megabatch if t.group_by_length else 0)
        eval_loaders = {s: (make_loader(features(s, df), tokenizer, t.eval_batch_size, False, cfg.seed),
                            suffixes[s]) for s, df in data.evals.items()}
    record["data"]["tokenized"] = {"seconds": round(time.perf_counter() - began, 3), "cache": cache}
    main_key = task.main_metric + next(iter(suffixes.values()))  # the first eval split's main metric
    best_metric = t.metric_for_best or main_key

    forgetting = None
    if t.forgetting:  # general-text loss of the base model, before training (train/forgetting.py)
        from ..train.forgetting import Forgetting

        forgetting = Forgetting(cfg, accelerator)
        forgetting.before(model)
    on_train()
    runs_before = _TRAINED_IN_THIS_PROCESS[0]
    tracker = trackers.start(accelerator, record["config"], t.log_with)
    try:
        with PeakMemory(accelerator.device) as memory:
            result = fit(model, train_loader, eval_loaders, cfg, accelerator, best_metric,
                         run_dir=record["run_dir"], config_hash=record["config_hash"], memory=memory)
    finally:
        _TRAINED_IN_THIS_PROCESS[0] += 1
        if tracker:
            accelerator.end_training()
    setup = {"device": str(accelerator.device), "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
             "mixed_precision": mixed, "mixed_precision_setting": hw.mixed_precision, "mixed_precision_why": mixed_why,
             "group_by_length": t.group_by_length, "gradient_checkpointing": t.gradient_checkpointing,
             "batch_size": t.batch_size, "grad_accum": t.grad_accum,
             "max_length": cfg.model.max_length, "num_processes": accelerator.num_processes,
             "threads": torch.get_num_threads(),  # torch's CPU threads per process (hardware.threads)
             "threads_why": threads.reason()}
    reported = result.best["metrics"] if t.report == "best" else result.metrics  # train.report: best or last
    record.update(resumed_from=result.resumed_from,
        metrics=reported, main_metric=main_key, main_score=reported[main_key],
        best=result.best, eval_history=result.eval_history, loss_history=result.loss_history,
        memory={**memory.result(), **busy, **setup, "measured": "peak during training, evaluation and checkpoints excluded",
                # > 0: RSS figures include memory the allocator kept from earlier runs (a basic-launcher multirun)
                "runs_before_in_process": runs_before},
        throughput={**throughput(result), **setup},
    )
    record["timing"].update(train_s=round(result.train_seconds, 3), eval_s=round(result.eval_seconds, 3))
    if forgetting is not None:
        forgetting.after(model)
        record["forgetting"] = forgetting.record()
    if t.save_trainable and _is_main_process():
        from ..train.checkpoint import save_trainable

        if getattr(model, "peftbench_fold", None):  # e.g. prefix tuning's MLP: trained, then folded away
            model.peftbench_fold(model)
        path = save_trainable(model, Path(record["run_dir"]) / "trainable.safetensors")
        record["artifacts"] = {"trainable_weights": path.name, "trainable_weights_bytes": path.stat().st_size}
    if tracker:
        record["artifacts"] = {**(record["artifacts"] or {}), "tracker": tracker}
    if t.inference_cost:  # last: it merges the adapter into the model in place
        from ..train.inference import measure_inference

        first = next(iter(eval_loaders.values()))[0]
        record["inference"] = measure_inference(model, first, cfg, accelerator)
