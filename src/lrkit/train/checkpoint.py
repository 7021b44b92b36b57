"""Checkpoint files for exact resume: atomic writes and the global RNG states."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CHECKPOINT_NAME",
    "capture_rng",
    "checkpoint_path",
    "load_checkpoint",
    "restore_rng",
    "save_atomic",
]

CHECKPOINT_NAME = "checkpoint.pt"
"""File name of the (single, latest) checkpoint inside a checkpoint directory."""


def checkpoint_path(checkpoint_dir: str | os.PathLike[str]) -> Path:
    """Where :func:`lrkit.train.fit` keeps its checkpoint inside ``checkpoint_dir``."""
    return Path(checkpoint_dir) / CHECKPOINT_NAME


def capture_rng() -> dict[str, Any]:
    """Python, NumPy, torch CPU (and CUDA, when available) global RNG states as plain types."""
    py_version, py_state, py_gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    if not isinstance(keys, np.ndarray):
        raise TypeError("numpy returned an unexpected RNG state")
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Set the global RNGs from :func:`capture_rng` output."""
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(obj: object, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary file in the same directory, fsync it, then rename it over
    ``path``, so a reader (or a resumed run) sees either the old file or the new one, never a
    partial write, even if the process is killed mid-write."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(target.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint written by :func:`lrkit.train.fit` (tensors land on the CPU).

    Raises:
        ValueError: the file is missing or is not an lrkit training checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"no checkpoint at {str(p)!r}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"cannot read checkpoint {str(p)!r} ({type(exc).__name__}: {exc}); delete it or "
            "start without resume"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != "lrkit.train/1":
        raise ValueError(f"{str(p)!r} is not an lrkit training checkpoint")
    return ckpt
