"""`peftbench report`'s option checks, all before anything is read or written: a wrong type, a number out of
range, an empty list, an output that is a folder or cannot be written, a named file that is not a run
file. Each problem is one line naming the option and the value (UserError: exit 2, no traceback)."""

from __future__ import annotations

import argparse
import glob
import json
import os
from pathlib import Path

from ..errors import UserError
from .runs import not_a_run_record

DECIMALS = range(0, 11)


class Parser(argparse.ArgumentParser):
    """argparse that raises a one-line UserError instead of printing its usage and exiting."""

    def error(self, message: str):
        raise UserError(f"report: {message}. See `peftbench report --help`.")


def check_options(args: argparse.Namespace) -> None:
    if args.decimals not in DECIMALS:
        raise UserError(f"--decimals {args.decimals}: give a whole number from {DECIMALS[0]} to {DECIMALS[-1]}.")
    if args.seeds is not None and args.seeds < 1:
        raise UserError(f"--seeds {args.seeds}: give the number of runs expected per cell, >= 1.")
    for option in ("rows", "columns", "tasks", "methods", "models", "best_of", "baseline"):
        value = getattr(args, option)
        if value is not None and not value.strip(" ,"):
            flag = "--" + option.replace("_", "-")
            raise UserError(f"{flag} {value!r}: empty; give a value or leave {flag} out.")
    if args.output:
        check_writable_file("--output", Path(args.output))
    if args.plots:
        check_writable_folder("--plots", Path(args.plots))
    for path in args.compare or args.paths:
        check_named_file(path)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable_folder(option: str, folder: Path, value: Path | None = None) -> None:
    """A folder that exists or can be made, and can be written in (`value`: what the user gave)."""
    value = value or folder
    existing = _nearest_existing(folder.absolute())
    if not existing.is_dir():
        where = "is a file" if existing == value.absolute() else f"is under {existing}, a file"
        raise UserError(f"{option} {value}: {where}, not a folder. Give a path in a folder you can write in.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{option} {value}: cannot write in {existing} (permission denied). "
                        "Give a path in a folder you can write in.")


def check_writable_file(option: str, file: Path) -> None:
    if file.is_dir():
        raise UserError(f"{option} {file}: is a folder. Give a file name, e.g. {file / 'scores.md'}.")
    if file.exists() and not os.access(file, os.W_OK):
        raise UserError(f"{option} {file}: cannot be overwritten (permission denied). Give another file.")
    check_writable_folder(option, file.parent, file)


def check_named_file(path: str) -> None:
    """A file named on the command line (not a folder or glob) must be a run file: otherwise nothing
    else would tell the user that the report skipped it."""
    file = Path(path)
    if glob.has_magic(path) or not file.is_file():
        return
    try:
        reason = not_a_run_record(json.loads(file.read_text()))
    except (OSError, ValueError) as exc:
        reason = f"not JSON ({str(exc).splitlines()[0]})"
    if reason:
        raise UserError(f"{path}: not a run file: {reason}. Give run.json files or folders that hold them.")
