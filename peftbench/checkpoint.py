"""Save and load only what a method trains: the trainable tensors (and the buffers the model keeps in
its state dict, e.g. a sparse mask), as safetensors. Loading into the same model x method built from
the same base weights reproduces the trained model."""

from __future__ import annotations

from pathlib import Path

from .errors import UserError


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
