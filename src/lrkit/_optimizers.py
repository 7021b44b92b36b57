"""Optimizer names, their classes and their no-finder learning rates.

The ground floor under :mod:`lrkit.tasks` (which names a task's optimizer) and
:mod:`lrkit.train.optimizers` (which builds one, knowing each optimizer's momentum and betas).
"""

from __future__ import annotations

import torch

__all__ = ["OPTIMIZERS", "check_optimizer_name", "default_lr"]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adamax": torch.optim.Adamax,
    "adagrad": torch.optim.Adagrad,
    "adadelta": torch.optim.Adadelta,
    "rmsprop": torch.optim.RMSprop,
}
"""Optimizer classes by the names :func:`lrkit.train.optimizers.build_optimizer` accepts."""

_DEFAULT_LR = {
    "sgd": 0.1,
    "adam": 1e-3,
    "adamw": 1e-3,
    "adamax": 2e-3,
    "adagrad": 1e-2,
    "adadelta": 1.0,
    "rmsprop": 1e-3,
}


def default_lr(name: str) -> float:
    """A sensible learning rate for optimizer ``name`` when no range test was run."""
    return _DEFAULT_LR[check_optimizer_name(name)]


def check_optimizer_name(name: str) -> str:
    """``name`` lower-cased if it is one of :data:`OPTIMIZERS`; ``ValueError`` otherwise."""
    key = name.lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)} or pass a "
            "callable(params) -> torch.optim.Optimizer"
        )
    return str(key)
