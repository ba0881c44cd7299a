"""Section 6, concurrency: one run alone, two at once at torch's default threads (all cores each), two at
once with the cores split (`hardware.threads=auto` under a launcher running two): samples/s each and in all."""

from __future__ import annotations

from .common import base_overrides, start_worker, table, warn, worker_result


def concurrency(args) -> None:
    """Runs that share the machine: each in a fresh process; two start together and train 3x as long as
    section 1, so that their measured windows overlap. `all cores` is torch's default, one thread per core."""
    from peftbench.run.threads import available_cpus

    cpus = available_cpus()
    split = max(1, cpus // 2)
    steps = 3 * args.steps
    rows, totals = [], {}
    for label, n, threads in [("alone", 1, cpus), ("2 at once, all cores each", 2, cpus),
                              (f"2 at once, split ({split} each)", 2, split)]:
        procs = [start_worker(base_overrides(args, steps) + [f"hardware.threads={threads}", f"seed={i + 1}"])
                 for i in range(n)]
        figures = [worker_result(p)["throughput"] for p in procs]
        rates = [f["train_samples_per_s"] for f in figures]
        totals[label] = sum(rates)
        recorded = " + ".join(str(f["threads"]) for f in figures)  # as the run files record them
        rows.append([label, recorded, " + ".join(f"{r:.1f}" for r in rates), f"{sum(rates):.1f}"])
    table(f"6. Concurrency: {args.model} + lora, batch {args.batch}, {steps} steps, {cpus} CPUs, fresh process "
          "per run", ["runs", "threads per run", "samples/s each", "samples/s in all"], rows)
    default, shared = totals["2 at once, all cores each"], totals[rows[2][0]]
    print(f"\nsplit / all cores, two runs at once: {shared / default:.2f}x in all")
    if cpus > 1 and shared < default:
        warn(f"two runs with the cores split trained slower in all than at all cores each ({shared:.1f} vs "
             f"{default:.1f} samples/s)")
