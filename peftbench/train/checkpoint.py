"""Save and load only what a method trains: the trainable tensors (and the buffers the model keeps in
its state dict, e.g. a sparse mask), as safetensors. Loading into the same model x method built from
the same base weights reproduces the trained model."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError
from ..runfile import umask


def trainable_state(model) -> dict:
    """{name: tensor} of the trainable parameters and the persistent buffers, detached, contiguous.
    A tensor shared under several names (VeRA's projections) is kept once: loading it fills them all."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    params = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    state, seen = {}, set()
    for name, tensor in model.state_dict().items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if (name in trainable or name not in params) and key not in seen:
            seen.add(key)
            state[name] = tensor.detach().contiguous().cpu()
    return state


def save_trainable(model, path: str | Path) -> Path:
    """Write the trainable state to `path` (safetensors; written to a temp name, then renamed)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(trainable_state(model), str(tmp))
    os.chmod(tmp, 0o666 & ~umask())  # safetensors writes 0600; run files and checkpoints follow the umask
    tmp.replace(path)
    return path


def load_trainable(model, path: str | Path):
    """Load a `save_trainable` file into a model built the same way; every trainable tensor must be in it."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    result = model.load_state_dict(state, strict=False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    missing = sorted(trainable & set(result.missing_keys))
    if result.unexpected_keys or missing:
        raise UserError(f"{path}: does not match this model x method: "
                        f"{len(result.unexpected_keys)} unknown tensor(s) (e.g. {result.unexpected_keys[:2]}), "
                        f"{len(missing)} trainable tensor(s) missing (e.g. {missing[:2]}). Build the same "
                        "model and method (same knobs) before loading.")
    return model


def load_initial(model, run: dict, head_modules) -> dict:
    """`train.init_from`: load another run's trained tensors (its trainable.safetensors) into this model,
    all but the task head's (a new task has its own head, e.g. MRPC's 2 labels after MNLI's 3). The
    other run must be of the same method with the same knobs: a tensor this model lacks, one it trains
    that the file lacks, or a shape that differs is an error naming it."""
    from safetensors.torch import load_file

    from ..methods.counting import canonical_name

    source = Path(run["run_dir"]) / "trainable.safetensors"
    if not source.is_file():
        raise UserError(f"train.init_from: {source} does not exist (was the run made with train.save_trainable=false?).")
    head = set(head_modules)

    def in_head(name: str) -> bool:
        return canonical_name(name).split(".")[0] in head

    state = {n: t for n, t in load_file(str(source)).items() if not in_head(n)}
    own = model.state_dict()
    trains = {n for n, p in model.named_parameters() if p.requires_grad and not in_head(n)}
    unknown = sorted(set(state) - set(own))
    missing = sorted(trains - set(state))
    shapes = [f"{n} {tuple(state[n].shape)} vs {tuple(own[n].shape)}" for n in state
              if n in own and state[n].shape != own[n].shape]
    if unknown or missing or shapes:
        raise UserError(f"train.init_from={run['run_dir']} ({run.get('method')}): its tensors do not fit this "
                        f"model x method: {len(unknown)} unknown (e.g. {unknown[:2]}), {len(missing)} missing "
                        f"(e.g. {missing[:2]}), {len(shapes)} of another shape (e.g. {shapes[:2]}). Use a run "
                        "of the same model and method with the same knobs.")
    model.load_state_dict(state, strict=False)
    return {"run_dir": run["run_dir"], "task": run.get("task"), "tensors": len(state),
            "skipped_head": sorted(head)}


# Resumable training checkpoints: <run dir>/checkpoints/step-0000200/ holds
#   trainable.safetensors  the trainable tensors (as above)
#   state.pt               optimizer, scheduler, step, histories, config hash (main process)
#   rank-<r>.pt            each process's RNG states and sample/token counts
# A checkpoint is written into a hidden temp folder and renamed into place when complete, so a kill
# at any moment leaves the previous checkpoint intact; older checkpoints are then removed.
CHECKPOINTS = "checkpoints"


def save_checkpoint(run_dir, step: int, model, optimizer, scheduler, state: dict, rank_state: dict,
                    accelerator) -> Path:
    import shutil

    import torch

    root = Path(run_dir) / CHECKPOINTS
    final, tmp = root / f"step-{step:07d}", root / f".step-{step:07d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save({**rank_state, "rng": _rng_state()}, tmp / f"rank-{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_trainable(accelerator.unwrap_model(model), tmp / "trainable.safetensors")
        torch.save({**state, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                   tmp / "state.pt")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in root.glob("step-*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def latest_checkpoint(run_dir) -> Path | None:
    found = sorted((Path(run_dir) / CHECKPOINTS).glob("step-*"))
    return found[-1] if found else None


def load_checkpoint(path: Path, config_hash, model, optimizer, scheduler, accelerator) -> tuple[dict, dict] | None:
    """Restore a `save_checkpoint` folder made with the same config into the model, optimizer and
    scheduler; returns (state, this process's rank state), or None when it belongs to another config."""
    import torch

    state = torch.load(path / "state.pt", weights_only=False)  # written by peftbench itself
    if state.get("config_hash") != config_hash:
        return None
    load_trainable(accelerator.unwrap_model(model), path / "trainable.safetensors")
    optimizer.load_state_dict(state.pop("optimizer"))
    scheduler.load_state_dict(state.pop("scheduler"))
    rank_file = path / f"rank-{accelerator.process_index}.pt"
    rank_state = torch.load(rank_file, weights_only=False) if rank_file.is_file() else {}
    return state, rank_state  # rank_state["rng"]: set it with set_rng_state when training goes on


def _rng_state() -> dict:
    import random

    import numpy as np
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(rng: dict) -> None:
    import random

    import numpy as np
    import torch

    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
