"""`peftbench report [DIR ...]`: paper-style tables from run files, one row per method (per model x
method when several models are present), one column per task metric (x 100, mean +- std over seeds).

Rules (README "Reports" documents them):
- a task's score is the mean of its official metrics (MRPC acc/F1, STS-B Pearson/Spearman, MNLI m/mm);
- `avg` is the mean of the task scores over every task in the report, only for rows that have them all;
- failed or unfinished runs are listed under the table with their error, never averaged in.

No torch import here: reporting thousands of run files must stay fast; matplotlib only for --plots.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from .errors import UserError, unknown_name
from .runfile import find_run_files
from .tables import FORMATS, RENDERERS, Cell, Column, Table

METRIC_LABELS = {"accuracy": "acc", "f1": "F1", "matthews_correlation": "MCC", "pearson": "Pearson",
                 "spearmanr": "Spearman"}
ROW_KEYS = ("model", "method")  # plus any `config.<dotted key>`, e.g. config.method.r


def load_runs(paths) -> tuple[list[dict], list[str]]:
    """(run records, problems): unreadable files are reported, not skipped silently."""
    runs, problems = [], []
    for path in find_run_files(expand(paths)):
        try:
            record = json.loads(path.read_text())
            record["_path"] = str(path)
            runs.append(record)
        except (OSError, json.JSONDecodeError) as exc:
            problems.append(f"{path}: unreadable ({exc})")
    return runs, problems


def expand(paths) -> list[str]:
    """Folders, run files or globs (`results/2026-11-*`); a path or glob that matches nothing is an error."""
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
    suffixes = (task.get("eval_splits") or {"validation": ""}).values()
    return [m + s for s in suffixes for m in task["metrics"]]


def task_score(run: dict) -> float:
    """GLUE: a task with several official metrics scores their unweighted mean."""
    return statistics.fmean(run["metrics"][m] for m in official_metrics(run) if m in run["metrics"])


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


def score_columns(runs: list[dict], main_only: bool) -> list[Column]:
    columns: dict[str, Column] = {}
    for r in sorted(runs, key=lambda r: (r["task"], r["_path"])):
        names = official_metrics(r)
        for m in [r["main_metric"]] if main_only else names:
            key = f"{r['task']}:{m}"
            columns.setdefault(key, Column(key, metric_header(r["task"], m, names), per_seed=True))
    return list(columns.values())


def cost_columns() -> dict[str, Column]:
    return {"params": Column("params", "# params", better="min"),
            "params_pct": Column("params_pct", "params %", decimals=2, better="min"),
            "memory": Column("memory", "peak mem (MB)", decimals=0, better="min"),
            "throughput": Column("throughput", "samples/s", decimals=1)}


def cost_cells(runs: list[dict]) -> dict[str, Cell]:
    counts = sorted({params(r)[0] for r in runs})
    pcts = sorted({params(r)[1] for r in runs})
    text = human_count(counts[0]) if len(counts) == 1 else f"{human_count(counts[0])}–{human_count(counts[-1])}"
    return {"params": Cell(counts[-1], text=text),
            "params_pct": Cell(pcts[-1], text=f"{pcts[0]:.2f}" if len(pcts) == 1 else f"{pcts[0]:.2f}–{pcts[-1]:.2f}"),
            "memory": Cell(statistics.fmean(peak_memory_mb(r) for r in runs)),
            "throughput": Cell(statistics.fmean(r["throughput"]["train_samples_per_s"] for r in runs)),
            "train_s": Cell(statistics.fmean(r["timing"]["train_s"] for r in runs))}


def score_cells(runs: list[dict], columns: list[Column], tasks: list[str], ci: bool) -> dict[str, Cell]:
    cells = {}
    for col in columns:
        task, metric = col.key.split(":")
        values = [100 * r["metrics"][metric] for r in runs if r["task"] == task and metric in r["metrics"]]
        if values:
            cells[col.key] = Cell(statistics.fmean(values), spread(values, ci), len(values))
    by_task = {t: [task_score(r) for r in runs if r["task"] == t] for t in tasks}
    if all(by_task.values()):
        cells["avg"] = Cell(100 * statistics.fmean(statistics.fmean(s) for s in by_task.values()))
    return cells


def mark_short(table: Table, expected: int | None) -> int:
    """Flag seed-aggregated cells with fewer runs than `expected` (default: the most any cell has)."""
    counts = [cells[c.key].n for _, cells in table.rows for c in table.columns if c.per_seed and c.key in cells]
    expected = expected or max(counts, default=1)
    for _, cells in table.rows:
        for c in table.columns:
            if c.per_seed and c.key in cells and cells[c.key].n < expected:
                cells[c.key].short = True
    return expected


def choose_columns(columns: list[Column], spec: str | None) -> list[Column]:
    """`--columns glue/rte,glue/mrpc:f1=MRPC F1,avg`: order, pick (a task picks all its metrics), rename."""
    if not spec:
        return columns
    chosen = []
    for item in (i.strip() for i in spec.split(",") if i.strip()):
        key, _, header = item.partition("=")
        matches = [c for c in columns if c.key == key or c.key.startswith(key + ":")]
        if not matches:
            tasks = {c.key.split(":")[0] for c in columns if ":" in c.key}
            raise unknown_name("column", key, {c.key for c in columns} | tasks,
                               hint="A task name picks all its metrics; rename with key=Header.")
        chosen += [Column(c.key, header, c.decimals, c.better, c.per_seed) if header else c for c in matches]
    return chosen


def scores_table(ok: list[dict], keys: list[str], args) -> Table:
    tasks = sorted({r["task"] for r in ok})
    score_cols = score_columns(ok, args.metrics == "main")
    for c in score_cols:
        c.decimals = args.decimals
    columns = [*score_cols, Column("avg", "avg", decimals=args.decimals), *cost_columns().values()]
    rows = [(key, score_cells(runs, score_cols, tasks, args.ci) | cost_cells(runs))
            for key, runs in group_rows(ok, keys).items()]
    table = Table(keys, choose_columns(columns, args.columns), rows)
    expected = mark_short(table, args.seeds)
    shown = {c.key for c in table.columns}
    notes = [f"Scores: metric × 100, mean ± {'95% CI' if args.ci else 'std'} over runs (seeds); n = runs."]
    if any(c.short for _, cells in rows for c in cells.values()):
        notes.append(f"† fewer than {expected} runs.")
    if "avg" in shown:
        lacking = " – where a row lacks a task." if any("avg" not in cells for _, cells in rows) else ""
        notes.append(f"avg: mean over the {len(tasks)} task{'s' * (len(tasks) > 1)} of each task's score (the mean of its official "
                     f"metrics, GLUE-style).{lacking}")
    if shown & {"params", "params_pct"}:
        notes.append("params: trainable parameters of the method (head excluded), % of the base model.")
    if shown & {"memory", "throughput"}:
        notes.append("peak mem: CUDA max allocated on GPU; on CPU peak RSS during training minus RSS before it; samples/s: training; "
                     "means over the row's runs.")
        notes += shared_process_note(ok)
    table.notes = notes
    return table


def cost_table(ok: list[dict], keys: list[str], baseline: str) -> Table:
    """Per row: trainable %, peak memory, samples/s, train time, each also as a ratio to `baseline`."""
    rows = {key: cost_cells(runs) for key, runs in group_rows(ok, keys).items()}
    base_at = keys.index("method") if "method" in keys else None
    ratios = (("memory", "mem"), ("throughput", "speed"), ("train_s", "time"))
    for key, cells in rows.items():
        base = rows.get(key[:base_at] + (baseline,) + key[base_at + 1:]) if base_at is not None else None
        for name, _ in ratios:
            if base:
                cells[f"{name}_ratio"] = Cell(cells[name].mean / base[name].mean)
    cols = cost_columns()
    columns = [Column("params_pct", "trainable %", decimals=2, better="min"), cols["memory"],
               Column("memory_ratio", f"mem ÷ {baseline}", decimals=2, better=""), cols["throughput"],
               Column("throughput_ratio", f"speed ÷ {baseline}", decimals=2, better=""),
               Column("train_s", "train time (s)", decimals=1, better="min"),
               Column("train_s_ratio", f"time ÷ {baseline}", decimals=2, better="")]
    notes = [f"Means over each row's runs; ratios divide by the `{baseline}` row of the same model.",
             *shared_process_note(ok)]
    if not any("memory_ratio" in cells for cells in rows.values()):
        notes.append(f"No `{baseline}` runs: ratios left out (--baseline picks another method).")
    return Table(keys, columns, list(rows.items()), notes)


def compare_table(a: list[dict], b: list[dict], keys: list[str], args) -> Table:
    """Per cell: mean of B minus mean of A, for every score column and avg; '–' where one side lacks it."""
    both = a + b
    tasks = sorted({r["task"] for r in both})
    columns = [*score_columns(both, args.metrics == "main"), Column("avg", "avg")]
    for c in columns:
        c.decimals, c.per_seed = args.decimals, False  # a difference of means: no spread, no run count
    rows_a, rows_b = group_rows(a, keys), group_rows(b, keys)
    rows = []
    for key in sorted(set(rows_a) | set(rows_b)):
        ca = score_cells(rows_a.get(key, []), columns[:-1], tasks, False)
        cb = score_cells(rows_b.get(key, []), columns[:-1], tasks, False)
        rows.append((key, {k: Cell(cb[k].mean - ca[k].mean) for k in ca.keys() & cb.keys()}))
    notes = [f"B − A in points (metric × 100, means over seeds). A: {args.compare[0]}; B: {args.compare[1]}.",
             "– where A or B has no run."]
    return Table(keys, choose_columns(columns, args.columns), rows, notes, signed=True, highlight=False)


def failed_lines(runs: list[dict]) -> list[str]:
    failed = [r for r in runs if r.get("status") != "ok"]
    if not failed:
        return []
    lines = [f"Failed or unfinished runs ({len(failed)}), not in the table:"]
    for r in sorted(failed, key=lambda r: r["_path"]):
        err = r.get("error") or {}
        message = (err.get("message") or "").strip().splitlines()
        lines.append(f"- {r.get('model')} / {r.get('method')} / {r.get('task')} seed {r.get('seed')}: "
                     f"{err.get('type', r.get('status'))}: {message[0] if message else ''} ({r['_path']})")
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="peftbench report", description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="*", help="folders (searched recursively), run files or globs (default: results)")
    p.add_argument("--format", "-f", default="md", help=f"one of {', '.join(FORMATS)} (default md)")
    p.add_argument("--output", "-o", help="write the table to this file instead of stdout")
    p.add_argument("--table", default="scores", help="scores (default) or cost: memory/speed/time vs --baseline")
    p.add_argument("--tasks", help="comma-separated task names or globs, e.g. 'glue/*'")
    p.add_argument("--methods", help="comma-separated method names or globs")
    p.add_argument("--models", help="comma-separated model names or globs")
    p.add_argument("--rows", help="row keys: model, method or config.<key> (default: method, or model,method "
                                  "when several models are present)")
    p.add_argument("--metrics", default="all", help="all (every official metric, default) or main (one per task)")
    p.add_argument("--columns", help="columns in order, optionally renamed: 'glue/rte,glue/mrpc:f1=MRPC F1,avg'")
    p.add_argument("--decimals", type=int, default=1, help="decimals of scores (default 1)")
    p.add_argument("--seeds", type=int, help="runs expected per cell; fewer are marked † (default: the most any "
                                             "cell has)")
    p.add_argument("--ci", action="store_true", help="95%% confidence interval (t) instead of std")
    p.add_argument("--baseline", default="full", help="method the cost table divides by (default full)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="table of B - A per cell for two result sets")
    p.add_argument("--plots", metavar="DIR", help="also save PNG+PDF plots (score vs params/memory, memory bars)")
    return p.parse_args(argv)


def check_choice(kind: str, value: str, choices) -> None:
    if value not in choices:
        raise unknown_name(kind, value, choices)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    check_choice("format", args.format, FORMATS)
    check_choice("table", args.table, ("scores", "cost"))
    check_choice("metrics", args.metrics, ("all", "main"))
    if args.compare and (args.paths or args.plots or args.table != "scores"):
        raise UserError("--compare A B takes the result sets itself and makes one table: leave out paths, "
                        "--plots and --table.")
    sets = [load_runs([p]) for p in args.compare] if args.compare else [load_runs(args.paths or ["results"])]
    problems = [line for _, probs in sets for line in probs]
    sets = [select(select(select(runs, "task", args.tasks), "method", args.methods), "model", args.models)
            for runs, _ in sets]
    runs = [r for s in sets for r in s]
    if not runs and not problems:
        raise UserError(f"no run files (run.json) under {', '.join(args.compare or args.paths or ['results'])}. "
                        "Make some with `peftbench run`.")
    ok = [r for r in runs if r.get("status") == "ok"]
    keys = [k.strip() for k in args.rows.split(",")] if args.rows else \
        ["model", "method"] if len({r["model"] for r in ok}) > 1 else ["method"]
    for k in keys:
        if k not in ROW_KEYS and not k.startswith("config."):
            raise unknown_name("row key", k, ROW_KEYS, hint="Or any config.<dotted key>, e.g. config.method.r.")
    listed = failed_lines(runs) + problems
    if not ok:
        print("\n\n".join(["No successful runs.", *(["\n".join(listed)] if listed else [])]))
        return 0
    if args.compare:
        ok_sets = [[r for r in s if r.get("status") == "ok"] for s in sets]
        table = compare_table(*ok_sets, keys, args)
    elif args.table == "cost":
        table = cost_table(ok, keys, args.baseline)
    else:
        table = scores_table(ok, keys, args)
    text = RENDERERS[args.format](table, [] if args.format == "csv" else listed)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(text, end="")
    if args.format == "csv" and listed:
        print("\n".join(listed), file=sys.stderr)
    if args.plots:
        from .plots import save_plots

        for path in save_plots(scores_table(ok, keys, args), ok, keys, args.plots):
            print(f"wrote {path}", file=sys.stderr)
    return 0
