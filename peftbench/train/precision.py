"""`hardware.mixed_precision`: what a run computes in, and why.

`no`, `bf16` and `fp16` are taken as given (fp16 needs CUDA: runner refuses it elsewhere). `auto` picks
bf16 autocast (fp32 master weights: the optimizer updates fp32 tensors, matrix products run in bf16)
where the hardware computes bf16 natively, and fp32 elsewhere:

- CUDA: `torch.cuda.is_bf16_supported()` (Ampere and later);
- CPU: the `avx512_bf16` or `amx_bf16` flag in /proc/cpuinfo (recent Intel Xeon, AMD Zen 4 and later).
  Without them torch still runs bf16 on a CPU, but by emulation, slower than fp32.

Only `auto` looks at the hardware: a hardware file or protocol that states a precision keeps it. The run
file records the setting, the choice and the reason (`memory`/`throughput`: mixed_precision,
mixed_precision_setting, mixed_precision_why).
"""

from __future__ import annotations

from pathlib import Path

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (Linux; an empty set where /proc/cpuinfo is not there)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def resolve(setting: str, on_cpu: bool, flags: set[str] | None = None) -> tuple[str, str]:
    """(the precision the run uses, why): `setting` itself unless it is `auto`."""
    if setting != "auto":
        return setting, f"hardware.mixed_precision={setting}"
    if not on_cpu:
        import torch

        if torch.cuda.is_bf16_supported():
            return "bf16", f"auto: CUDA device {torch.cuda.get_device_name()} supports bf16"
        return "no", f"auto: CUDA device {torch.cuda.get_device_name()} has no bf16: fp32"
    flags = cpu_flags() if flags is None else flags
    found = [f for f in CPU_BF16_FLAGS if f in flags]
    if found:
        return "bf16", f"auto: CPU flags {', '.join(found)}"
    return "no", f"auto: CPU has none of {', '.join(CPU_BF16_FLAGS)} (bf16 would be emulated): fp32"
