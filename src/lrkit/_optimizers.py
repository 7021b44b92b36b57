"""Optimizers by name: the one table of what lrkit knows about each (class, the learning rate to
use without a finder, what ``momentum`` sets and its default), and building them.

The ground floor under :mod:`lrkit.tasks`, :mod:`lrkit.train` (which re-exports this) and the
experiments.

=========  ==========================  ===================================================
name       class                       what ``momentum`` sets (default)
=========  ==========================  ===================================================
sgd        ``torch.optim.SGD``         momentum (0.9); ``nesterov`` optional
adam       ``torch.optim.Adam``        beta1 (0.9)
adamw      ``torch.optim.AdamW``       beta1 (0.9); decoupled weight decay
adamax     ``torch.optim.Adamax``      beta1 (0.9)
adagrad    ``torch.optim.Adagrad``     not used (must be ``None``)
adadelta   ``torch.optim.Adadelta``    not used (must be ``None``)
rmsprop    ``torch.optim.RMSprop``     momentum (0.0)
=========  ==========================  ===================================================

``weight_decay`` is passed to every optimizer (L2 penalty for all but AdamW, where it is
decoupled).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

__all__ = [
    "OPTIMIZERS",
    "SPECS",
    "OptimizerFactory",
    "OptimizerSpec",
    "build_optimizer",
    "check_optimizer_name",
    "cycles_momentum",
    "default_lr",
    "has_momentum",
]


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


OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
"""``factory(params) -> Optimizer``: builds an optimizer over the model's parameters."""


def has_momentum(name: str) -> bool:
    """Whether optimizer ``name`` has a momentum (SGD, RMSprop) or a beta1 (Adam family)."""
    return SPECS[check_optimizer_name(name)].momentum is not None


def cycles_momentum(name: str) -> bool:
    """Whether cyclical momentum (one-cycle's 0.95 → 0.85) applies to optimizer ``name`` as
    built by default: it has momentum and uses it (RMSprop's default momentum is 0)."""
    return bool(SPECS[check_optimizer_name(name)].default_momentum)


def build_optimizer(
    optimizer: str | OptimizerFactory,
    params: Iterable[nn.Parameter],
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float | None = None,
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    """Build an optimizer by name (see the module table) or through a factory.

    Args:
        optimizer: A name from :data:`OPTIMIZERS` (case-insensitive) or ``factory(params)``.
            A factory owns all its settings, so ``lr``, ``weight_decay``, ``momentum`` and
            ``nesterov`` are then ignored.
        params: The parameters to optimize.
        lr: Initial learning rate (a schedule later overwrites it).
        weight_decay: Weight decay, >= 0.
        momentum: SGD/RMSprop momentum or Adam-family beta1, in [0, 1); ``None`` for the default.
        nesterov: Nesterov momentum (SGD only; needs momentum > 0).

    Raises:
        ValueError: unknown name, or settings the optimizer cannot take.
    """
    if callable(optimizer) and not isinstance(optimizer, str):
        built = optimizer(params)
        if not isinstance(built, torch.optim.Optimizer):
            raise ValueError(
                f"the optimizer factory returned {type(built).__name__}, not a "
                "torch.optim.Optimizer"
            )
        return built
    name = check_optimizer_name(optimizer)
    spec = SPECS[name]
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if momentum is not None and not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if nesterov and name != "sgd":
        raise ValueError(f"nesterov=True needs optimizer 'sgd', got {name!r}")
    if spec.momentum is None and momentum is not None:
        raise ValueError(f"optimizer {name!r} has no momentum; leave momentum=None")
    mom = spec.default_momentum if momentum is None else momentum
    extra: dict[str, Any] = {}
    if spec.momentum == "momentum":
        extra = {"momentum": mom}
    elif spec.momentum == "beta1":
        extra = {"betas": (mom, 0.999)}
    if name == "sgd":
        if nesterov and mom == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        extra["nesterov"] = nesterov
    return spec.cls(params, lr=lr, weight_decay=weight_decay, **extra)  # type: ignore[call-arg]
