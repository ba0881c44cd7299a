"""`peftbench report [DIR ...]`: a Markdown table from run files, one row per method (per model x
method when several models are present), one column per task (its main metric x 100, mean +- std
over seeds), the average over tasks, and trainable parameters. Failed runs are listed, never averaged.

No torch import here: reporting thousands of run files must stay fast.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from .errors import UserError
from .runfile import find_run_files


def load_runs(paths) -> tuple[list[dict], list[str]]:
    """(run records, problems): unreadable files are reported, not skipped silently."""
    runs, problems = [], []
    for path in find_run_files(paths):
        try:
            record = json.loads(path.read_text())
            record["_path"] = str(path)
            runs.append(record)
        except (OSError, json.JSONDecodeError) as exc:
            problems.append(f"{path}: unreadable ({exc})")
    return runs, problems


def human_count(n: float) -> str:
    """74498 -> 74.5K, 294912 -> 294.9K, 1.2e8 -> 120.0M."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(int(n))


def _cell(scores: list[float]) -> str:
    mean = 100 * statistics.fmean(scores)
    if len(scores) == 1:
        return f"{mean:.1f}"
    return f"{mean:.1f} ± {100 * statistics.stdev(scores):.1f} (n={len(scores)})"


def _params_cell(runs: list[dict]) -> str:
    counts = sorted({r["params"]["trainable"] for r in runs})
    pcts = sorted({r["params"]["trainable_pct"] for r in runs})
    count = human_count(counts[0]) if len(counts) == 1 else f"{human_count(counts[0])}–{human_count(counts[-1])}"
    pct = f"{pcts[0]:.2f}%" if len(pcts) == 1 else f"{pcts[0]:.2f}–{pcts[-1]:.2f}%"
    return f"{count} ({pct})"


def markdown_table(runs: list[dict]) -> str:
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        return "No successful runs."
    by_model = len({r["model"] for r in ok}) > 1
    tasks = sorted({r["task"] for r in ok})
    cells: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    row_runs: dict[str, list[dict]] = defaultdict(list)
    for r in ok:
        row = f"{r['model']} / {r['method']}" if by_model else r["method"]
        cells[row][r["task"]].append(r["main_score"])
        row_runs[row].append(r)
    metric_of = {r["task"]: r["main_metric"] for r in ok}
    header = ["model / method" if by_model else "method", *(f"{t} ({metric_of[t]})" for t in tasks), "avg",
              "trainable params"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for row in sorted(cells):
        means = [statistics.fmean(cells[row][t]) for t in tasks if t in cells[row]]
        avg = f"{100 * statistics.fmean(means):.1f}" if len(means) == len(tasks) else "–"
        values = [_cell(cells[row][t]) if t in cells[row] else "–" for t in tasks]
        lines.append("| " + " | ".join([row, *values, avg, _params_cell(row_runs[row])]) + " |")
    return "\n".join(lines)


def failed_section(runs: list[dict]) -> str:
    failed = [r for r in runs if r.get("status") != "ok"]
    if not failed:
        return ""
    lines = [f"Failed runs ({len(failed)}), not in the table:"]
    for r in failed:
        err = r.get("error") or {}
        message = (err.get("message") or "").strip().splitlines()
        lines.append(f"- {r.get('model')} / {r.get('method')} / {r.get('task')} seed {r.get('seed')}: "
                     f"{err.get('type', r.get('status'))}: {message[0] if message else ''} ({r['_path']})")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="peftbench report", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", default=["results"], help="folders (searched recursively) or run files")
    args = parser.parse_args(argv)
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise UserError(f"no such file or folder: {', '.join(missing)}.")
    runs, problems = load_runs(args.paths)
    if not runs and not problems:
        raise UserError(f"no run files (run.json) under {', '.join(args.paths)}. Make some with `peftbench run`.")
    print(markdown_table(runs))
    for block in (failed_section(runs), "\n".join(problems)):
        if block:
            print("\n" + block)
    return 0
