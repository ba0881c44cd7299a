"""The report's tables, built from ok run files: scores (a column per task metric, GLUE-style avg,
params, memory, speed), cost (vs a baseline method) and compare (B - A); rendered by `tables`."""

from __future__ import annotations

import statistics

from ..errors import unknown_name
from .runs import (AGGREGATES, group_rows, human_count, metric_header, official_metrics, params,
                   peak_memory_mb, score_metrics, shared_process_note, spread, task_score)
from .tables import Cell, Column, Table


METRIC_CHOICES = ("score", "all", "main")  # --metrics: the task's score metrics (default), all it records, its main one


def score_columns(runs: list[dict], which: str) -> list[Column]:
    """Columns per task metric: `which` is one of METRIC_CHOICES (score: CoLA's MCC without its accuracy)."""
    columns: dict[str, Column] = {}
    for r in sorted(runs, key=lambda r: (r["task"], r["_path"])):
        names = official_metrics(r)
        shown = {"main": [r["main_metric"]], "score": score_metrics(r), "all": names}[which]
        for m in shown:
            key = f"{r['task']}:{m}"
            columns.setdefault(key, Column(key, metric_header(r["task"], m, names), per_seed=True))
    return list(columns.values())


def cost_columns() -> dict[str, Column]:
    return {"params": Column("params", "# params", better="min"),
            "params_pct": Column("params_pct", "params %", decimals=2, better="min"),
            "memory": Column("memory", "peak mem (MB)", decimals=0, better="min"),
            "throughput": Column("throughput", "samples/s", decimals=1)}


def value_range(values: list, show) -> str:
    """'lo–hi' of sorted values as shown, or one value when both ends look the same (a regression task's
    1-output head makes the base model a few parameters smaller: 1.0398 and 1.0399 both show as 1.04)."""
    lo, hi = show(values[0]), show(values[-1])
    return lo if lo == hi else f"{lo}–{hi}"


def cost_cells(runs: list[dict]) -> dict[str, Cell]:
    counts = sorted({params(r)[0] for r in runs})
    pcts = sorted({params(r)[1] for r in runs})
    return {"params": Cell(counts[-1], text=value_range(counts, human_count)),
            "params_pct": Cell(pcts[-1], text=value_range(pcts, lambda v: f"{v:.2f}")),
            "memory": Cell(statistics.fmean(peak_memory_mb(r) for r in runs)),
            "throughput": Cell(statistics.fmean(r["throughput"]["train_samples_per_s"] for r in runs)),
            "train_s": Cell(statistics.fmean(r["timing"]["train_s"] for r in runs))}


# `inference` figures of a run file (train.inference_cost), ms per example: (key, run-file field, batch, header)
INFERENCE_COLUMNS = (("infer_b1", "unmerged_ms_per_example", "batch_1", "ms/ex b=1"),
                     ("infer_b1_merged", "merged_ms_per_example", "batch_1", "merged b=1"),
                     ("infer_eval", "unmerged_ms_per_example", "eval_batch", "ms/ex eval batch"),
                     ("infer_eval_merged", "merged_ms_per_example", "eval_batch", "merged eval batch"))


def optional_cost_cells(runs: list[dict]) -> dict[str, Cell]:
    """Figures only some runs measure, each the mean over the runs that have it: latency per
    INFERENCE_COLUMNS and, with it, the trained tensors' file size (MB); forgetting (train.forgetting)."""
    cells = {}
    forgetting = [r["forgetting"]["forgetting"] for r in runs if (r.get("forgetting") or {}).get("forgetting") is not None]
    for key, field, batch, _ in INFERENCE_COLUMNS:
        values = [(r.get("inference") or {}).get(field) or {} for r in runs]
        values = [v[batch] for v in values if v.get(batch) is not None]
        if values:
            cells[key] = Cell(statistics.fmean(values))
    sizes = [(r.get("artifacts") or {}).get("trainable_weights_bytes") for r in runs]
    sizes = [s for s in sizes if s is not None]
    if sizes and cells:
        cells["adapter_mb"] = Cell(statistics.fmean(sizes) / 2 ** 20)
    if forgetting:
        cells["forgetting"] = Cell(statistics.fmean(forgetting))
    padding = [(r.get("throughput") or {}).get("padding_efficiency") for r in runs]
    padding = [p for p in padding if p is not None]
    if padding:
        cells["padding"] = Cell(statistics.fmean(padding))
    return cells


def precision_note(ok: list[dict]) -> list[str]:
    """Which precision the cost figures were measured in, when some run did not train in plain fp32."""
    kinds = sorted({((r.get("memory") or {}).get("dtype") or "float32",
                     (r.get("memory") or {}).get("mixed_precision") or "no",
                     (r.get("memory") or {}).get("mixed_precision_why") or "") for r in ok})
    if all(k[:2] == ("float32", "no") and not k[2].startswith("auto") for k in kinds):
        return []
    return ["Precision of the figures (weights, mixed precision): " + "; ".join(
        f"{d}, {mp}" + (f" ({why})" if why.startswith("auto") else "") for d, mp, why in kinds) + "."]


def score_cells(runs: list[dict], columns: list[Column], tasks: list[str], ci: bool, how: str) -> dict[str, Cell]:
    """Per metric column the mean or median (`how`) over the runs, ± their std (or CI); avg: the mean over
    `tasks` of each task's score, itself the `how` over the runs of each run's task score."""
    aggregate, cells = AGGREGATES[how], {}
    for col in columns:
        task, metric = col.key.split(":")
        values = [100 * r["metrics"][metric] for r in runs if r["task"] == task and metric in r["metrics"]]
        if values:
            cells[col.key] = Cell(aggregate(values), spread(values, ci), len(values))
    by_task = {t: [task_score(r) for r in runs if r["task"] == t] for t in tasks}
    if all(by_task.values()):
        cells["avg"] = Cell(100 * statistics.fmean(aggregate(s) for s in by_task.values()))
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
    score_cols = score_columns(ok, args.metrics)
    for c in score_cols:
        c.decimals = args.decimals
    columns = [*score_cols, Column("avg", "avg", decimals=args.decimals), *cost_columns().values()]
    rows = [(key, score_cells(runs, score_cols, tasks, args.ci, args.aggregate) | cost_cells(runs))
            for key, runs in group_rows(ok, keys).items()]
    table = Table(keys, choose_columns(columns, args.columns), rows)
    table.notes = score_notes(table, mark_short(table, args.seeds), tasks, args) + cost_column_notes(table, ok)
    return table


def score_notes(table: Table, expected: int, tasks: list[str], args) -> list[str]:
    """How the score cells and avg were made: aggregate and spread, runs expected, the avg's recipe."""
    median = args.aggregate == "median"
    shown_spread = ("95% CI of the mean" if median else "95% CI") if args.ci else "std"
    notes = [f"Scores: metric × 100, {args.aggregate} ± {shown_spread} over runs (seeds); n = runs."]
    if any(c.short for _, cells in table.rows for c in cells.values()):
        notes.append(f"† fewer than {expected} runs.")
    if "avg" in {c.key for c in table.columns}:
        lacking = " – where a row lacks a task." if any("avg" not in cells for _, cells in table.rows) else ""
        recipe = "the median over runs of each run's mean of its official metrics" if median else \
            "the mean of its official metrics"
        notes.append(f"avg: mean over the {len(tasks)} task{'s' * (len(tasks) > 1)} of each task's score ({recipe}, "
                     f"GLUE-style).{lacking}")
    return notes


def cost_column_notes(table: Table, ok: list[dict]) -> list[str]:
    shown, notes = {c.key for c in table.columns}, []
    if shown & {"params", "params_pct"}:
        notes.append("params: trainable parameters of the method (head excluded), % of the base model.")
    if shown & {"memory", "throughput"}:
        notes.append("peak mem: CUDA max allocated on GPU; on CPU peak RSS during training minus RSS before it; samples/s: training; "
                     "means over the row's runs.")
        notes += shared_process_note(ok)
    return notes


def cost_table(ok: list[dict], keys: list[str], baseline: str) -> Table:
    """Per row: trainable %, peak memory, samples/s, train time, each also as a ratio to `baseline`."""
    rows = {key: cost_cells(runs) | optional_cost_cells(runs) for key, runs in group_rows(ok, keys).items()}
    base_at = keys.index("method") if "method" in keys else None
    ratios = (("memory", "mem"), ("throughput", "speed"), ("train_s", "time"))
    for key, cells in rows.items():
        base = rows.get(key[:base_at] + (baseline,) + key[base_at + 1:]) if base_at is not None else None
        for name, _ in ratios:
            if base and base[name].value:  # a baseline measured at 0 (a tiny model's memory): no ratio, not a crash
                cells[f"{name}_ratio"] = Cell(cells[name].value / base[name].value)
    cols = cost_columns()
    columns = [Column("params_pct", "trainable %", decimals=2, better="min"), cols["memory"],
               Column("memory_ratio", f"mem ÷ {baseline}", decimals=2, better=""), cols["throughput"],
               Column("throughput_ratio", f"speed ÷ {baseline}", decimals=2, better=""),
               Column("train_s", "train time (s)", decimals=1, better="min"),
               Column("train_s_ratio", f"time ÷ {baseline}", decimals=2, better="")]
    present = {k for _, cells in rows.items() for k in cells}
    columns += [Column(key, header, decimals=2, better="min") for key, _, _, header in INFERENCE_COLUMNS
                if key in present]
    if "adapter_mb" in present:
        columns.append(Column("adapter_mb", "adapter MB", decimals=2, better="min"))
    if "forgetting" in present:
        columns.append(Column("forgetting", "forgetting", decimals=3, better="min"))
    if "padding" in present:
        columns.append(Column("padding", "real/padded tokens", decimals=2, better="max"))
    notes = [f"Means over each row's runs; ratios divide by the `{baseline}` row of the same model.",
             *shared_process_note(ok), *precision_note(ok)]
    if present & {key for key, *_ in INFERENCE_COLUMNS}:
        notes.append("ms/ex: inference latency per example (forward pass) at batch 1 and at the eval batch size, "
                     "adapter unmerged and merged into the weights (train.inference_cost; – where the method "
                     "does not merge); adapter MB: the trained tensors' file.")
    if "forgetting" in present:
        notes.append("forgetting: mean per-token cross-entropy on general text after training minus the base "
                     "model's (train.forgetting, causal LMs; peft's method comparison); lower is better.")
    if "padding" in present:
        notes.append("real/padded tokens: non-padding tokens ÷ tokens of the padded batches in the timed window "
                     f"(batches length-grouped in {_grouped(ok)} of {len(ok)} runs: train.group_by_length).")
    if not any("memory_ratio" in cells for cells in rows.values()):
        notes.append(f"No `{baseline}` runs: ratios left out (--baseline picks another method).")
    return Table(keys, columns, list(rows.items()), notes)


def _grouped(ok: list[dict]) -> int:
    return sum(bool(((r.get("config") or {}).get("train") or {}).get("group_by_length")) for r in ok)


def compare_table(a: list[dict], b: list[dict], keys: list[str], args) -> Table:
    """Per cell: B minus A, each the mean or median (--aggregate) over its runs, for every score column and
    avg; '–' where one side lacks it."""
    both = a + b
    tasks = sorted({r["task"] for r in both})
    columns = [*score_columns(both, args.metrics), Column("avg", "avg")]
    for c in columns:
        c.decimals, c.per_seed = args.decimals, False  # a difference of aggregates: no spread, no run count
    rows_a, rows_b = group_rows(a, keys), group_rows(b, keys)
    rows = []
    for key in sorted(set(rows_a) | set(rows_b)):
        ca = score_cells(rows_a.get(key, []), columns[:-1], tasks, False, args.aggregate)
        cb = score_cells(rows_b.get(key, []), columns[:-1], tasks, False, args.aggregate)
        rows.append((key, {k: Cell(cb[k].value - ca[k].value) for k in ca.keys() & cb.keys()}))
    notes = [f"B − A in points (metric × 100, {args.aggregate}s over seeds). A: {args.compare[0]}; B: {args.compare[1]}.",
             "– where A or B has no run."]
    return Table(keys, choose_columns(columns, args.columns), rows, notes, signed=True, highlight=False)
