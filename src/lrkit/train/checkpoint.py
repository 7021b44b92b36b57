"""Checkpoint files for exact resume: atomic writes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from lrkit._files import atomic_write

__all__ = [
    "CHECKPOINT_NAME",
    "checkpoint_path",
    "load_checkpoint",
    "save_atomic",
]

CHECKPOINT_NAME = "checkpoint.pt"
"""File name of the (single, latest) checkpoint inside a checkpoint directory."""


def checkpoint_path(checkpoint_dir: str | os.PathLike[str]) -> Path:
    """Where :func:`lrkit.train.fit` keeps its checkpoint inside ``checkpoint_dir``."""
    return Path(checkpoint_dir) / CHECKPOINT_NAME


def save_atomic(obj: object, path: str | os.PathLike[str]) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically (see :func:`lrkit._files.atomic_write`)."""
    atomic_write(path, lambda fh: torch.save(obj, fh))


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
