"""Run files as the report sees them: loaded (unreadable ones listed, never fatal), filtered, grouped
into rows, and the fields a table reads from each (task score, parameters, peak memory)."""

from __future__ import annotations

import fnmatch
import glob
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

from ..errors import UserError, unknown_name
from ..runfile import SCHEMA_VERSION, find_run_files

METRIC_LABELS = {"accuracy": "acc", "f1": "F1", "matthews_correlation": "MCC", "pearson": "Pearson",
                 "spearmanr": "Spearman"}
ROW_KEYS = ("model", "method")  # plus any `config.<dotted key>`, e.g. config.method.r
AGGREGATES = {"mean": statistics.fmean, "median": statistics.median}  # --aggregate: a score cell over its runs


def load_runs(paths) -> tuple[list[dict], list[str]]:
    """(run records, problems): unreadable files are reported, not skipped silently."""
    runs, problems = [], []
    for path in find_run_files(expand(paths)):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: unreadable ({exc})")
            continue
        reason = not_a_run_record(record)
        if reason:
            problems.append(f"{path}: unreadable ({reason})")
            continue
        record["_path"] = str(path)
        runs.append(record)
    return runs, problems


def not_a_run_record(record) -> str:
    """Why a JSON document is not a run file the report can read ("" when it is one)."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not a run file's object"
    if record.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        return f"schema_version {record['schema_version']!r}; this peftbench reads {SCHEMA_VERSION}"
    missing = [k for k in ("status", "model", "method", "task") if k not in record]
    if missing:
        return f"not a run file: no {', '.join(missing)}"
    if record["status"] == "ok":
        metrics = record.get("metrics")
        if not isinstance(metrics, dict) or not metrics or record.get("main_metric") not in metrics:
            return "status ok but no metrics (or no main_metric among them)"
        if not all(isinstance(v, (int, float)) for v in metrics.values()):
            return "status ok but a metric is not a number"
    return ""


def expand(paths) -> list[str]:
    """Folders, run files or globs (`results/runs/roberta-base_*`); a path or glob that matches nothing is an error."""
    out, missing = [], []
    for p in map(str, paths):
        matches = sorted(glob.glob(p, recursive=True)) if glob.has_magic(p) else [p] if Path(p).exists() else []
        out += matches
        missing += [] if matches else [p]
    if missing:
        raise UserError(f"no such file or folder: {', '.join(missing)}.")
    return out


def select(runs: list[dict], field: str, patterns: str | None) -> list[dict]:
    """Keep runs whose `field` matches one of the comma-separated names or globs; each must match."""
    if not patterns:
        return runs
    available = sorted({str(r.get(field)) for r in runs})
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    for p in wanted:
        if not fnmatch.filter(available, p):
            raise unknown_name(field, p, available, hint=f"Names or globs, comma-separated: --{field}s 'glue/*'.")
    return [r for r in runs if any(fnmatch.fnmatchcase(str(r.get(field)), p) for p in wanted)]


def where(runs: list[dict], conditions: str | None) -> list[dict]:
    """Keep runs whose config values match every `config.<key>=<value or glob>` (comma-separated); a key no
    run has, or a value none of them has, is an error that lists what the runs hold."""
    for condition in [c.strip() for c in (conditions or "").split(",") if c.strip()]:
        key, sep, pattern = condition.partition("=")
        key = key.strip() if key.strip().startswith("config.") else f"config.{key.strip()}"
        if not sep:
            raise UserError(f"--where {condition!r}: write KEY=VALUE, e.g. --where model.pooling=cls.")
        available = sorted({str(row_value(r, key)) for r in runs})
        if not fnmatch.filter(available, pattern.strip()):
            raise unknown_name(f"value of {key}", pattern.strip(), available,
                               hint="Values or globs: --where 'train.lr=1e-*'. (None: the runs lack the key.)")
        runs = [r for r in runs if fnmatch.fnmatchcase(str(row_value(r, key)), pattern.strip())]
    return runs


def row_value(run: dict, key: str):
    if not key.startswith("config."):
        return run.get(key)
    value = run.get("config") or {}
    for part in key.split(".")[1:]:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def official_metrics(run: dict) -> list[str]:
    """The task's metrics in config order, each per eval split (MNLI: accuracy, accuracy_mm)."""
    task = (run.get("config") or {}).get("task") or {}
    if not task.get("metrics"):
        return list(run.get("metrics") or {})  # a run file without its config: what it recorded
    return per_split(task, task["metrics"])


def per_split(task: dict, metrics: list[str]) -> list[str]:
    """Each metric once per eval split, with the split's suffix (MNLI: accuracy, accuracy_mm)."""
    suffixes = (task.get("eval_splits") or {"validation": ""}).values()
    return [m + s for s in suffixes for m in metrics]


# Run files made before `task.score_metrics` existed (peftbench 0.1.0 before 2026-11-25) listed CoLA's
# accuracy beside its Matthews correlation; GLUE scores CoLA by the correlation alone.
SCORE_METRICS_BEFORE_THE_FIELD = {"glue/cola": ["matthews_correlation"]}


def score_metrics(run: dict) -> list[str]:
    """The metrics of the task's benchmark score: `task.score_metrics` (each per eval split), else all."""
    task = (run.get("config") or {}).get("task") or {}
    declared = task.get("score_metrics") if "score_metrics" in task else SCORE_METRICS_BEFORE_THE_FIELD.get(run["task"])
    return per_split(task, declared) if declared else official_metrics(run)


def task_score(run: dict) -> float:
    """GLUE: a task with several official metrics (MRPC accuracy and F1) scores their unweighted mean."""
    return statistics.fmean(run["metrics"][m] for m in score_metrics(run) if m in run["metrics"])


def metric_header(task: str, metric: str, names: list[str]) -> str:
    split = "-mm" if metric.endswith("_mm") else "-m" if any(n.endswith("_mm") for n in names) else ""
    base = metric.removesuffix("_mm")
    return f"{task} {METRIC_LABELS.get(base, base)}{split}"


def params(run: dict) -> tuple[int, float]:
    """Trainable parameters of the method itself (head excluded) and their % of the base model;
    older run files only have the whole trainable count."""
    p = run.get("params") or {}
    if "method" in p and "method_pct" in p:
        return p["method"], p["method_pct"]
    return p["trainable"], p["trainable_pct"]


def peak_memory_mb(run: dict) -> float:
    """CUDA max allocated on GPU runs; on CPU what training added to the process's RSS (peak during
    training minus RSS before it), since the ~0.5 GB of imported libraries and loaded data would
    otherwise dominate every method alike. Run files without `rss_before_train_mb`: the peak RSS."""
    mem = run.get("memory") or {}
    if mem.get("cuda_max_allocated_mb") is not None:
        return mem["cuda_max_allocated_mb"]
    if mem.get("rss_before_train_mb") is not None:
        return mem["peak_rss_mb"] - mem["rss_before_train_mb"]
    return mem["peak_rss_mb"]


def shared_process_note(ok: list[dict]) -> list[str]:
    """CPU runs that trained after other runs in the same process (a multirun with Hydra's basic
    launcher): the allocator keeps memory from the earlier runs, so their RSS figures understate."""
    shared = [r for r in ok if (r.get("memory") or {}).get("cuda_max_allocated_mb") is None
              and (r.get("memory") or {}).get("runs_before_in_process")]
    if not shared:
        return []
    return [f"{len(shared)} CPU run{'s' * (len(shared) > 1)} trained after other runs in the same process: "
            "their memory figures include what earlier runs left allocated and are not comparable; "
            "for memory, run one process per run (separate commands, hydra/launcher=local or slurm)."]


def human_count(n: float) -> str:
    """74498 -> 74.5K, 294912 -> 294.9K, 1.2e8 -> 120.0M."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(int(n))


def spread(values: list[float], ci: bool) -> float | None:
    """Sample std, or the half-width of a 95% t confidence interval; None for a single run."""
    if len(values) < 2:
        return None
    std = statistics.stdev(values)
    if not ci:
        return std
    from scipy.stats import t

    return float(t.ppf(0.975, len(values) - 1)) * std / math.sqrt(len(values))


def group_rows(runs: list[dict], keys: list[str]) -> dict[tuple, list[dict]]:
    rows: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        rows[tuple(str(row_value(r, k)) for k in keys)].append(r)
    return dict(sorted(rows.items()))


BUSY_GPU_MB = 512  # hardware.busy_gpu=refuse's threshold: more held by other processes is not "alone"


def measured_alone(run: dict) -> bool:
    """Whether a run's memory and speed describe the method rather than its neighbours: the first run in
    its process (`memory.runs_before_in_process` 0) and, on a GPU, under BUSY_GPU_MB held by other
    processes when it started (`memory.cuda_in_use_by_others_mb`). Run files that do not record these
    (older ones) are not taken as alone."""
    mem = run.get("memory") or {}
    if mem.get("runs_before_in_process") != 0:
        return False
    if mem.get("cuda_max_allocated_mb") is None:
        return True
    others = mem.get("cuda_in_use_by_others_mb")
    return others is not None and others < BUSY_GPU_MB


def alone_note(ok: list[dict]) -> str:
    """Why the memory and speed figures leave runs out ("" when none are left out)."""
    left = sum(not measured_alone(r) for r in ok)
    if not left:
        return ""
    return (f"Memory and samples/s: only where every run of a row was measured alone ({len(ok) - left} of {len(ok)} "
            f"runs were): the first run in its process and, on a GPU, with under {BUSY_GPU_MB} MB held by other "
            f"processes; the other {left} shared a process or a GPU (or their run files do not say), so their "
            "figures describe the neighbours too.")
