"""A fingerprint of the data files a run reads, so that a run's identity (its config hash) changes when
its data change: edit a file in place and the run is no longer "done".

Each file is identified by its split, size and SHA-256 of its bytes; its path and mtime are recorded beside
them but left out of the identity (the path is already in the config as task.data_dir or data_root, and a
touched or copied file with the same bytes is the same data). The content hash is cached per process by
(path, size, mtime): hashing GLUE's largest file (MNLI, about 90 MB) takes about half a second once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from omegaconf import DictConfig

from .loading import data_paths

_HASHES: dict[tuple, str] = {}  # (path, size, mtime_ns) -> sha256


def file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def data_fingerprint(task: DictConfig, data_root: str | None = None) -> list[dict]:
    """[{split, path, size, mtime, sha256}] of the local files the task reads, by split (empty for a
    generator or a hub id: their identity is the config itself)."""
    out = []
    for split, path in sorted(data_paths(task, data_root).items()):
        stat = path.stat()
        out.append({"split": split, "path": str(path), "size": stat.st_size, "mtime": stat.st_mtime,
                    "sha256": file_sha256(path)})
    return out


def identity(fingerprint: list[dict]) -> list[dict]:
    """What of a fingerprint is the data's identity: split, size and content hash, not where or when."""
    return [{k: f[k] for k in ("split", "size", "sha256")} for f in fingerprint]
