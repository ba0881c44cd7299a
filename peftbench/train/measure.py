"""How a run measures itself: training throughput after a warm-up with evaluation taken out
(`StepTimer`), and peak memory during training (`PeakMemory`: CUDA allocator peaks on GPU, the process's
peak RSS everywhere: the kernel's high-water mark on Linux, sampled elsewhere). README.md, "Measurement", documents the protocol."""

from __future__ import annotations

import contextlib
import threading
import time

import psutil

from ..errors import UserError

MB = 1024 * 1024


class StepTimer:
    """Throughput over the optimizer steps after the first `warmup_steps`, with pauses taken out.

    `start()` before the first step; per batch `add_batch(samples, tokens, padded_tokens)`; per
    optimizer step `step()`; `with timer.paused():` around evaluation and checkpoints; `stop()` at the
    end. The window opens when warm-up step `warmup_steps` ends (at `start()` when it is 0); the
    batches of the warm-up steps are not counted. `sync` is called at every clock read (CUDA kernels
    run asynchronously: without it a reading would miss queued work); `clock` is injectable for tests.
    """

    def __init__(self, warmup_steps: int, sync=None, clock=time.perf_counter):
        self.warmup_steps = warmup_steps
        self._sync = sync or (lambda: None)
        self._clock = clock
        self.steps = 0  # optimizer steps seen, warm-up included
        self.measured_steps = self.samples = self.tokens = self.padded_tokens = 0
        self.seconds = 0.0  # inside the window, pauses excluded
        self._pending = [0, 0, 0]  # the current step's samples, tokens, padded tokens
        self._since: float | None = None  # clock when the window (re)opened; None: closed

    def _read(self) -> float:
        self._sync()
        return self._clock()

    def start(self) -> None:
        if self.warmup_steps == 0:
            self._since = self._read()

    def add_batch(self, samples: int, tokens: int, padded_tokens: int) -> None:
        p = self._pending
        p[0], p[1], p[2] = p[0] + samples, p[1] + tokens, p[2] + padded_tokens

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.warmup_steps:
            self.measured_steps += 1
            self.samples += self._pending[0]
            self.tokens += self._pending[1]
            self.padded_tokens += self._pending[2]
        elif self.steps == self.warmup_steps:
            self._since = self._read()
        self._pending = [0, 0, 0]

    @contextlib.contextmanager
    def paused(self):
        running = self._since is not None
        if running:
            self.seconds += self._read() - self._since
            self._since = None
        try:
            yield
        finally:
            if running:
                self._since = self._read()

    def stop(self) -> None:
        if self._since is not None:
            self.seconds += self._read() - self._since
            self._since = None


def effective_warmup(requested: int, total_steps: int) -> int:
    """Warm-up steps actually left out: at most half the run, so short runs still measure something."""
    return max(0, min(requested, total_steps // 2))


def _kernel_peak_rss() -> int | None:
    """The process's peak RSS since the last `_reset_kernel_peak()` in bytes (Linux: VmHWM), or None."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_kernel_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: `5` to /proc/self/clear_refs); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return _kernel_peak_rss() is not None


class PeakMemory:
    """Context manager: `with PeakMemory(device) as mem: ...; mem.result()`; `with mem.paused():` leaves
    a stretch (evaluation) out of the peaks.

    Peak RSS is the kernel's own high-water mark where Linux lets a process reset it (VmHWM, reset when
    training starts and after each pause): exact, and nothing runs per step. Elsewhere RSS is sampled
    every `interval` seconds by a daemon thread (plus once at each end and at each pause), so a peak
    shorter than the interval can be missed. On CUDA the allocator's own peak counters are exact: they
    are read before a pause and reset after it. RSS is what the process holds, so memory the allocator
    kept after a pause still counts in later samples (and in the high-water mark, reset to it).
    """

    def __init__(self, device, interval: float = 0.02, kernel_peak: bool = True):
        self.device = device
        self.interval = interval
        self.kernel_peak = kernel_peak  # False: always sample (tests); True: the kernel's peak where it can
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._paused = False
        self._thread = None
        self.rss_before = self.peak_rss = 0
        self.cuda: dict = {}
        self.step_allocated: list[float] = []  # CUDA MB at the end of each optimizer step (`step()`)
        self.step_reserved: list[float] = []

    @property
    def _cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def source(self) -> str:
        return f"sampled every {self.interval * 1000:g} ms" if self.kernel_peak is False else "kernel peak (VmHWM)"

    def _sample(self) -> None:
        with self._lock:
            if not self._paused:
                now = _kernel_peak_rss() if self.kernel_peak else self._proc.memory_info().rss
                self.peak_rss = max(self.peak_rss, now)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _fold_cuda(self) -> None:
        import torch

        torch.cuda.synchronize(self.device)
        for key, now in (("cuda_max_allocated_mb", torch.cuda.max_memory_allocated(self.device) / MB),
                         ("cuda_max_reserved_mb", torch.cuda.max_memory_reserved(self.device) / MB)):
            self.cuda[key] = max(self.cuda.get(key, 0.0), now)

    def __enter__(self):
        if self._cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.kernel_peak = self.kernel_peak and _reset_kernel_peak()
        self.rss_before = self.peak_rss = self._proc.memory_info().rss
        if not self.kernel_peak:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    @contextlib.contextmanager
    def paused(self):
        self._sample()
        with self._lock:
            self._paused = True
        if self._cuda:
            self._fold_cuda()
        try:
            yield
        finally:
            if self._cuda:
                import torch

                torch.cuda.synchronize(self.device)
                torch.cuda.reset_peak_memory_stats(self.device)
            with self._lock:
                if self.kernel_peak:
                    _reset_kernel_peak()
                self._paused = False

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        if self._cuda:
            self._fold_cuda()
        return False

    def step(self) -> None:
        """Called by the loop after each optimizer step: on CUDA, sample what is allocated and reserved
        (the model, optimizer states, what the step kept), for their max, mean and p99 over steps."""
        if self._cuda:
            import torch

            self.step_allocated.append(torch.cuda.memory_allocated(self.device) / MB)
            self.step_reserved.append(torch.cuda.memory_reserved(self.device) / MB)

    def result(self) -> dict:
        out = {"device": str(self.device), "peak_rss_mb": round(self.peak_rss / MB, 1), "peak_rss_source": self.source,
               "rss_before_train_mb": round(self.rss_before / MB, 1),
               "cuda_max_allocated_mb": None, "cuda_max_reserved_mb": None}
        out.update({k: round(v, 1) for k, v in self.cuda.items()})
        if self._cuda:
            out.update(cuda_step_allocated_mb=memory_stats(self.step_allocated),
                       cuda_step_reserved_mb=memory_stats(self.step_reserved))
        return out


def memory_stats(samples_mb: list[float]) -> dict:
    """{max, mean, p99} of per-step memory samples (MB), as peft's method comparison reports GPU memory
    (its 99th percentile is numpy's, linear interpolation); all None without samples."""
    if not samples_mb:
        return {"max": None, "mean": None, "p99": None}
    import numpy as np

    values = np.asarray(samples_mb, dtype=float)
    return {"max": round(float(values.max()), 1), "mean": round(float(values.mean()), 1),
            "p99": round(float(np.percentile(values, 99)), 1)}


def cuda_in_use_by_others_mb(device) -> tuple[float, str]:
    """(MB of the GPU held by other processes, how it was found) before this run allocates: NVML's
    per-process figures when pynvml is installed (exact), else the device's used memory (total - free)
    minus what this process's allocator holds, which also counts this process's CUDA context."""
    import os

    import torch

    index = device.index if device.index is not None else torch.cuda.current_device()
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        others = [p.usedGpuMemory or 0 for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
                  if p.pid != os.getpid()]
        return sum(others) / MB, "nvml: other processes"
    except Exception:  # noqa: BLE001  (no pynvml, no NVML permission, a MIG slice): the coarse figure
        free, total = torch.cuda.mem_get_info(index)
        return (total - free - torch.cuda.memory_reserved(index)) / MB, "total - free - reserved (includes this process's CUDA context)"


BUSY_GPU_MB = 512  # memory other processes may hold on the GPU before hardware.busy_gpu=refuse refuses to run


def check_busy_gpu(device, policy: str) -> dict:
    """On CUDA, what other processes hold on the GPU before the run allocates (`hardware.busy_gpu`:
    `record` writes it into the run file's memory block; `refuse` stops the run above BUSY_GPU_MB, since
    another process's allocations distort this run's memory figures and speed)."""
    if device.type != "cuda":
        return {}
    mb, how = cuda_in_use_by_others_mb(device)
    if policy == "refuse" and mb > BUSY_GPU_MB:
        raise UserError(f"hardware.busy_gpu=refuse: {mb:.0f} MB of {device} are held by other processes ({how}), "
                        f"more than {BUSY_GPU_MB} MB. Free the GPU, pick another (CUDA_VISIBLE_DEVICES), or use "
                        "hardware.busy_gpu=record to run and record it.")
    return {"cuda_in_use_by_others_mb": round(mb, 1), "cuda_in_use_how": how}
