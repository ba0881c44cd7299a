"""peftbench from Python, for notebooks and analysis scripts: the command line's own functions.

    from peftbench import api
    record = api.run({"model": "tiny", "method": "lora", "task": "demo", "train": {"max_steps": 20}})
    runs = api.load("results")                   # every run file: one row each (peftbench.results.load)
    print(api.table(runs, kind="scores"))        # the table `peftbench report results` prints

`run` is `peftbench run` with these overrides (one run, not a sweep): the same checks and composition
(cli.run_command), the same run folder under results_dir, the same skip when an ok run file with the same
config exists; it returns that run's record (the run.json, as a dict). A user mistake raises
`peftbench.errors.UserError` with the message the command line prints.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from .errors import UserError
from .results import load, table

__all__ = ["run", "load", "table", "overrides_of"]
PLAIN = re.compile(r"[\w./:~+\-@]*")  # a value Hydra's override grammar takes unquoted


def run(overrides: list[str] | dict | None = None) -> dict:
    """Train and evaluate one combination, exactly as `peftbench run <overrides>` does; its run record."""
    from . import cli
    from .run import job

    args = overrides_of(overrides)
    flags = [a for a in args if a.startswith("-")]
    if flags:
        raise UserError(f"run(): {' '.join(flags)}: give only key=value overrides (one run). For a sweep, call "
                        "run() in a loop or use `peftbench run -m` on the command line.")
    job.LAST_OUTCOME = None
    argv = sys.argv
    try:
        cli.run_command(args)
    except SystemExit as exc:  # the job printed the mistake and exits 2; here it is an exception
        outcome = job.LAST_OUTCOME or {}
        raise UserError(outcome.get("error") or f"the run stopped with exit status {exc.code}") from None
    finally:
        sys.argv = argv  # run_command hands Hydra its argv
    outcome = job.LAST_OUTCOME or {}
    if "run_file" not in outcome:
        raise UserError(outcome.get("error") or "the run ended without a run file (see the messages above).")
    return json.loads(Path(outcome["run_file"]).read_text())


def overrides_of(overrides: list[str] | dict | None) -> list[str]:
    """Hydra override strings from a list (kept as is) or a dict, nested dicts as dotted keys:
    {"method": "lora", "train": {"lr": 1e-3}} -> ["method=lora", "train.lr=0.001"]."""
    if overrides is None:
        return []
    if isinstance(overrides, (list, tuple)):
        return [str(o) for o in overrides]
    if not isinstance(overrides, dict):
        raise UserError(f"run(): overrides must be a list of 'key=value' strings or a dict, not "
                        f"{type(overrides).__name__}.")
    out = []
    for key, value in overrides.items():
        if isinstance(value, dict) and value:
            out += [f"{key}.{o}" for o in overrides_of(value)]
        else:
            out.append(f"{key}={value_of(value)}")
    return out


def value_of(value) -> str:
    """A Python value in Hydra's override grammar (null, true, numbers, [lists], quoted strings)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(value_of(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{value_of(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if PLAIN.fullmatch(text) and text not in ("null", "true", "false") and not _is_number(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
