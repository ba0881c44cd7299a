"""The measurement protocol (README.md, "Measurement"), with a fake clock: no timed assertions."""

import pytest
import torch

from peftbench.train import measure
from peftbench.train.measure import PeakMemory, StepTimer, effective_warmup


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def train_step(timer, clock, seconds, samples=4, tokens=30, padded=40):
    clock.now += seconds
    timer.add_batch(samples, tokens, padded)
    timer.step()


def test_warmup_steps_and_their_batches_are_left_out():
    clock = FakeClock()
    timer = StepTimer(2, clock=clock)
    timer.start()
    train_step(timer, clock, 100.0)  # a slow first step (allocations, lazy init): not measured
    train_step(timer, clock, 50.0)
    for _ in range(3):
        train_step(timer, clock, 1.0)
    timer.stop()
    assert timer.steps == 5 and timer.measured_steps == 3
    assert timer.seconds == 3.0
    assert (timer.samples, timer.tokens, timer.padded_tokens) == (12, 90, 120)


def test_evaluation_time_is_not_in_the_train_window():
    clock = FakeClock()
    timer = StepTimer(0, clock=clock)
    timer.start()
    train_step(timer, clock, 1.0)
    with timer.paused():  # evaluation, checkpoint
        clock.now += 500.0
    train_step(timer, clock, 1.0)
    with timer.paused():  # the final evaluation, after the last step
        clock.now += 500.0
    timer.stop()
    assert timer.seconds == 2.0 and timer.measured_steps == 2


def test_a_pause_during_warmup_changes_nothing_and_sync_runs_at_each_clock_read():
    clock, syncs = FakeClock(), []
    timer = StepTimer(1, sync=lambda: syncs.append(clock.now), clock=clock)
    timer.start()
    with timer.paused():
        clock.now += 7.0
    train_step(timer, clock, 3.0)  # the warm-up step ends: the window opens
    train_step(timer, clock, 2.0)
    timer.stop()
    assert timer.seconds == 2.0 and syncs == [10.0, 12.0]


def test_effective_warmup_leaves_at_least_half_the_run():
    assert effective_warmup(5, 100) == 5
    assert effective_warmup(5, 8) == 4
    assert effective_warmup(5, 1) == 0


@pytest.mark.parametrize("kernel_peak", [True, False], ids=["kernel-peak", "sampled"])
def test_peak_rss_leaves_out_paused_stretches(kernel_peak):
    mem = PeakMemory(torch.device("cpu"), interval=0.001, kernel_peak=kernel_peak)
    with mem:
        with mem.paused():
            big = torch.ones(64 * 1024 * 1024 // 4)  # 64 MB touched while paused (an evaluation)
            big += 1
            del big
    out = mem.result()
    # the allocator may keep the pages, but no sample was taken while they were in use
    assert out["peak_rss_mb"] < out["rss_before_train_mb"] + 48
    assert out["device"] == "cpu" and out["cuda_max_allocated_mb"] is None
    assert (out["peak_rss_source"] == "sampled every 1 ms") == (not kernel_peak or not measure._reset_kernel_peak())


@pytest.mark.skipif(not measure._reset_kernel_peak(), reason="no resettable VmHWM (Linux >= 4.0 only)")
def test_kernel_peak_sees_a_peak_between_samples_and_runs_no_thread():
    mem = PeakMemory(torch.device("cpu"), interval=3600.0)  # a sampler would never sample in this test
    with mem:
        assert mem._thread is None
        big = torch.ones(64 * 1024 * 1024 // 4)  # 64 MB held for a moment, not in a pause
        big += 1
        del big
    out = mem.result()
    assert out["peak_rss_mb"] >= out["rss_before_train_mb"] + 60 and out["peak_rss_source"] == "kernel peak (VmHWM)"


def test_checkpoint_time_is_not_training_time(tmp_path, monkeypatch):
    # Each checkpoint "takes" 100 s on a shifted clock; the tiny run itself trains in about a second.
    import time

    from conftest import TINY, make_cfg
    from peftbench.train import loop as train
    from peftbench.run.runner import run

    shift, real_clock, real_checkpoint = [0.0], time.perf_counter, train._checkpoint

    def slow_checkpoint(*args, **kwargs):
        real_checkpoint(*args, **kwargs)
        shift[0] += 100.0

    monkeypatch.setattr(train.time, "perf_counter", lambda: real_clock() + shift[0])
    monkeypatch.setattr(train, "_checkpoint", slow_checkpoint)
    record = run(make_cfg(*TINY, "train.max_steps=8", "train.checkpoint_every=2"), tmp_path)
    assert shift[0] == 300.0  # checkpoints at steps 2, 4, 6 (none at the last step)
    assert 0 < record["timing"]["train_s"] < 100
