"""GPU memory like the GPU suites: max, mean and 99th percentile of CUDA allocated/reserved over steps
(the statistics on fake samples; the CUDA path itself only where a GPU is), CPU runs unchanged, and
`hardware.busy_gpu` checked."""

import numpy as np
import pytest
import torch

from conftest import TINY, make_cfg
from peftbench.run.runner import run
from peftbench.train.measure import PeakMemory, check_busy_gpu, memory_stats


def test_memory_stats_on_fake_samples():
    samples = [100.0] * 98 + [200.0, 1000.0]  # one spike, one smaller one
    stats = memory_stats(samples)
    assert stats["max"] == 1000.0
    assert stats["mean"] == pytest.approx((98 * 100 + 200 + 1000) / 100, abs=0.05)
    # numpy's linear interpolation: rank 0.99 * 99 = 98.01, between 200 (index 98) and 1000 (index 99)
    assert stats["p99"] == pytest.approx(200 + 0.01 * 800, abs=0.05)
    assert stats["p99"] == pytest.approx(float(np.percentile(samples, 99)), abs=0.05)
    assert memory_stats([]) == {"max": None, "mean": None, "p99": None}
    assert memory_stats([5.0]) == {"max": 5.0, "mean": 5.0, "p99": 5.0}


def test_cpu_runs_record_rss_and_no_cuda_figures(tmp_path):
    mem = PeakMemory(torch.device("cpu"))
    with mem:
        mem.step()
    out = mem.result()
    assert "cuda_step_allocated_mb" not in out and out["peak_rss_mb"] > 0 and mem.step_allocated == []
    assert check_busy_gpu(torch.device("cpu"), "refuse") == {}


def test_busy_gpu_takes_record_or_refuse(tmp_path):
    from peftbench.errors import UserError

    with pytest.raises(UserError, match="hardware.busy_gpu='maybe': must be one of record, refuse"):
        run(make_cfg(*TINY, "hardware.busy_gpu=maybe"), tmp_path)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_run_records_per_step_statistics(tmp_path):
    record = run(make_cfg(*TINY, "hardware=gpu"), tmp_path)
    m = record["memory"]
    for key in ("cuda_step_allocated_mb", "cuda_step_reserved_mb"):
        s = m[key]
        assert 0 < s["mean"] <= s["p99"] <= s["max"]
    assert m["cuda_step_allocated_mb"]["max"] <= m["cuda_step_reserved_mb"]["max"]
    assert m["cuda_in_use_by_others_mb"] >= 0 and m["cuda_in_use_how"]
