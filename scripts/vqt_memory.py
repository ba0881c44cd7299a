"""Training memory of VQT beside LST, VPT, LoRA and full fine-tuning on a ViT, each in a fresh process.

    python scripts/vqt_memory.py            # tiny-vit grown to ViT-Ti/16 size (d=192, 12 layers, 224 px)
    python scripts/vqt_memory.py --quick    # tiny-vit as it is (d=32, 2 layers, 32 px): a smoke test

VQT (Tu et al. 2023) and LST (Sung et al. 2022) both keep the backbone out of the backward pass; VPT
and LoRA back-propagate through it. The figure is the run file's `peak_rss_mb - rss_before_train_mb`
(CPU) or `cuda_max_allocated_mb` (GPU), from scripts/bench.py's fresh-process worker, on synthetic
CIFAR-10-layout images (tests/taskdata.py). Random weights: memory does not depend on their values.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]

from bench import table, worker  # noqa: E402
from taskdata import cifar10  # noqa: E402

VIT_TI = ["model.arch.hidden_size=192", "model.arch.num_hidden_layers=12", "model.arch.num_attention_heads=3",
          "model.arch.intermediate_size=768", "model.arch.image_size=224", "model.arch.patch_size=16"]
METHODS = ["full", "lora", "vpt", "lst", "vqt"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny-vit as it is (d=32, 2 layers)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--hardware", default="cpu", help="cpu (peak RSS) or gpu (CUDA peak allocated)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = cifar10(Path(tmp) / "cifar10", n=4 * args.batch)
        common = ["model=tiny-vit", "task=cifar10", f"task.data_dir={data}", f"hardware={args.hardware}",
                  f"train.max_steps={args.steps}", f"train.batch_size={args.batch}", "train.checkpoint_every=0",
                  "train.save_trainable=false", "train.throughput_warmup_steps=2", "task.max_eval_samples=8",
                  "cache_dir=null", f"results_dir={tmp}", *([] if args.quick else VIT_TI)]
        rows = []
        for method in METHODS:
            out = worker([*common, f"method={method}"])
            mem, speed = out["memory"], out["throughput"]
            gpu = mem.get("cuda_max_allocated_mb")
            train_mb = gpu if gpu is not None else mem["peak_rss_mb"] - mem["rss_before_train_mb"]
            rows.append([method, f"{train_mb:.0f}", f"{speed['train_s_per_step'] * 1000:.0f}"])
    full = float(rows[0][1]) or 1.0
    rows = [r[:2] + [f"{float(r[1]) / full:.2f}"] + r[2:] for r in rows]
    size = "tiny-vit (d=32, 2 layers, 32 px)" if args.quick else "tiny-vit at ViT-Ti/16 size (d=192, 12 layers, 224 px)"
    table(f"Training memory on {size}, batch {args.batch}, {args.steps} steps, {args.hardware}, fresh process each",
          ["method", "training MB", "÷ full", "ms/step"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
