"""Section 4, scaling: time and memory per step as batch size and sequence length double; leaks across
steps (a run 4x as long) and across runs (three runs in one process)."""

from __future__ import annotations

import gc
from pathlib import Path

from .common import base_overrides, peftbench_run, table, warn, worker


def long_texts(folder: Path, n: int = 600) -> Path:
    """GLUE SST-2 files whose sentences are long enough to fill any max_length up to 256 tokens."""
    from peftbench.tasks.synthetic import sentiment

    data = sentiment(n_train=n * 12, n_eval=64 * 12)
    for split, name in (("train", "train.tsv"), ("validation", "dev.tsv")):
        df = data[split]
        rows = [(" ".join(df.sentence[i:i + 12]), df.label[i]) for i in range(0, len(df), 12)]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows))
    return folder


def scaling(args) -> None:
    data = long_texts(Path(args.tmp) / "long")
    common = [o for o in base_overrides(args, args.mem_steps) if not o.startswith("task.")] + \
        ["method=lora", "task=glue/sst2", f"task.data_dir={data}"]
    rows, previous, done = [], {}, {}
    points = [("batch", b, args.seq) for b in args.batches] + [("seq", args.batch_for_seq, s) for s in args.seqs]
    for axis, batch, seq in points:
        if (batch, seq) not in done:
            done[batch, seq] = worker([*common, f"train.batch_size={batch}", f"model.max_length={seq}"])
        out = done[batch, seq]
        ms, mem = out["throughput"]["train_s_per_step"] * 1000, out["memory"]
        delta = mem["peak_rss_mb"] - mem["rss_before_train_mb"]
        last = previous.get(axis)
        rows.append([axis, batch, seq, f"{ms:.1f}", f"{ms / last[0]:.2f}" if last else "-", f"{delta:.0f}",
                     f"{out['throughput']['train_tokens_per_s']:.0f}"])
        previous[axis] = (ms, delta)
    table(f"4a. Scaling ({args.model} + lora, fresh process per point, {args.mem_steps} steps)",
          ["doubling", "batch", "seq len", "ms/step", "× previous", "training MB", "tokens/s"], rows)

    small = ["train.batch_size=8", "model.max_length=32"]  # leaks show at any size: the cheapest point
    short, long = (worker([*common, f"train.max_steps={n}", *small]) for n in (args.mem_steps, 4 * args.mem_steps))
    leak_rows = [[f"{n} steps", f"{o['memory']['peak_rss_mb']:.0f}", f"{o['throughput']['train_s_per_step'] * 1000:.1f}"]
                 for n, o in ((args.mem_steps, short), (4 * args.mem_steps, long))]
    import psutil

    process, after = psutil.Process(), []
    for r in range(3):  # three runs of one sweep process: what is left after each
        peftbench_run([*common, *small, f"seed={r}"], Path(args.tmp) / f"leak{r}")
        gc.collect()
        after.append(process.memory_info().rss / 2**20)
    leak_rows += [[f"in-process run {r + 1}", "-", "-", f"{rss:.0f}"] for r, rss in enumerate(after)]
    table("4b. Leaks (batch 8, seq 32): peak RSS of a run 4x as long (fresh processes); RSS after each of 3 runs "
          "in one process",
          ["run", "peak RSS MB", "ms/step", "RSS after run MB"], [row + [""] if len(row) == 3 else row
                                                                  for row in leak_rows])
    growth = long["memory"]["peak_rss_mb"] - short["memory"]["peak_rss_mb"]
    if growth > 50:
        warn(f"a run 4x as long peaked {growth:.0f} MB higher: memory grows with steps")
    if after[2] - after[1] > 50:
        warn(f"RSS grew by {after[2] - after[1]:.0f} MB from the 2nd to the 3rd run in one process")
