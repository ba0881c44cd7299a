"""Section 3, memory: peak RSS while training full / lora / ia3 / lst, each in a fresh process (peak RSS
never goes down within a process, so methods measured one after another would inherit each other's
peaks; tracemalloc sees only Python's heap, not torch's tensors)."""

from __future__ import annotations

from .common import base_overrides, table, warn, worker


def memory(args) -> None:
    rows, deltas = [], {}
    for method in ("full", "lora", "ia3", "lst"):
        m = worker(base_overrides(args, args.mem_steps) + [f"method={method}"])["memory"]
        deltas[method] = m["peak_rss_mb"] - m["rss_before_train_mb"]
        rows.append([method, f"{m['rss_before_train_mb']:.0f}", f"{m['peak_rss_mb']:.0f}", f"{deltas[method]:.0f}"])
    for row, method in zip(rows, deltas):
        row.append(f"{deltas[method] / deltas['full']:.2f}" if deltas["full"] > 0 else "-")
    table(f"3. Memory while training, fresh process per method ({args.model}, batch {args.batch}, "
          f"{args.mem_steps} steps, MB)", ["method", "RSS before", "peak RSS", "training (peak - before)",
                                          "÷ full"], rows)
    for method in ("lora", "ia3", "lst"):
        if deltas[method] >= deltas["full"]:
            warn(f"{method} used no less training memory than full ({deltas[method]:.0f} vs {deltas['full']:.0f} MB)")
    if deltas["lst"] > 0.5 * deltas["full"]:
        warn(f"lst is not well under full ({deltas['lst']:.0f} vs {deltas['full']:.0f} MB)")
