"""A run's stages, in the order they happen: `execute(cfg, record)` reads as the list of them.

resolve (check the composed config) -> set up the device -> load the data -> build the model and method
-> batch the data -> train (evaluating as `train.eval_every` says) -> report the evaluation -> measure
-> save -> inference cost. Each stage is a function of its own in `stages.py`, and each fills its part
of the run file `record` (README.md, "Run files"). The run file's lifecycle (written when the run
starts and ends, resumed, moved aside) is run/runner.py's; the loop itself is train/loop.py.
"""

from __future__ import annotations

from .device import cuda_available, is_main_process, no_cuda, on_cpu, process_state
from .stages import TRAINED_IN_THIS_PROCESS

__all__ = ["TRAINED_IN_THIS_PROCESS", "cuda_available", "execute", "is_main_process", "no_cuda", "on_cpu", "process_state"]


def execute(cfg, record: dict, on_train=lambda: None, setup: dict | None = None) -> None:
    """Run every stage of one run; `on_train()` is called when training begins (before it, a UserError
    is a mistake in the command and leaves no run file); `setup`: what the caller set up for this process
    (run/runner.py: why this many threads), recorded with the run's memory and throughput."""
    from . import stages

    method, knobs = stages.resolve(cfg)
    accelerator, device = stages.setup_device(cfg, record)
    data = stages.load_data(cfg, record)
    model = stages.build_model(cfg, knobs, data, record)
    train_loader, eval_loaders = stages.make_batches(cfg, data, record)
    forgetting = stages.forgetting_before(cfg, model, accelerator)
    on_train()
    result, memory = stages.train(cfg, model, train_loader, eval_loaders, accelerator, record)
    stages.report_evaluation(cfg, result, record)
    stages.measure(cfg, model, result, memory, {**device, "setup": setup or {}}, accelerator, record)
    stages.forgetting_after(model, forgetting, record)
    stages.save(cfg, model, record)
    stages.inference_cost(cfg, model, method, eval_loaders, accelerator, record)  # last: it merges in place
