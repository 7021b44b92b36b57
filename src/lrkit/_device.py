"""Moving batches to a device, shared by the range test and the trainer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["move_to_device"]


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Return ``batch`` with every tensor in it (recursively through tuples, lists, named tuples
    and mappings) moved to ``device``; other objects are returned unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch if batch.device == device else batch.to(device, non_blocking=True)
    if isinstance(batch, tuple):
        items = [move_to_device(b, device) for b in batch]
        if hasattr(batch, "_fields"):
            return type(batch)(*items)
        return tuple(items)
    if isinstance(batch, list):
        return [move_to_device(b, device) for b in batch]
    if isinstance(batch, Mapping):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    return batch
