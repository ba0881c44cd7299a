"""Run files as a pandas DataFrame, for notebooks and analysis scripts: one row per run file.

    from peftbench import results
    runs = results.load("results")                  # every run.json under the folder (or files, globs)
    ok = runs[runs.status == "ok"]
    ok.groupby(["method", "task"])["main_score"].agg(["mean", "std", "count"])
    ok.pivot_table(index="method", columns="task", values="task_score")   # the scores table's cells, as data

The files are found, read and checked exactly as `peftbench report` reads them (report/runs.py); a
file it cannot read is left out and named in `runs.attrs["problems"]`. Columns, in this order
(README.md, "Results in Python"):

| column | |
|---|---|
| `path` | the run file |
| `status`, `error` | ok / failed / killed / running; the error message of a failed run |
| `model`, `method`, `task`, `seed` | registry names, as in the configs and the report's columns |
| `main_metric`, `main_score` | the task's main metric, and its value (None unless ok) |
| `task_score` | the task's benchmark score: the mean of its `task.score_metrics` (GLUE: MRPC acc and F1) |
| `metric.<name>` | every metric the run recorded (MNLI: `metric.accuracy`, `metric.accuracy_mm`) |
| `params.<key>`, `memory.<key>`, `throughput.<key>`, `timing.<key>` | the run file's figures (README.md, "Run files") |
| `config_hash`, `run_dir`, `started_at`, `finished_at`, `peftbench`, `git_commit` | identity and provenance |
| `config.<dotted key>` | the resolved config, flattened (`config.method.r`, `config.train.lr`); lists as tuples |

`table(frame, kind="scores", ...)` builds any table `peftbench report` prints from such a frame (or rows
of it): the rows pick the run files, and the report's own code reads them and makes the table, so the
text is the CLI's (`peftbench report` calls the same `report.command.render`).

    lora = runs[runs.method.isin(["lora", "full"])]
    print(results.table(lora))                                   # = peftbench report (those runs)
    print(results.table(runs, kind="cost", format="csv"))        # = peftbench report --table cost --format csv
    print(results.table(runs, best_of="train.lr", decimals=2))   # any report option, as a keyword

pandas is imported when `load` runs, so importing this module stays cheap.
"""

from __future__ import annotations

from .errors import UserError
from .report.runs import load_runs, task_score

FIGURES = ("params", "memory", "throughput", "timing")  # run-file sections whose scalars become columns
FIRST = ("path", "status", "error", "model", "method", "task", "seed", "main_metric", "main_score", "task_score")


def flatten(node, prefix: str) -> dict[str, object]:
    """{"a": {"b": 1, "c": [2, 3]}} -> {"<prefix>.a.b": 1, "<prefix>.a.c": (2, 3)}; lists become tuples
    (hashable, so a column groups and compares)."""
    if isinstance(node, dict):
        if not node:
            return {prefix: None}
        out = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}.{key}"))
        return out
    return {prefix: tuple(node) if isinstance(node, list) else node}


def row(run: dict) -> dict[str, object]:
    """One run file as one flat row (the columns in the module docstring)."""
    ok = run["status"] == "ok"
    out = {"path": run["_path"], "status": run["status"], "error": run.get("error"), "model": run["model"],
           "method": run["method"], "task": run["task"], "seed": run.get("seed"),
           "main_metric": run.get("main_metric"), "main_score": run.get("main_score") if ok else None,
           "task_score": task_score(run) if ok else None}
    out.update({f"metric.{k}": v for k, v in (run.get("metrics") or {}).items()})
    for section in FIGURES:
        out.update({f"{section}.{k}": v for k, v in (run.get(section) or {}).items()
                    if not isinstance(v, (dict, list))})
    out.update({"config_hash": run.get("config_hash"), "run_dir": run.get("run_dir"),
                "started_at": run.get("started_at"), "finished_at": run.get("finished_at"),
                "peftbench": (run.get("versions") or {}).get("peftbench"),
                "git_commit": (run.get("git") or {}).get("commit")})
    out.update(flatten(run.get("config") or {}, "config"))
    return out


def load(*paths):
    """Every run file under `paths` (folders, run files or globs; default: results) as a DataFrame."""
    import pandas as pd

    runs, problems = load_runs(paths or ("results",))
    rows = [row(r) for r in runs]
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys([*FIRST, *(k for r in rows for k in r)])))
    frame.attrs["problems"] = problems
    return frame


CLI_ONLY = ("paths", "output", "plots", "compare")  # report options about files, not about the table


def table(frame, kind: str = "scores", format: str = "md", **options) -> str:
    """The report table of the frame's runs, as `peftbench report --table KIND --format FORMAT` prints it
    for the same run files. `options` are the report's other options as keywords (`best_of="train.lr"`,
    `rows="method,config.method.r"`, `decimals=2`, `ci=True`, `tasks="glue/*"`, ...;
    `peftbench report --help` lists them)."""
    from .report.command import check_args, filtered, parse_args, render

    refused = [k for k in options if k in CLI_ONLY]
    if refused:
        raise UserError(f"table(): {', '.join(refused)} are the command line's (files to read or write); pick "
                        "the runs as rows of the frame and write the returned text yourself.")
    if "path" not in getattr(frame, "columns", ()):
        raise UserError("table(): give a DataFrame from peftbench.results.load (or rows of one): it needs the "
                        "`path` column.")
    argv = ["--table", kind, "--format", format]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value not in (None, False):
            argv += [flag, ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    args = parse_args(argv)
    check_args(args)
    runs, problems = load_runs(list(dict.fromkeys(frame["path"]))) if len(frame) else ([], [])
    return render([filtered(runs, args)], [*frame.attrs.get("problems", []), *problems], args, "the frame").text
