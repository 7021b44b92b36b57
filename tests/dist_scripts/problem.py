"""The small problem the torchrun tests share with their single-process references: a seeded
classifier and global batches that rank ``r`` of ``world`` splits into its own part."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

FEATURES, CLASSES = 10, 3
GLOBAL_BATCH = 16
Batch = tuple[Tensor, Tensor]


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(FEATURES, 32), nn.Tanh(), nn.Linear(32, CLASSES))


def global_batches(n: int, seed: int) -> list[Batch]:
    """``n`` batches of ``GLOBAL_BATCH`` examples of a noisy linear 3-class problem."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(FEATURES, CLASSES, generator=g)
    x = torch.randn(n * GLOBAL_BATCH, FEATURES, generator=g)
    y = (x @ w + 0.5 * torch.randn(n * GLOBAL_BATCH, CLASSES, generator=g)).argmax(dim=1)
    return [
        (x[i * GLOBAL_BATCH : (i + 1) * GLOBAL_BATCH], y[i * GLOBAL_BATCH : (i + 1) * GLOBAL_BATCH])
        for i in range(n)
    ]


def part(batches: list[Batch], rank: int, world: int) -> list[Batch]:
    """Rank ``rank``'s contiguous share of every batch (the single process sees them whole)."""
    size = GLOBAL_BATCH // world
    return [
        (x[rank * size : (rank + 1) * size], y[rank * size : (rank + 1) * size]) for x, y in batches
    ]


def train_batches() -> list[Batch]:
    return global_batches(24, seed=1)


def val_batches() -> list[Batch]:
    return global_batches(4, seed=2)


def accuracy(output: Tensor, target: Tensor) -> float:
    return float((output.argmax(dim=1) == target).float().mean())


def range_kwargs() -> dict[str, Any]:
    """The range tests both sides run: a plain one and one scored on validation data."""
    return {"start_lr": 1e-3, "end_lr": 30.0, "steps": 60, "extend": 1}
