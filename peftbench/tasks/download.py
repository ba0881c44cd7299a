"""`peftbench data glue DIR`: write the GLUE folder layout that `data_root` reads (DIR/RTE/train.tsv, dev.tsv,
DIR/MNLI/dev_matched.tsv, ...), from the Hugging Face Hub (`nyu-mll/glue`, through `datasets`) or from GLUE's
own zip files. Both need a network; each written task is read back through the task loader before it counts."""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import zipfile
from pathlib import Path

from ..config import eval_splits
from ..errors import UserError, unknown_name

GLUE_TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte")
SOURCES = ("hub", "glue")
GLUE_ZIPS = "https://dl.fbaipublicfiles.com/glue/data/"  # GLUE's own files, one zip per task
ZIP_NAMES = {"cola": "CoLA", "sst2": "SST-2", "stsb": "STS-B", "qqp": "QQP-clean", "mnli": "MNLI",
             "qnli": "QNLIv2", "rte": "RTE"}  # MRPC: GLUE never hosted it (Microsoft's licence)
OFFLINE_HINT = ("Without a network, copy GLUE's files onto this machine yourself (a folder with RTE/, MRPC/, "
                "... each holding train.tsv and dev.tsv) and point data_root=<that folder> at them.")

USAGE = """usage: peftbench data glue DIR [--tasks rte,mrpc,...] [--source hub|glue]

Write the GLUE folder layout that `data_root` reads: DIR/<GLUE folder>/train.tsv and dev.tsv (MNLI:
dev_matched.tsv, dev_mismatched.tsv), one folder per task. Needs a network.

  --tasks    comma-separated, of: {tasks} (default: all)
  --source   hub   the Hugging Face Hub's nyu-mll/glue (default; needs the `datasets` package)
             glue  GLUE's own zip files (every task but mrpc, which GLUE never hosted)
then: peftbench run task=glue/rte data_root=DIR
""".format(tasks=", ".join(GLUE_TASKS))


def main(argv: list[str]) -> int:
    """`peftbench data ...`: only `glue` so far."""
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv[0] != "glue":
        raise unknown_name("data set", argv[0], ("glue",), hint="See `peftbench data --help`.")
    parser = argparse.ArgumentParser(prog="peftbench data glue", add_help=False)
    parser.add_argument("dir")
    parser.add_argument("--tasks", default=",".join(GLUE_TASKS))
    parser.add_argument("--source", default="hub")
    args, extra = parser.parse_known_args(argv[1:])
    if extra:
        raise UserError(f"data glue: unknown argument(s) {' '.join(extra)}. {USAGE.splitlines()[0]}")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for name in tasks:
        if name not in GLUE_TASKS:
            raise unknown_name("GLUE task", name, GLUE_TASKS, hint="Give --tasks as e.g. rte,mrpc.")
    if args.source not in SOURCES:
        raise unknown_name("--source", args.source, SOURCES)
    if args.source == "glue" and "mrpc" in tasks:
        raise UserError("--source glue: GLUE never hosted MRPC's files (Microsoft's licence). Get mrpc with "
                        "--source hub, or leave it out of --tasks.")
    for name in tasks:
        folder, rows = write_task(name, Path(args.dir).expanduser(), args.source)
        print(f"glue/{name}: {folder} ({', '.join(f'{s} {n}' for s, n in rows.items())} examples)")
    print(f"then: peftbench run task=glue/{tasks[0]} data_root={args.dir}")
    return 0


def task_config(name: str):
    from ..config.compose import compose

    return compose([f"task=glue/{name}"]).task


def write_task(name: str, root: Path, source: str, fetch=None) -> tuple[Path, dict[str, int]]:
    """Write one task's files under root/<data_subdir>/ and read them back through the task loader:
    (the folder, {split: examples read back})."""
    from .loading import load_task

    task = task_config(name)
    folder = root / task.data_subdir  # made only once the download worked
    if source == "hub":
        write_from_hub(task, folder)
    else:
        write_from_glue_zip(name, folder, fetch or fetch_url)
    data = load_task(task, data_root=str(root))
    return folder, {task.train_split: len(data.train), **{s: len(df) for s, df in data.evals.items()}}


def split_files(task) -> dict[str, str]:
    """{split: file stem} the loader looks for first (validation -> dev, as GLUE names it)."""
    splits = [task.train_split, *eval_splits(task)]
    return {s: (list(task.files[s])[0] if s in task.files else "dev" if s == "validation" else s) for s in splits}


def write_from_hub(task, folder: Path) -> None:
    try:
        import datasets
    except ImportError:
        raise UserError(f"task '{task.name}': --source hub needs the `datasets` package: pip install datasets "
                        "(or use --source glue).") from None
    try:
        ds = datasets.load_dataset(task.dataset, task.subset)
    except Exception as exc:  # offline, a hub outage, no access: one message
        first = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(f"task '{task.name}': cannot download {task.dataset} ({task.subset}) from the Hugging Face "
                        f"Hub: {type(exc).__name__}: {first}. `peftbench data` needs a network. {OFFLINE_HINT}") from exc
    folder.mkdir(parents=True, exist_ok=True)
    for split, stem in split_files(task).items():
        if split not in ds:
            raise UserError(f"task '{task.name}': the hub's {task.dataset}/{task.subset} has no split '{split}' "
                            f"(it has {', '.join(ds)}).")
        write_tsv(task, ds[split].to_pandas(), folder / f"{stem}.tsv")


def write_tsv(task, frame, path: Path) -> None:
    """GLUE's TSV as the loader reads it: unquoted, tab-separated; a header of the task's fields and `label`,
    or the task's header-less `tsv_columns` (CoLA) with the columns the hub lacks left empty. A tab or line
    break inside a text (the format cannot hold one) becomes a space."""
    columns = list(task.tsv_columns) if task.tsv_columns else [*task.text_fields, "label"]
    texts = set(task.text_fields)

    def cell(row, column) -> str:
        if column == task.label_field or column == "label":
            value = row[task.label_field]
            return repr(float(value)) if not task.label_names else str(int(value))
        if column not in texts:
            return ""
        return " ".join(str(row[column]).replace("\t", " ").splitlines())

    lines = [] if task.tsv_columns else ["\t".join(columns)]
    lines += ["\t".join(cell(row, c) for c in columns) for row in frame.to_dict("records")]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def fetch_url(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def write_from_glue_zip(name: str, folder: Path, fetch) -> None:
    """GLUE's zip for the task: its train and dev files (not test, whose labels GLUE hides) into `folder`."""
    url = f"{GLUE_ZIPS}{ZIP_NAMES[name]}.zip"
    try:
        blob = fetch(url)
    except OSError as exc:  # URLError, timeouts, no route: all mean no network here
        raise UserError(f"task 'glue/{name}': cannot download {url} ({exc}). `peftbench data` needs a network. "
                        f"{OFFLINE_HINT}") from exc
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        members = [m for m in archive.namelist() if Path(m).name.startswith(("train.", "dev")) and
                   Path(m).suffix == ".tsv"]
        if not members:
            raise UserError(f"task 'glue/{name}': {url} holds no train/dev TSV files ({len(archive.namelist())} "
                            "entries). Use --source hub.")
        for member in members:
            with archive.open(member) as src, open(folder / Path(member).name, "wb") as dst:
                shutil.copyfileobj(src, dst)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
