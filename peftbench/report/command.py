"""`peftbench report [DIR ...]`: paper-style tables from run files, one row per method (per model x
method when several models are present), one column per task metric (x 100, mean or median +- std over
seeds).

Rules (README "Reports" documents them):
- a task's score is the mean of its official metrics (MRPC acc/F1, STS-B Pearson/Spearman, MNLI m/mm);
- `avg` is the mean of the task scores over every task in the report, only for rows that have them all;
- --best-of KEY keeps, per row and task, the runs of the config value that scores best (report/bestof.py);
- failed or unfinished runs are listed under the table with their error, never averaged in.

No torch import here: reporting thousands of run files must stay fast; matplotlib only for --plots.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError, unknown_name
from ..runfile import FILE_NAME, RERUN_DIR, unfinished_reason
from .bestof import best_of, mixed_note
from .build import METRIC_CHOICES, compare_table, cost_table, scores_table
from .options import Parser, check_options
from .runs import AGGREGATES, ROW_KEYS, load_runs, select, where
from .tables import FORMATS, RENDERERS, Table


def failed_lines(runs: list[dict]) -> list[str]:
    failed = [r for r in runs if r.get("status") != "ok"]
    if not failed:
        return []
    lines = [f"Failed or unfinished runs ({len(failed)}), not in the table:"]
    for r in sorted(failed, key=lambda r: r["_path"]):
        err = r.get("error") or {}
        message = (err.get("message") or "").strip().splitlines()
        rerun = " (a re-run: the earlier ok run stays in the table)" if _is_rerun(r["_path"]) else ""
        lines.append(f"- {r.get('model')} / {r.get('method')} / {r.get('task')} seed {r.get('seed')}: "
                     f"{err.get('type', r.get('status'))}: {message[0] if message else unfinished_reason(r)} "
                     f"({r['_path']}){rerun}")
    return lines


def _is_rerun(path) -> bool:
    """A `--force` re-run's record (<run dir>/rerun/run.json) beside an ok run.json."""
    path = Path(path)
    return path.parent.name == RERUN_DIR and (path.parent.parent / FILE_NAME).is_file()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = Parser(prog="peftbench report", description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="*", help="folders (searched recursively), run files or globs (default: results)")
    p.add_argument("--format", "-f", default="md", help=f"one of {', '.join(FORMATS)} (default md)")
    p.add_argument("--output", "-o", help="write the table to this file instead of stdout")
    p.add_argument("--table", default="scores", help="scores (default) or cost: memory/speed/time vs --baseline")
    p.add_argument("--tasks", help="comma-separated task names or globs, e.g. 'glue/*'")
    p.add_argument("--methods", help="comma-separated method names or globs")
    p.add_argument("--models", help="comma-separated model names or globs")
    p.add_argument("--where", help="keep runs whose config matches: 'model.pooling=cls,train.lr=1e-*' (values or "
                                   "globs; keys as in the run file's config)")
    p.add_argument("--rows", help="row keys: model, method or config.<key> (default: method, or model,method "
                                  "when several models are present)")
    p.add_argument("--metrics", default="score", help="score (the metrics of the task's benchmark score, default), "
                                                      "all (every metric the task records) or main (one per task)")
    p.add_argument("--columns", help="columns in order, optionally renamed: 'glue/rte,glue/mrpc:f1=MRPC F1,avg'")
    p.add_argument("--decimals", type=int, default=1, help="decimals of scores, 0 to 10 (default 1)")
    p.add_argument("--seeds", type=int, help="runs expected per cell; fewer are marked † (default: the most any "
                                             "cell has)")
    p.add_argument("--ci", action="store_true", help="95%% confidence interval (t) instead of std")
    p.add_argument("--aggregate", default="mean", metavar="mean|median",
                   help="a score cell over its runs (seeds): mean (default) or median (as the LoRA paper reports); "
                        "the ± stays std/CI")
    p.add_argument("--best-of", metavar="KEY", help="config key tuned per row and task, e.g. train.lr: keep only "
                                                    "the runs of the value with the best main score over seeds")
    p.add_argument("--baseline", help="method the cost table divides by (default full)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="table of B - A per cell for two result sets")
    p.add_argument("--plots", metavar="DIR", help="also save PNG+PDF plots (score vs params/memory, memory bars)")
    return p.parse_args(argv)


def check_choice(kind: str, value: str, choices) -> None:
    if value not in choices:
        raise unknown_name(kind, value, choices)


def pick(ok: list[dict], keys: list[str], args, where: str = "") -> tuple[list[dict], list[str]]:
    """(--best-of: each row and task's best runs, else all; the notes that say so), plus, for scores, a
    note on cells that still aggregate runs with different train.lr."""
    ok, notes = best_of(ok, keys, args.best_of, args.aggregate, where) if args.best_of else (ok, [])
    return ok, notes + (mixed_note(ok, keys, where) if args.table == "scores" else [])


def make_table(sets: list[list[dict]], ok: list[dict], keys: list[str], args) -> tuple[Table, list[dict]]:
    """(the table asked for, with pick's notes; the ok runs it shows, for --plots)."""
    if args.compare:
        picked = [pick([r for r in s if r.get("status") == "ok"], keys, args, f" in {label}")
                  for label, s in zip("AB", sets)]
        table = compare_table(picked[0][0], picked[1][0], keys, args)
        notes = picked[0][1] + picked[1][1]
    else:
        ok, notes = pick(ok, keys, args)
        table = cost_table(ok, keys, args.baseline) if args.table == "cost" else scores_table(ok, keys, args)
    table.notes += notes
    return table, ok


@dataclass
class Rendered:
    """A report as text, with what goes beside it: notes for stderr (CSV holds numbers only), and the ok
    runs and row keys it shows (for --plots)."""
    text: str
    stderr: list[str] = field(default_factory=list)
    ok: list[dict] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


def check_args(args: argparse.Namespace) -> None:
    """Every option's type, range and choice, before anything is read or written."""
    check_options(args)  # types, ranges, output paths, named files
    check_choice("format", args.format, FORMATS)
    check_choice("table", args.table, ("scores", "cost"))
    check_choice("metrics", args.metrics, METRIC_CHOICES)
    check_choice("aggregate", args.aggregate, AGGREGATES)
    if args.compare and (args.paths or args.plots or args.table != "scores"):
        raise UserError("--compare A B takes the result sets itself and makes one table: leave out paths, "
                        "--plots and --table.")


def filtered(runs: list[dict], args: argparse.Namespace) -> list[dict]:
    """--tasks, --methods, --models, --where."""
    return where(select(select(select(runs, "task", args.tasks), "method", args.methods), "model", args.models),
                 args.where)


def render(sets: list[list[dict]], problems: list[str], args: argparse.Namespace, origin: str = "") -> Rendered:
    """The report of these run records (one set, or two with --compare), as `peftbench report` prints it
    and `peftbench.results.table` returns it; `origin` names where the runs came from in the no-runs error."""
    runs = [r for s in sets for r in s]
    if not runs and not problems:
        raise UserError(f"no run files (run.json) under {origin or 'results'}. Make some with `peftbench run`.")
    ok = [r for r in runs if r.get("status") == "ok"]
    keys = [k.strip() for k in args.rows.split(",")] if args.rows else \
        ["model", "method"] if len({r["model"] for r in ok}) > 1 else ["method"]
    for k in keys:
        if k not in ROW_KEYS and not k.startswith("config."):
            raise unknown_name("row key", k, ROW_KEYS, hint="Or any config.<dotted key>, e.g. config.method.r.")
    if args.baseline is None:
        args.baseline = "full"  # the default may have no runs: the cost table then says so in a note
    elif args.table == "cost" and ok and args.baseline not in {r["method"] for r in ok}:
        raise unknown_name("baseline method", args.baseline, {r["method"] for r in ok},
                           hint="--baseline names a method with ok runs in this report.")
    listed = failed_lines(runs) + problems
    if not ok:
        return Rendered("\n\n".join(["No successful runs.", *(["\n".join(listed)] if listed else [])]) + "\n")
    table, ok = make_table(sets, ok, keys, args)
    if args.format == "html" and args.table == "scores" and not args.compare:
        from .page import render_page  # the interactive page; cost and compare tables stay plain HTML

        text = render_page(table, ok, keys, listed, args.output, args.best_of or "train.lr")
    else:
        text = RENDERERS[args.format](table, [] if args.format == "csv" else listed)
    stderr = table.notes + listed if args.format == "csv" else []
    return Rendered(text, stderr, ok, keys)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    check_args(args)
    sets = [load_runs([p]) for p in args.compare] if args.compare else [load_runs(args.paths or ["results"])]
    problems = [line for _, probs in sets for line in probs]
    report = render([filtered(runs, args) for runs, _ in sets], problems, args,
                    ", ".join(args.compare or args.paths or ["results"]))
    if args.output and report.ok:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(report.text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(report.text, end="")
    if report.stderr:
        print("\n".join(report.stderr), file=sys.stderr)
    if args.plots and report.ok:
        from .plots import save_plots

        for path in save_plots(scores_table(report.ok, report.keys, args), report.ok, report.keys, args.plots):
            print(f"wrote {path}", file=sys.stderr)
    return 0
