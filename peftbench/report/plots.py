"""`peftbench report --plots DIR`: score vs trainable parameters (log x) and vs peak memory, each with
its Pareto front, and peak memory per method as bars. PNG and PDF. matplotlib is imported only here."""

from __future__ import annotations

import statistics
from pathlib import Path

from .runs import group_rows, peak_memory_mb
from .tables import Table


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both axes (lower x, higher y), sorted by x."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _rows(table: Table, ok: list[dict], keys: list[str]) -> list[dict]:
    runs = group_rows(ok, keys)
    return [{"label": " / ".join(key), "score": cells["avg"].value if "avg" in cells else None,
             "params": statistics.fmean(r["params"]["trainable"] for r in runs[key]),
             "memory": statistics.fmean(peak_memory_mb(r) for r in runs[key])}
            for key, cells in table.rows]


def _scatter(plt, rows: list[dict], x: str, xlabel: str, ylabel: str, title: str, log: bool):
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    shown = [r for r in rows if r["score"] is not None]
    ax.scatter([r[x] for r in shown], [r["score"] for r in shown], s=36, zorder=3)
    for r in shown:
        ax.annotate(r["label"], (r[x], r["score"]), textcoords="offset points", xytext=(5, 4), fontsize=9)
    front = pareto_front([(r[x], r["score"]) for r in shown])
    if len(front) > 1:
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="tab:red", lw=1.2,
                label="Pareto front (fewer/less and better)", zorder=2)
        ax.legend(loc="lower right", fontsize=8)
    if log:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(True, which="both", alpha=0.3)
    left_out = [r["label"] for r in rows if r["score"] is None]
    if left_out:
        fig.text(0.01, 0.01, f"not shown (missing a task): {', '.join(left_out)}", fontsize=7)
    return fig


def save_plots(table: Table, ok: list[dict], keys: list[str], out_dir: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _rows(table, ok, keys)
    tasks = sorted({r["task"] for r in ok})
    ylabel = (f"{tasks[0]} score" if len(tasks) == 1 else f"avg over {len(tasks)} tasks") + \
        " (mean of official metrics × 100)"
    device = "CUDA max allocated" if any((r.get("memory") or {}).get("cuda_max_allocated_mb") for r in ok) \
        else "RSS added by training, CPU"
    figures = {
        "score_vs_params": _scatter(plt, rows, "params", "trainable parameters, head included (log scale)",
                                    ylabel, "Score vs trainable parameters", log=True),
        "score_vs_memory": _scatter(plt, rows, "memory", f"peak training memory, MB ({device})", ylabel,
                                    "Score vs peak memory", log=False),
    }
    fig, ax = plt.subplots(figsize=(6.4, 0.5 * len(rows) + 1.5))
    by_memory = sorted(rows, key=lambda r: r["memory"])
    bars = ax.barh([r["label"] for r in by_memory], [r["memory"] for r in by_memory], color="tab:blue")
    ax.bar_label(bars, labels=[f"{r['memory']:.0f} MB" for r in by_memory], padding=3, fontsize=9)
    ax.set(xlabel=f"peak training memory, MB ({device}; mean over runs)", title="Peak memory per method")
    ax.margins(x=0.15)
    figures["memory"] = fig
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        fig.tight_layout()
        for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None})):
            paths.append(out / f"{name}.{ext}")
            fig.savefig(paths[-1], dpi=150, metadata=meta)
        plt.close(fig)
    return paths
