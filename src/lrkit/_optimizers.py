"""The named optimizers: class, no-finder learning rate and what ``momentum`` sets, in one table.

The ground floor under :mod:`lrkit.tasks` (a task names its optimizer and takes its default
learning rate from here) and :mod:`lrkit.train.optimizers` (which builds the optimizers).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

__all__ = ["OPTIMIZERS", "SPECS", "OptimizerSpec", "check_optimizer_name", "default_lr"]


class OptimizerSpec(NamedTuple):
    """One row of :data:`SPECS`."""

    cls: type[torch.optim.Optimizer]
    lr: float
    momentum: Literal["momentum", "beta1"] | None  # what ``momentum`` sets; None: nothing
    default_momentum: float | None


SPECS: dict[str, OptimizerSpec] = {
    "sgd": OptimizerSpec(torch.optim.SGD, 0.1, "momentum", 0.9),
    "adam": OptimizerSpec(torch.optim.Adam, 1e-3, "beta1", 0.9),
    "adamw": OptimizerSpec(torch.optim.AdamW, 1e-3, "beta1", 0.9),
    "adamax": OptimizerSpec(torch.optim.Adamax, 2e-3, "beta1", 0.9),
    "adagrad": OptimizerSpec(torch.optim.Adagrad, 1e-2, None, None),
    "adadelta": OptimizerSpec(torch.optim.Adadelta, 1.0, None, None),
    "rmsprop": OptimizerSpec(torch.optim.RMSprop, 1e-3, "momentum", 0.0),
}
"""The one table of what lrkit knows about each named optimizer."""

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {k: v.cls for k, v in SPECS.items()}
"""Optimizer classes by the names :func:`lrkit.train.optimizers.build_optimizer` accepts."""


def default_lr(name: str) -> float:
    """A sensible learning rate for optimizer ``name`` when no range test was run."""
    return SPECS[check_optimizer_name(name)].lr


def check_optimizer_name(name: str) -> str:
    """``name`` lower-cased if it names an optimizer of :data:`SPECS`; ``ValueError`` otherwise."""
    key = name.lower() if isinstance(name, str) else name
    if key not in SPECS:
        raise ValueError(
            f"unknown optimizer {name!r}; use one of {', '.join(SPECS)} or pass a "
            "callable(params) -> torch.optim.Optimizer"
        )
    return str(key)
