"""Quantised bases (`model.quantization=4bit|8bit`, QLoRA-style): the checkpoint's linear layers are
loaded through bitsandbytes (4-bit NF4 with double quantisation and bf16 compute, as the QLoRA paper;
or LLM.int8()), then peft's `prepare_model_for_kbit_training` freezes the base, casts the remaining
full-precision tensors (norms, embeddings) to fp32 and makes the inputs require grad, before the method
is applied. bitsandbytes is an optional extra: `pip install 'peftbench[quant]'`. bitsandbytes >= 0.48
runs both on CPU too (checked with 0.50.2); older versions need a CUDA GPU.

bitsandbytes' CPU repacking is switched off on every 4-bit layer (`cpu_repacking_off`). On a CPU with
AVX512-BF16, a `Linear4bit` repacks its weight for a fused inference kernel the first time it runs in eval
mode without grad. That repacking reshapes the block scales to (out, in // blocksize), which fails for a
layer narrower than one block (tiny-llama: in 32 < blocksize 64, "shape '[32, 0]' is invalid for input of
size 16"), and it is never undone when training resumes: the repacked layer then runs through
`gemv_4bit`, which has no backward, after every mid-run evaluation. Evaluation on such CPUs uses the
ordinary dequantise-and-multiply path instead (slower, and the same path training uses).

Counting: a packed 4-bit weight holds two values per byte, so its tensor's `numel()` is half the
layer's parameter count. `param_count` counts the layer's parameters (the shape bitsandbytes keeps in
the weight's quant_state), so base and trainable percentages mean what they mean for a full-precision
model.
"""

from __future__ import annotations

import importlib.util
import os

from ..errors import UserError

CHOICES = ("4bit", "8bit")


def quantization_kwargs(model_cfg, hardware_cfg) -> dict:
    """`from_pretrained` keyword arguments for `model.quantization` (nothing when it is null)."""
    q = model_cfg.get("quantization")
    if not q:
        return {}
    if q not in CHOICES:
        raise UserError(f"model.quantization='{q}': must be one of {', '.join(CHOICES)} (or null).")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError(f"model.quantization={q} needs bitsandbytes, which is not installed: "
                        "pip install 'peftbench[quant]' (or pip install bitsandbytes).")
    if not model_cfg.name_or_path:
        raise UserError(f"model.quantization={q} quantises a checkpoint as it loads; model '{model_cfg.name}' is "
                        "built from model.arch with random weights. Give model.name_or_path (a hub id or a folder).")
    import torch
    from transformers import BitsAndBytesConfig

    if q == "4bit":
        config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                    bnb_4bit_compute_dtype=torch.bfloat16)
    else:
        config = BitsAndBytesConfig(load_in_8bit=True)
    on_gpu = hardware_cfg.device != "cpu" and torch.cuda.is_available()
    device = int(os.environ.get("LOCAL_RANK", 0)) if on_gpu else "cpu"  # one whole copy per process (DDP)
    return {"quantization_config": config, "device_map": {"": device}}


def prepare_kbit(model, gradient_checkpointing: bool):
    """peft's k-bit preparation (base frozen, fp32 norms, input grads); checkpointing is left to
    `train.gradient_checkpointing` (train/grad_checkpointing.py), as for any model."""
    from peft import prepare_model_for_kbit_training

    cpu_repacking_off(model)
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)


def cpu_repacking_off(model) -> None:
    """Keep every 4-bit layer in the layout training uses (see the module docstring)."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):  # bitsandbytes' Linear4bit (>= 0.48)
            module.support_avx512bf16_for_cpu = False


def param_count(param) -> int:
    """Parameters a tensor stands for: a packed 4-bit weight counts its layer's full shape."""
    state = getattr(param, "quant_state", None)
    shape = getattr(state, "shape", None)
    if shape is not None:
        n = 1
        for d in shape:
            n *= int(d)
        return n
    return param.numel()
