"""What the HTML page shows, as plain data (`page` inlines it as JSON): one table row per row key, task
and budget (its seeds' scores, cost, the runs behind it), one point per row key and budget for the
Pareto views (avg or a task's score against parameters, memory, speed), and per run its curves and
config. Only the numbers the tables make; the page sorts, filters and draws them."""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path

from .bestof import leaf_keys
from .families import FAMILIES, OTHER, family
from .runs import (group_rows, measured_alone, metric_header, params, peak_memory_mb, row_value, score_metrics,
                   task_score)
from .significance import ties_with_best


def stats(values: list[float]) -> dict | None:
    """{mean, std, n} (std None for one value), or None for no values."""
    if not values:
        return None
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values)}


def budget(run: dict) -> str:
    """The training budget as a short label: "1 epoch, batch 32" (a task's own cap on its training
    examples, SST-2's 5,000 in the GLUE protocol, is in its config, not here: it is one protocol)."""
    train = (run.get("config") or {}).get("train") or {}
    steps = train.get("max_steps")
    if steps is not None and steps > 0:
        length = f"{steps} steps"
    else:
        epochs = train.get("epochs")
        length = "? epochs" if epochs is None else f"{epochs:g} epoch{'s' * (epochs != 1)}"
    return f"{length}, batch {train.get('batch_size', '?')}"


def cost(runs: list[dict]) -> dict:
    """Memory and samples/s over the runs, when every one was measured alone (else None: a mean of alone and
    shared figures, or of one device and another, would describe neither)."""
    if not all(measured_alone(r) for r in runs):
        return {"memory": None, "throughput": None}
    return {"memory": stats([peak_memory_mb(r) for r in runs]),
            "throughput": stats([r["throughput"]["train_samples_per_s"] for r in runs if r.get("throughput")])}


def run_entry(run: dict, differing: list[str], link_from: Path) -> dict:
    leaves = leaf_keys(run.get("config") or {})
    return {"seed": run.get("seed"), "score": 100 * task_score(run),
            "metrics": {metric_header(run["task"], m, list(run["metrics"])): 100 * v
                        for m, v in run["metrics"].items()},
            "loss": run.get("loss_history") or [], "evals": run.get("eval_history") or [],
            "diff": {k: leaves.get(k) for k in differing},
            "link": Path(os.path.relpath(Path(run["_path"]).resolve(), link_from.resolve())).as_posix()}


def row_entry(key: tuple, keys: list[str], task: str, label_budget: str, runs: list[dict], first: int,
              link_from: Path, tuned: str) -> tuple[dict, list[dict]]:
    """(the table row, its runs' entries); `first`: the index of its first run in the page's run list."""
    configs = [leaf_keys(r.get("config") or {}) for r in runs]
    every = sorted(set().union(*configs))
    differing = [k for k in every if len({repr(c.get(k)) for c in configs}) > 1]
    sample = runs[0]
    metrics = {}
    for m in score_metrics(sample):
        values = [100 * r["metrics"][m] for r in runs if m in r["metrics"]]
        if values:
            metrics[metric_header(task, m, score_metrics(sample))] = stats(values)
    tuned_values = sorted({str(row_value(r, f"config.{tuned}")) for r in runs})
    row = {"label": " / ".join(key), "family": family(str(row_value(sample, "method"))), "task": task,
           "budget": label_budget, "tuned": ", ".join(tuned_values),
           "score": stats([100 * task_score(r) for r in runs]), "metrics": metrics,
           "params": params(sample)[0], "params_pct": params(sample)[1], **cost(runs),
           "runs": list(range(first, first + len(runs))),
           "common": {k: configs[0].get(k) for k in every if k not in differing},
           "keys": dict(zip(keys, key))}
    return row, [run_entry(r, differing, link_from) for r in sorted(runs, key=lambda r: (r.get("seed") or 0))]


def mark_ties(rows: list[dict]) -> None:
    """Per task and budget: `best` on the row with the highest mean score, `tie_p` on rows the seeds cannot
    tell from it (significance.ties_with_best)."""
    cells: dict[tuple, dict[int, list[float]]] = {}
    for i, row in enumerate(rows):
        cells.setdefault((row["task"], row["budget"]), {})[i] = row["_scores"]
    for groups in cells.values():
        best, ties = ties_with_best(groups)
        if best is not None:
            rows[best]["best"] = True
        for i, p in ties.items():
            rows[i]["tie_p"] = round(p, 3)


def points(rows: list[dict], tasks: list[str]) -> list[dict]:
    """One Pareto point per row key and budget: each task's score, their avg (with the task std's
    combined as for a mean of independent figures: sqrt(sum std^2) / tasks), params and cost."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["label"], row["budget"]), []).append(row)
    out = []
    for (label, label_budget), group in groups.items():
        scores = {r["task"]: r["score"] for r in group}
        avg = None
        if all(t in scores for t in tasks):
            stds = [scores[t]["std"] for t in tasks]
            avg = {"mean": statistics.fmean(scores[t]["mean"] for t in tasks),
                   "std": None if None in stds else math.sqrt(sum(s * s for s in stds)) / len(tasks),
                   "n": min(scores[t]["n"] for t in tasks)}
        out.append({"label": label, "budget": label_budget, "family": group[0]["family"], "scores": scores,
                    "avg": avg, "params": max(r["params"] for r in group),
                    "memory": pooled([r["memory"] for r in group]), "throughput": pooled([r["throughput"] for r in group])})
    return out


def pooled(parts: list[dict | None]) -> dict | None:
    """The mean over a point's rows (its tasks) of their cost means, std over those means; None unless
    every row has the figure."""
    return None if None in parts else stats([p["mean"] for p in parts])


def page_data(ok: list[dict], keys: list[str], link_from: Path, tuned: str = "train.lr") -> dict:
    """Everything the page needs from the ok runs (after --best-of): rows, runs, points, families."""
    rows, runs = [], []
    groups = group_rows(ok, [*keys, "task"])
    for key, group in groups.items():
        by_budget: dict[str, list[dict]] = {}
        for r in group:
            by_budget.setdefault(budget(r), []).append(r)
        for label_budget, cell_runs in sorted(by_budget.items()):
            row, entries = row_entry(key[:-1], keys, key[-1], label_budget, cell_runs, len(runs), link_from, tuned)
            row["_scores"] = [e["score"] for e in entries]
            rows.append(row)
            runs += entries
    mark_ties(rows)
    for row in rows:
        del row["_scores"]
    tasks = sorted({r["task"] for r in ok})
    return {"rows": rows, "runs": runs, "points": points(rows, tasks), "tasks": tasks, "row_keys": keys,
            "tuned": tuned, "families": {name: c for name, (c, _) in FAMILIES.items()} | {OTHER[0]: OTHER[1]},
            "alone": sum(measured_alone(r) for r in ok), "total": len(ok)}
