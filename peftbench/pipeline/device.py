"""The device a run asks for (`hardware.*`): accelerate's process state and `Accelerator`, made with it,
and the messages for a device that is not there."""

from __future__ import annotations

from ..errors import UserError


def process_state(hw):
    """accelerate's process state, made first with the device the run asks for: the first one made fixes
    the backend for the process, and one made without `cpu=True` on a machine without CUDA would make
    each process of a multi-process CPU run a lone process instead of a gloo group."""
    from accelerate import PartialState

    return PartialState(cpu=on_cpu(hw))


def make_accelerator(cfg, run_dir: str):
    """(accelerate's `Accelerator` for this run's device, precision, accumulation and trackers, the precision
    facts for the run file); refuses a device or precision that is not there rather than run on something
    else without a word. `hardware.mixed_precision=auto` is resolved here (train/precision.py)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from ..train import precision, trackers

    hw, t = cfg.hardware, cfg.train
    mixed, why = precision.resolve(hw.mixed_precision, on_cpu(hw))  # `auto`: what this hardware has
    # accelerate keeps one state per process and refuses another precision: a run of another precision earlier
    # in this process (a multirun over hardware.mixed_precision, a test session) would stop this one
    if AcceleratorState._shared_state.get("_mixed_precision", mixed) != mixed:
        AcceleratorState._reset_state()
    accelerator = Accelerator(cpu=on_cpu(hw), mixed_precision=mixed,
                              gradient_accumulation_steps=t.grad_accum,
                              **trackers.accelerator_kwargs(t.log_with, run_dir))
    if hw.device == "cuda" and accelerator.device.type != "cuda":
        raise no_cuda(hw)
    if mixed != "no" and not accelerator.native_amp:  # accelerate would run fp32 without a word
        raise UserError(f"hardware.mixed_precision={mixed}: no autocast to it on {accelerator.device.type} "
                        "(fp16 needs a CUDA GPU). On CPU use hardware.mixed_precision=bf16 or no.")
    return accelerator, {"mixed_precision": mixed, "mixed_precision_setting": hw.mixed_precision,
                         "mixed_precision_why": why}


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def no_cuda(hw) -> UserError:
    import torch

    return UserError(f"hardware={hw.name} (hardware.device=cuda): torch {torch.__version__} sees no CUDA device here. "
                     "Use hardware=cpu or hardware=auto, or install a CUDA build of torch (README, GPU users).")


def on_cpu(hw) -> bool:
    import torch

    return hw.device == "cpu" or (hw.device == "auto" and not torch.cuda.is_available())


def is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process
