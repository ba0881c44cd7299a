"""Training state as inert files: JSON for the structure, safetensors for the tensors, a manifest of
sizes and SHA-256 sums to verify them. Nothing here unpickles: a results folder copied from someone else
can hold damaged or hostile files, and reading them must neither run code nor load half a state.

`save_tree(tree, folder, stem)` writes `<stem>.json` and `<stem>.safetensors` from a tree of dicts,
lists, tuples, numbers, strings, None, torch tensors and numpy arrays (what optimizer, scheduler and RNG
states are made of); `load_tree(folder, stem)` gives the same tree back, bit for bit. `write_manifest`
and `verify_manifest` guard a whole folder: a file cut short, changed or missing is found before any of
it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..runfile import umask

MANIFEST = "manifest.json"
FORMAT = "peftbench-checkpoint-2"  # bump when the layout of a checkpoint folder changes


class Damaged(Exception):
    """A state file that cannot be read back as written (cut short, changed, missing, not ours)."""


def _encode(obj, tensors: dict):
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"$tensor": key}
    if isinstance(obj, np.ndarray):
        return {"$ndarray": obj.tolist(), "dtype": obj.dtype.str}
    if isinstance(obj, tuple):
        return {"$tuple": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"$items": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, np.generic):
        return _encode(obj.item(), tensors)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a state file")


def _decode(obj, tensors: dict):
    import numpy as np

    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "$tensor" in obj:
        return tensors[obj["$tensor"]]
    if "$ndarray" in obj:
        return np.asarray(obj["$ndarray"], dtype=np.dtype(obj["dtype"]))
    if "$tuple" in obj:
        return tuple(_decode(v, tensors) for v in obj["$tuple"])
    if "$items" in obj:
        return {_hashable(_decode(k, tensors)): _decode(v, tensors) for k, v in obj["$items"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


def save_tree(tree, folder: Path, stem: str) -> None:
    from safetensors.torch import save_file

    tensors: dict = {}
    encoded = _encode(tree, tensors)
    save_file(tensors, str(folder / f"{stem}.safetensors"))
    os.chmod(folder / f"{stem}.safetensors", 0o666 & ~umask())  # safetensors writes 0600; checkpoints follow the umask
    (folder / f"{stem}.json").write_text(json.dumps(encoded))


def load_tree(folder: Path, stem: str):
    """The tree `save_tree` wrote; Damaged when a file is missing or unreadable."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(folder / f"{stem}.safetensors"))
        return _decode(json.loads((folder / f"{stem}.json").read_text()), tensors)
    except Exception as exc:  # OSError, JSON's ValueError, a key not there, safetensors' own error type
        raise Damaged(f"{folder / stem}.*: {type(exc).__name__}: {exc}") from None


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path, files: list[str]) -> None:
    """The sizes and SHA-256 sums of `files` (names inside `folder`), written last."""
    entries = {name: {"bytes": (folder / name).stat().st_size, "sha256": _digest(folder / name)} for name in files}
    (folder / MANIFEST).write_text(json.dumps({"format": FORMAT, "files": entries}, indent=1))


def verify_manifest(folder: Path) -> list[str]:
    """The names the manifest lists, each checked against its size and SHA-256; Damaged if one differs."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        entries = manifest["files"]
        assert manifest["format"] == FORMAT and isinstance(entries, dict)
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise Damaged(f"{folder / MANIFEST}: missing or unreadable") from None
    for name, entry in entries.items():
        path = folder / name
        if Path(name).name != name or not path.is_file():
            raise Damaged(f"{path}: missing")
        if path.stat().st_size != entry.get("bytes") or _digest(path) != entry.get("sha256"):
            raise Damaged(f"{path}: {path.stat().st_size} bytes, not the {entry.get('bytes')} written, or "
                          "other contents (cut short or changed since)")
    return list(entries)
