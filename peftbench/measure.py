"""Peak memory during training: CUDA allocator peaks on GPU, sampled process RSS everywhere."""

from __future__ import annotations

import threading

import psutil

MB = 1024 * 1024


class PeakMemory:
    """Context manager: `with PeakMemory(device) as mem: ...; mem.result()`.

    RSS is sampled every `interval` seconds by a daemon thread (plus once at each end), so a peak
    shorter than the interval can be missed; on CUDA the allocator's own peak counters are exact.
    """

    def __init__(self, device, interval: float = 0.02):
        self.device = device
        self.interval = interval
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self.rss_before = self.peak_rss = 0
        self.cuda: dict = {}

    def _sample(self) -> None:
        self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.rss_before = self.peak_rss = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        import torch

        self._stop.set()
        self._thread.join()
        self._sample()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.cuda = {"cuda_max_allocated_mb": torch.cuda.max_memory_allocated(self.device) / MB,
                         "cuda_max_reserved_mb": torch.cuda.max_memory_reserved(self.device) / MB}
        return False

    def result(self) -> dict:
        out = {"device": str(self.device), "peak_rss_mb": round(self.peak_rss / MB, 1),
               "rss_before_train_mb": round(self.rss_before / MB, 1),
               "cuda_max_allocated_mb": None, "cuda_max_reserved_mb": None}
        out.update({k: round(v, 1) for k, v in self.cuda.items()})
        return out
