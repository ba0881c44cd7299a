"""`--best-of KEY` (e.g. train.lr): papers tune a method's learning rate per task and report the best.
Per row and task, the runs are grouped by the value of a key of their config; the value whose runs
score best keeps its runs, the others are left out. Also a note when a cell averages runs that differ
in train.lr, without --best-of.

The pick: the highest main score (`main_metric`, the first eval split, GLUE dev) aggregated over the
value's runs (seeds) as the table aggregates (--aggregate mean or median); on a tie the smaller value
(numbers by size, then text). It is picked and reported on the same split, as the papers' GLUE
dev numbers are, so it leans optimistic.
"""

from __future__ import annotations

from ..errors import UserError, did_you_mean
from .runs import AGGREGATES, group_rows

MIXED_KEY = "train.lr"  # the note warns when a cell averages runs with different values of it


def leaf_keys(config: dict, prefix: str = "") -> dict[str, object]:
    """{"train": {"lr": 1e-3}} -> {"train.lr": 1e-3}."""
    out = {}
    for k, v in config.items():
        out |= leaf_keys(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v}
    return out


def value_order(text: str) -> tuple:
    """Numbers by size ("0.0001" < "0.001" < "0.01"), then other values by text (None last of all)."""
    try:
        return 0, float(text), ""
    except ValueError:
        return 1, text == "None", text


def cells_by_value(runs: list[dict], row_keys: list[str], key: str) -> dict[tuple, dict[str, list[dict]]]:
    """(row values..., task) -> {config value as text: its runs}, values in `value_order`."""
    out = {}
    for cell, cell_runs in group_rows(runs, [*row_keys, "task"]).items():
        groups = group_rows(cell_runs, [f"config.{key}"])
        out[cell] = {v: groups[(v,)] for (v,) in sorted(groups, key=lambda g: value_order(g[0]))}
    return out


def varying_keys(runs: list[dict], row_keys: list[str]) -> list[str]:
    """Config keys whose value differs between runs of one row and task (seed left out)."""
    out = set()
    for cell_runs in group_rows(runs, [*row_keys, "task"]).values():
        configs = [leaf_keys(r.get("config") or {}) for r in cell_runs]
        out |= {k for k in set().union(*configs) if len({str(c.get(k)) for c in configs}) > 1}
    return sorted(out - {"seed"})


def check_key(runs: list[dict], row_keys: list[str], key: str) -> None:
    known = set().union(*(leaf_keys(r.get("config") or {}) for r in runs))
    if key not in known:
        varying = ", ".join(varying_keys(runs, row_keys)) or "none"
        raise UserError(f"Unknown config key '{key}' for --best-of: no run's config has it."
                        f"{did_you_mean(key, known)} Keys that differ between runs of one row and task: "
                        f"{varying}. Any dotted key of the run file's `config` works, e.g. train.lr.")


def main_score(runs: list[dict], how: str) -> float:
    return AGGREGATES[how]([r["metrics"][r["main_metric"]] for r in runs])


def best_of(runs: list[dict], row_keys: list[str], key: str, how: str, where: str = "") -> tuple[list[dict], list[str]]:
    """(the runs of each row and task's best value of config `key`, notes naming the picks, a line per row);
    `where` names the result set in the notes (" in A" for --compare)."""
    key = key.removeprefix("config.")
    check_key(runs, row_keys, key)
    kept, picks = [], {}
    for cell, by_value in cells_by_value(runs, row_keys, key).items():
        best = max(by_value, key=lambda v: main_score(by_value[v], how))  # the first best: the smaller value
        kept += by_value[best]
        tried = f"of {', '.join(by_value)}; " if len(by_value) > 1 else ""
        picks.setdefault(cell[:-1], []).append(f"{cell[-1]} {best} ({tried}n={len(by_value[best])})")
    header = (f"--best-of {key}{where}: per row and task the value with the highest {how} main score over seeds "
              "(on a tie the smaller value); cells show only its runs. Picked:")
    return kept, [header, *(f"- {' / '.join(row)}: {', '.join(cells)}" for row, cells in picks.items())]


def mixed_note(runs: list[dict], row_keys: list[str], where: str = "") -> list[str]:
    """A note naming the cells whose runs differ in train.lr, averaged together."""
    mixed = [f"{' / '.join(cell)} ({', '.join(by_value)})"
             for cell, by_value in cells_by_value(runs, row_keys, MIXED_KEY).items() if len(by_value) > 1]
    if not mixed:
        return []
    return [(f"Cells{where} that aggregate runs with different {MIXED_KEY}: {'; '.join(mixed)}. --best-of {MIXED_KEY} "
             f"keeps the best per cell; --rows {','.join(row_keys)},config.{MIXED_KEY} shows each.")]
