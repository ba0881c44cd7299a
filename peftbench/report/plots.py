"""`peftbench report --plots DIR`: the page's views as paper figures, PNG and PDF. Score (the avg over
tasks, or the one task's score) against trainable parameters (head excluded, as the table counts them;
log x), peak memory and training samples/s, each with seed error bars, its Pareto front, points coloured
by method family and labels placed apart (adjustText, `pip install peftbench[plots]`; without it labels
sit beside their points); peak memory as bars; per task the training loss and (runs evaluated more than
once) the eval curves. Memory and speed only from runs measured alone (runs.measured_alone): a view with
none is left out, and a line says why.
The numbers are the page's (`pagedata`). matplotlib is imported only here."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from .families import colour
from .pagedata import page_data
from .tables import Table

VIEWS = {  # name -> (x key, axis label, log x, lower x is better)
    "score_vs_params": ("params", "trainable parameters, head excluded (log scale)", True, True),
    "score_vs_memory": ("memory", "peak training memory, MB (runs measured alone)", False, True),
    "score_vs_throughput": ("throughput", "training samples/s (runs measured alone)", False, False),
}


def pareto_front(points: list[tuple[float, float]], lower_x: bool = True) -> list[tuple[float, float]]:
    """Points no other point beats on both axes (higher y, and lower x or with lower_x=False higher x),
    in x order from the best x."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0] if lower_x else -p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def view_points(points: list[dict], x: str, y: str) -> tuple[list[dict], list[str]]:
    """([{label, family, x, xerr, y, yerr}], labels left out for want of a score or a cost figure)."""
    shown, missing = [], []
    for p in points:
        score = p["avg"] if y == "avg" else p["scores"].get(y)
        cost = {"mean": max(p["params"], 1), "std": None} if x == "params" else p[x]
        if not score or not cost:
            missing.append(p["label"])
            continue
        shown.append({"label": p["label"], "family": p["family"], "x": cost["mean"], "xerr": cost["std"] or 0,
                      "y": score["mean"], "yerr": score["std"] or 0})
    return shown, missing


def place_labels(ax, texts: list) -> None:
    try:
        from adjustText import adjust_text
    except ImportError:  # optional: labels stay beside their points
        return
    adjust_text(texts, ax=ax, arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.6})


def scatter(plt, shown: list[dict], missing: list[str], view: tuple, ylabel: str):
    x_key, xlabel, log, lower = view
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for fam in sorted({p["family"] for p in shown}):
        group = [p for p in shown if p["family"] == fam]
        ax.errorbar([p["x"] for p in group], [p["y"] for p in group], yerr=[p["yerr"] for p in group],
                    xerr=[p["xerr"] for p in group] if x_key != "params" else None, fmt="o", ms=5, capsize=3,
                    elinewidth=1, color=colour(fam), label=fam, zorder=3)
    front = pareto_front([(p["x"], p["y"]) for p in shown], lower)
    if len(front) > 1:
        ax.step([f[0] for f in front], [f[1] for f in front], where="post" if lower else "pre", color="tab:red",
                lw=1, ls="--", alpha=0.6, label="Pareto front", zorder=2)
    if log:
        ax.set_xscale("log")
    texts = [ax.text(p["x"], p["y"], " " + p["label"], fontsize=8, va="center", zorder=4) for p in shown]
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="best", frameon=False)
    place_labels(ax, texts)
    caption = "Bars: ± std over seeds" + (" (avg: the tasks' std combined)" if "avg" in ylabel else "") + "."
    if missing:
        caption += f" Not shown: {', '.join(missing)}."
    fig.text(0.01, 0.005, caption, fontsize=6.5, wrap=True)
    return fig


def memory_bars(plt, points: list[dict]):
    measured = sorted((p for p in points if p["memory"]), key=lambda p: p["memory"]["mean"])
    fig, ax = plt.subplots(figsize=(6.4, 0.35 * len(measured) + 1.4))
    bars = ax.barh([p["label"] for p in measured], [p["memory"]["mean"] for p in measured],
                   xerr=[p["memory"]["std"] or 0 for p in measured], color=[colour(p["family"]) for p in measured])
    ax.bar_label(bars, labels=[f"{p['memory']['mean']:.0f}" for p in measured], padding=3, fontsize=8)
    ax.set(xlabel="peak training memory, MB (runs measured alone; mean over tasks)")
    ax.margins(x=0.15)
    return fig


def run_curve(run: dict, kind: str) -> dict:
    """{step: value}: the training loss, or the first metric of each evaluation (× 100)."""
    if kind == "loss":
        return {step: loss for step, loss in run["loss"]}
    return {e["step"]: 100 * v for e in run["evals"]
            for v in [next((e[k] for k in e if k != "step"), None)] if v is not None}


def curves(plt, data: dict, kind: str):
    """One panel per task: each row's training loss (kind "loss") or eval metric ("eval"), the mean over
    its seeds at each step they share."""
    tasks = data["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks) + 1.6, 3.2), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, task in zip(axes[0], tasks):
        seen: dict[str, int] = {}
        for row in (r for r in data["rows"] if r["task"] == task):
            lines = [run_curve(data["runs"][i], kind) for i in row["runs"]]
            steps = sorted(set.intersection(*(set(c) for c in lines))) if lines else []
            if not steps:
                continue
            style = styles[seen.setdefault(row["family"], 0) % len(styles)]
            seen[row["family"]] += 1
            ax.plot(steps, [statistics.fmean(c[s] for c in lines) for s in steps], ls=style, lw=1,
                    marker="o" if kind == "eval" else None, ms=3, color=colour(row["family"]), label=row["label"])
        ax.set(title=task, xlabel="step")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("training loss (mean over seeds)" if kind == "loss" else "eval metric × 100 (mean over seeds)")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="center right", frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 1.5 / fig.get_figwidth(), 1))
    return fig


def save_plots(table: Table, ok: list[dict], keys: list[str], out_dir: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    data = page_data(ok, keys, out)
    budgets = sorted({p["budget"] for p in data["points"]})
    points = [p for p in data["points"] if p["budget"] == budgets[0]]
    if len(budgets) > 1:
        print(f"plots: only the budget '{budgets[0]}' (of {', '.join(budgets)}); --tasks or --methods pick others.",
              file=sys.stderr)
    tasks = data["tasks"]
    y, ylabel = ("avg", f"avg over {len(tasks)} tasks (task scores × 100)") if len(tasks) > 1 else \
        (tasks[0], f"{tasks[0]} score × 100")
    figures = {}
    for name, view in VIEWS.items():
        shown, missing = view_points(points, view[0], y)
        if len(shown) < 1:
            print(f"plots: no {name} ({view[0]} only from runs measured alone; none here).", file=sys.stderr)
            continue
        figures[name] = scatter(plt, shown, missing, view, ylabel)
    if any(p["memory"] for p in points):
        figures["memory"] = memory_bars(plt, points)
    if any(run["loss"] for run in data["runs"]):
        figures["loss"] = curves(plt, data, "loss")
    if any(len(run["evals"]) > 1 for run in data["runs"]):  # one evaluation per run draws no curve
        figures["eval"] = curves(plt, data, "eval")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        if name not in ("loss", "eval"):
            fig.tight_layout(rect=(0, 0.03, 1, 1))  # room for the caption line
        for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None})):
            paths.append(out / f"{name}.{ext}")
            fig.savefig(paths[-1], dpi=150, metadata=meta)
        plt.close(fig)
    return paths
