"""Read a task's splits from local files, a generator or the Hub, and normalise fields and labels."""

from __future__ import annotations

import copy
import csv
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from ..config import eval_splits
from ..errors import UserError
from .formats import CONLL_SUFFIXES, SPAN_KINDS, read_conll, span_frame
from .spec import floats, label_ids, normalise, read_data_files, require_columns
from .synthetic import GENERATORS

EXTENSIONS = (".tsv", ".csv", ".json", ".jsonl", *CONLL_SUFFIXES)


@dataclass
class TaskData:
    train: pd.DataFrame  # the task's text fields + `label`
    evals: dict[str, pd.DataFrame]  # eval split -> frame
    source: str  # where the data came from, recorded in the run file
    num_labels: int  # 1 for regression


def load_task(task: DictConfig, seed: int = 0, data_root: str | None = None) -> TaskData:
    """The task's splits; `data_root` (the run's top-level key) gives the folder when task.data_dir is null."""
    folder = resolve_data_dir(task, data_root)
    if folder is not None and not task.data_dir:  # every reader below sees the resolved folder
        task = copy.deepcopy(task)
        task.data_dir = str(folder)
    splits = [task.train_split, *eval_splits(task)]
    if task.data_files:  # one named file per split
        raw = read_data_files(task, _read_file)
        source = "data_files:" + ",".join(f"{s}={f}" for s, f in task.data_files.items())
    elif task.data_dir:
        folder = Path(task.data_dir).expanduser()
        raw = {s: _read_local(task, folder, s) for s in splits}
        source = f"data_dir:{folder}"
    elif task.generator:
        raw = GENERATORS.get(task.generator)(**task.generator_args)
        source = f"generator:{task.generator}"
    else:
        raw = _read_hub(task, splits)
        source = f"hub:{task.dataset}" + (f"/{task.subset}" if task.subset else "")
    frames = {}
    for split in splits:
        if split not in raw:
            raise UserError(f"task '{task.name}': split '{split}' not found in {source}. "
                            f"Splits there: {', '.join(sorted(raw))}.")
        frames[split] = _normalise(task, raw[split], f"{source} [{split}]")
    seed = seed if task.sample_seed is None else task.sample_seed  # a fixed subset for every run seed
    train = _subsample(frames.pop(task.train_split), task.max_train_samples, seed)
    evals = {s: _subsample(df, task.max_eval_samples, seed) for s, df in frames.items()}
    num_labels = len(task.label_names) if task.label_names else 1
    return TaskData(train=train, evals=evals, source=source, num_labels=num_labels)


def resolve_data_dir(task: DictConfig, data_root: str | None) -> Path | None:
    """Where a task's local files are: task.data_dir if set, else <data_root>/<task.data_subdir> when both
    are set, else None (the task's generator or hub dataset). `~` expands in both."""
    if task.data_dir:
        return Path(task.data_dir).expanduser()
    if not data_root or not task.data_subdir:
        return None
    root = Path(data_root).expanduser()
    folder = root / task.data_subdir
    if folder.is_dir():
        return folder
    if not root.is_dir():
        expanded = f" ({root})" if str(root) != str(data_root) else ""
        raise UserError(f"data_root={data_root}: no such folder{expanded}. Point it at the folder that holds the "
                        f"task folders ({task.data_subdir}/, ...), or set task.data_dir=<folder>.")
    there = ", ".join(sorted(p.name + "/" for p in root.iterdir() if p.is_dir())) or "none"
    raise UserError(f"task '{task.name}': no folder {task.data_subdir}/ in data_root={data_root} (looked for "
                    f"{folder}). Folders there: {there}. Add {task.data_subdir}/ with the task's train and dev "
                    "files, or point this task elsewhere with task.data_dir=<folder>.")


def data_paths(task: DictConfig, data_root: str | None = None) -> dict[str, Path]:
    """{split: file} of the local files `load_task` reads for this task (none for a generator or a hub id;
    every file of a local copy of a hub repository, keyed by its relative path). Missing files are left
    out: `load_task` names them."""
    try:
        folder = resolve_data_dir(task, data_root)
    except UserError:
        return {}
    splits = [task.train_split, *eval_splits(task)]
    if task.data_files:
        base = folder or Path(".")
        paths = {s: Path(f).expanduser() for s, f in task.data_files.items()}
        paths = {s: p if p.is_absolute() else base / p for s, p in paths.items()}
    elif folder is not None:
        paths = {s: next((folder / (stem + ext) for stem in _stems(task, s) for ext in EXTENSIONS
                          if (folder / (stem + ext)).is_file()), None) for s in splits}
    elif task.dataset and Path(task.dataset).expanduser().is_dir():
        root = Path(task.dataset).expanduser()
        paths = {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}
    else:
        return {}
    return {s: p for s, p in paths.items() if p is not None and p.is_file()}


def _subsample(df: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    if n is None or n >= len(df):
        return df.reset_index(drop=True)
    return df.sample(n=n, random_state=seed).reset_index(drop=True)


def _stems(task: DictConfig, split: str) -> list[str]:
    if split in task.files:
        return list(task.files[split])
    return ["dev", "validation"] if split == "validation" else [split]


def _read_local(task: DictConfig, folder: Path, split: str) -> pd.DataFrame:
    if not folder.is_dir():
        raise UserError(f"task.data_dir={folder}: no such folder.")
    tried = [stem + ext for stem in _stems(task, split) for ext in EXTENSIONS]
    for name in tried:
        if (folder / name).is_file():
            return _read_file(task, folder / name)
    found = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
    raise UserError(f"task '{task.name}': no {split} file in {folder}. Looked for: {', '.join(tried)}. "
                    f"Found there: {found}. Name the files per split with task.files.")


def _read_file(task: DictConfig, path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".tsv":  # GLUE's TSVs are unquoted; CoLA's have no header
            cols = list(task.tsv_columns) if task.tsv_columns else None
            df = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, header=None if cols else 0, names=cols,
                             dtype=str, keep_default_na=False, on_bad_lines="error")
        elif path.suffix == ".csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif path.suffix in CONLL_SUFFIXES:  # tasks/formats.py: token-per-line files
            df = read_conll(path, *(list(task.text_fields) or ["tokens"])[:1], task.label_field)
        else:
            df = pd.read_json(path, lines=path.suffix == ".jsonl", dtype=False)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: {_bad_bytes(path)}: not UTF-8 ({exc.reason}). Save the file as UTF-8, e.g. "
                        f"iconv -f latin1 -t utf-8.") from exc
    except (ValueError, pd.errors.ParserError) as exc:  # a row with a column too many names its line
        raise UserError(f"{path}: cannot be read as {path.suffix[1:].upper()} ({str(exc).strip()}).") from exc
    if df.empty:
        raise UserError(f"{path}: no rows (a header only?). Each split needs at least one example.")
    # the file's line of row 0, for messages about a row: after a header line (TSV with one, CSV), or the first
    # line (header-less TSV, JSON lines); a JSON document has no lines to name
    df.attrs["first_line"] = {".tsv": 1 if task.tsv_columns else 2, ".csv": 2, ".jsonl": 1}.get(path.suffix)
    return df


def _bad_bytes(path: Path) -> str:
    """`line 3, byte 0xff at byte 4 of the line`: where a file first stops being UTF-8."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"line {number}, byte 0x{line[exc.start]:02x} at byte {exc.start + 1} of the line"
    return "somewhere"


def _read_hub(task: DictConfig, splits: list[str]) -> dict[str, pd.DataFrame]:
    import datasets  # heavy; only this path needs it

    folder = Path(task.dataset or "").expanduser()  # a local copy of a hub repository (Parquet files, README)
    local = bool(task.dataset) and folder.is_dir()
    path, where = (str(folder), f"the folder {folder}") if local else (task.dataset, "the Hugging Face Hub")
    try:
        ds = datasets.load_dataset(path, task.subset)
    except Exception as exc:  # offline, unknown id, no access: all end the same way for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UserError(f"task '{task.name}': cannot load '{task.dataset}' ({task.subset}) from {where}: "
                        f"{type(exc).__name__}: {first}. Without network, point task.data_dir at local "
                        "files (GLUE TSV, CSV or JSON).") from exc
    return {s: ds[s].to_pandas() for s in splits if s in ds}


def _normalise(task: DictConfig, df: pd.DataFrame, origin: str) -> pd.DataFrame:
    first_line = df.attrs.get("first_line")
    aliases = {a: f for a, f in task.column_aliases.items() if a in df.columns and f not in df.columns}
    df = df.rename(columns=aliases)
    if task.kind in SPAN_KINDS:  # token lists and tags, questions and answer spans (tasks/formats.py)
        return span_frame(task, df, origin)
    if task.kind != "classification":  # prompts, targets, choices, images (tasks/spec.py)
        return normalise(task, df, origin)
    fields = list(task.text_fields)
    require_columns(task, df, fields + [task.label_field], origin)
    out = df[fields].astype(str)
    if task.label_names:
        out["label"] = label_ids(df[task.label_field], list(task.label_names), task.name, origin, first_line)
    else:
        out["label"] = floats(df[task.label_field], task.name, origin, first_line)
    return out.reset_index(drop=True)
