"""Training memory of VQT beside LST, VPT, LoRA and full fine-tuning on a ViT, each in a fresh process.

    python scripts/vqt_memory.py            # tiny-vit grown to ViT-Ti/16 size (d=192, 12 layers, 224 px)
    python scripts/vqt_memory.py --quick    # tiny-vit as it is (d=32, 2 layers, 32 px): a smoke test

VQT (Tu et al. 2023) and LST (Sung et al. 2022) both keep the backbone out of the backward pass; VPT
and LoRA back-propagate through it. Two figures: the run file's `peak_rss_mb - rss_before_train_mb`
(CPU) or `cuda_max_allocated_mb` (GPU), from scripts/bench.py's fresh-process worker, on synthetic
CIFAR-10-layout images (tests/taskdata.py); and, exact and noise-free, the bytes autograd keeps for
the backward pass of one training batch (tensors saved by the forward, weights and inputs left out).
Random weights: memory does not depend on their values.
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


def saved_for_backward_mb(overrides: list[str], batch: int) -> float:
    """MB of activations autograd keeps from one training forward (distinct storages; no weights)."""
    import torch

    from bench import compose
    from peftbench.methods.counting import build_counted

    torch.manual_seed(0)
    cfg = compose(*overrides)
    model = build_counted(cfg, len(cfg.task.label_names))[0].train()
    size = cfg.model.arch.image_size
    saved = {}

    def pack(t):
        if not isinstance(t, torch.nn.Parameter) and not (t.is_leaf and t.requires_grad):
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(pixel_values=torch.randn(batch, 3, size, size), labels=torch.zeros(batch, dtype=torch.long))
    return sum(saved.values()) / 2**20


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny-vit as it is (d=32, 2 layers)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--hardware", default="cpu", help="cpu (peak RSS) or gpu (CUDA peak allocated)")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
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
            saved = saved_for_backward_mb([*common, f"method={method}"], args.batch)
            rows.append([method, f"{train_mb:.0f}", f"{saved:.1f}", f"{speed['train_s_per_step'] * 1000:.0f}"])
    full, full_saved = float(rows[0][1]) or 1.0, float(rows[0][2]) or 1.0
    rows = [[r[0], r[1], f"{float(r[1]) / full:.2f}", r[2], f"{float(r[2]) / full_saved:.2f}", r[3]] for r in rows]
    size = "tiny-vit (d=32, 2 layers, 32 px)" if args.quick else "tiny-vit at ViT-Ti/16 size (d=192, 12 layers, 224 px)"
    table(f"Training memory on {size}, batch {args.batch}, {args.steps} steps, {args.hardware}, fresh process each",
          ["method", "training MB (RSS)", "÷ full", "saved for backward, MB", "÷ full", "ms/step"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
