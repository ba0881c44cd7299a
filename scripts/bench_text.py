"""Section 7 of scripts/bench.py (`--only text-throughput`): training throughput on real text.

MiniLM + LoRA on real SST-2 and RTE (`--data-root`, a folder laid out as GLUE distributes it), for
{fp32, bf16 autocast} x {batches as drawn, grouped by length (`train.group_by_length`)}, and HF Trainer +
peft at the settings of peftbench's fast one (`train_sampling_strategy="group_by_length"`, `bf16` where
`hardware.mixed_precision=auto` picks it) as the peer. Rounds alternate the order of the runs (load from
other processes hits every configuration alike); each round uses its own seed, so the batches in the timed
window differ from round to round and the spread shows that too. Ratios are per round, then the median
and the range over rounds. The peer is compared per real (non-padding) token: its sampler draws other
batches than peftbench's. Where the hardware has no native bf16 (`auto` picks fp32) the bf16 rows are left
out: emulated bf16 multiplies matrices about 30x slower than fp32 on an AVX2-only CPU. Targets (SST-2): grouped + auto precision >= 2.0x the samples/s of fp32 as drawn,
and >= 1.0x Trainer's real tokens/s; a WARNING line says when either is missed.

`--quick`: the tiny model on the demo task, 2 rounds (a smoke test). `bench` is scripts/bench.py's module:
its compose, peftbench_run, peft_model, loader_for, table and warn.
"""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path

CONFIGS = (("no", False), ("no", True), ("bf16", False), ("bf16", True))  # (mixed precision, grouped)
TARGET_SPEEDUP, TARGET_VS_TRAINER = 2.0, 1.0


def section(args, bench) -> None:
    from peftbench.train.precision import resolve

    import torch

    fast_precision, why = resolve("auto", on_cpu=not torch.cuda.is_available())
    configs = CONFIGS if fast_precision == "bf16" else CONFIGS[:2]
    if fast_precision != "bf16":  # emulated bf16 matrix products: ~30x slower than fp32 on an AVX2-only CPU
        print(f"\n(bf16 rows left out: {why})")
    if args.quick:
        plan, rounds = [("demo", ["task.generator_args.n_train=512", "task.generator_args.n_eval=32"], 8, 2)], 2
    elif not getattr(args, "data_root", None):
        bench.warn("text-throughput skipped: give --data-root <folder with GLUE's SST-2/ and RTE/ files>")
        return
    else:
        plan, rounds = [("glue/sst2", [f"data_root={args.data_root}"], 30, 5),
                        ("glue/rte", [f"data_root={args.data_root}"], 12, 3)], 3
    for task, extra, steps, warmup in plan:
        common = [f"model={args.model}", "method=lora", f"task={task}", *extra, f"train.max_steps={steps}",
                  f"train.throughput_warmup_steps={warmup}", f"train.batch_size={args.batch}", "train.log_every=5",
                  "train.checkpoint_every=0", "train.save_trainable=false", "task.max_eval_samples=32",
                  f"results_dir={args.tmp}", "cache_dir=null"]
        runs, peer = _rounds(args, bench, common, task, steps, warmup, rounds, fast_precision, configs)
        _report(args, bench, task, steps, warmup, runs, peer, fast_precision, why, check=not args.quick and task == "glue/sst2")


def _rounds(args, bench, common, task, steps, warmup, rounds, fast_precision, configs) -> tuple[dict, list]:
    """{config: [throughput block per round]}, [(Trainer samples/s, real tokens/s, real/padded) per round]."""
    runs, peer = {c: [] for c in configs}, []
    for r in range(rounds):
        order = [*configs[r % len(configs):], *configs[:r % len(configs)]]
        sides = ["trainer", *order] if r % 2 == 0 else [*order, "trainer"]
        for side in sides:
            seed = f"seed={r + 1}"
            if side == "trainer":
                cfg = bench.compose(*common, seed, "train.group_by_length=true")
                peer.append(trainer_rates(bench, cfg, steps, warmup, fast_precision, Path(args.tmp) / f"hf{r}"))
            else:
                precision, grouped = side
                record = bench.peftbench_run([*common, seed, f"hardware.mixed_precision={precision}",
                                              f"train.group_by_length={str(grouped).lower()}"],
                                             Path(args.tmp) / f"text-{task.replace('/', '-')}-{precision}-{grouped}-{r}")
                runs[side].append(record["throughput"])
            gc.collect()
    return runs, peer


def trainer_rates(bench, cfg, steps: int, warmup: int, precision: str, out_dir: Path) -> tuple[float, float, float]:
    """HF Trainer + peft LoRA with its own length-grouped sampler and collator, as a user writes it; samples/s,
    real tokens/s and real/padded tokens of steps warmup+1..steps (peftbench's window)."""
    import torch
    from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    from peftbench.models import load_tokenizer

    loader, num_labels = bench.loader_for(cfg)
    counts = {"began": None, "ended": 0.0, "samples": 0, "tokens": 0, "padded": 0}

    class Counted(Trainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            if self.state.global_step >= warmup:  # steps warmup+1.. (global_step counts finished steps)
                mask = inputs["attention_mask"]
                counts["samples"] += mask.shape[0]
                counts["tokens"] += int(mask.sum())
                counts["padded"] += mask.numel()
            return super().training_step(model, inputs, num_items_in_batch)

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if warmup == 0:
                counts["began"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            counts["ended"] = time.perf_counter()
            if state.global_step == warmup:
                counts["began"] = counts["ended"]

    t = cfg.train
    targs = TrainingArguments(output_dir=str(out_dir), max_steps=steps, per_device_train_batch_size=t.batch_size,
                              learning_rate=t.lr, weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm,
                              warmup_steps=int(t.warmup_ratio * steps), lr_scheduler_type="linear",
                              train_sampling_strategy="group_by_length", bf16=precision == "bf16",
                              logging_steps=t.log_every, save_strategy="no", eval_strategy="no", report_to="none",
                              disable_tqdm=True, use_cpu=not torch.cuda.is_available(), seed=cfg.seed,
                              dataloader_num_workers=0)
    tokenizer = load_tokenizer(cfg.model)
    trainer = Counted(model=bench.peft_model(cfg, "lora", num_labels), args=targs, train_dataset=loader.dataset,
                      data_collator=DataCollatorWithPadding(tokenizer), callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)  # its metrics line on stdout
    trainer.train()
    seconds = counts["ended"] - counts["began"]
    return counts["samples"] / seconds, counts["tokens"] / seconds, counts["tokens"] / max(1, counts["padded"])


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def _report(args, bench, task, steps, warmup, runs, peer, fast_precision, why, check: bool) -> None:
    base = runs[("no", False)]
    rows = []
    for (precision, grouped), blocks in runs.items():
        speedups = [b["train_samples_per_s"] / a["train_samples_per_s"] for a, b in zip(base, blocks)]
        rows.append([f"{'bf16' if precision == 'bf16' else 'fp32'}{', grouped' if grouped else ''}",
                     f"{statistics.median(b['train_samples_per_s'] for b in blocks):.1f}",
                     f"{statistics.median(b['train_tokens_per_s'] for b in blocks):.0f}",
                     f"{statistics.median(b['padding_efficiency'] for b in blocks):.2f}", _spread(speedups), "–"])
    fast = runs[(fast_precision, True)]
    vs_peer = [b["train_tokens_per_s"] / p[1] for b, p in zip(fast, peer)]
    label = "bf16" if fast_precision == "bf16" else "fp32"
    rows.append([f"HF Trainer, {label}, grouped", f"{statistics.median(p[0] for p in peer):.1f}",
                 f"{statistics.median(p[1] for p in peer):.0f}", f"{statistics.median(p[2] for p in peer):.2f}",
                 _spread([p[0] / a["train_samples_per_s"] for a, p in zip(base, peer)]), _spread(vs_peer)])
    bench.table(f"7. Text throughput: {args.model} + lora on {task}, batch {args.batch}, {steps} steps ({warmup} "
                f"warm-up), {len(base)} alternating rounds (seed = round), medians (range over rounds); "
                f"auto precision here: {fast_precision} ({why})",
                ["configuration", "samples/s", "real tokens/s", "real/padded tokens", "samples/s ÷ fp32 as drawn",
                 f"peftbench {label} grouped ÷ Trainer, per real token"], rows)
    speedup = statistics.median(b["train_samples_per_s"] / a["train_samples_per_s"] for a, b in zip(base, fast))
    ratio = statistics.median(vs_peer)
    print(f"\n{task}: grouped + auto precision ({label}) {speedup:.2f}x the samples/s of fp32 as drawn "
          f"(target >= {TARGET_SPEEDUP}); {ratio:.2f}x HF Trainer's real tokens/s (target >= {TARGET_VS_TRAINER})")
    if check and speedup < TARGET_SPEEDUP:
        bench.warn(f"{task}: grouped + {label} trains at {speedup:.2f}x fp32 as drawn (target >= {TARGET_SPEEDUP}x)")
    if check and ratio < TARGET_VS_TRAINER:
        bench.warn(f"{task}: peftbench grouped + {label} at {ratio:.2f}x HF Trainer's real tokens/s "
                   f"(target >= {TARGET_VS_TRAINER}x)")
