"""Optimizers by name, with the defaults the trainer uses.

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

import torch
from torch import nn

__all__ = ["OPTIMIZERS", "OptimizerFactory", "build_optimizer", "default_lr"]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
"""``factory(params) -> Optimizer``: builds an optimizer over the model's parameters."""

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adamax": torch.optim.Adamax,
    "adagrad": torch.optim.Adagrad,
    "adadelta": torch.optim.Adadelta,
    "rmsprop": torch.optim.RMSprop,
}
"""Optimizer classes by the names :func:`build_optimizer` accepts."""

_DEFAULT_LR = {
    "sgd": 0.1,
    "adam": 1e-3,
    "adamw": 1e-3,
    "adamax": 2e-3,
    "adagrad": 1e-2,
    "adadelta": 1.0,
    "rmsprop": 1e-3,
}

_BETA_OPTIMIZERS = ("adam", "adamw", "adamax")


def default_lr(name: str) -> float:
    """A sensible learning rate for optimizer ``name`` when no range test was run."""
    return _DEFAULT_LR[_check_name(name)]


def _check_name(name: str) -> str:
    key = name.lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)} or pass a "
            "callable(params) -> torch.optim.Optimizer"
        )
    return str(key)


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
    name = _check_name(optimizer)
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if momentum is not None and not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if nesterov and name != "sgd":
        raise ValueError(f"nesterov=True needs optimizer 'sgd', got {name!r}")
    if name == "sgd":
        mom = 0.9 if momentum is None else momentum
        if nesterov and mom == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        return torch.optim.SGD(
            params, lr=lr, momentum=mom, nesterov=nesterov, weight_decay=weight_decay
        )
    if name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=lr, momentum=0.0 if momentum is None else momentum, weight_decay=weight_decay
        )
    if name in _BETA_OPTIMIZERS:
        beta1 = 0.9 if momentum is None else momentum
        cls = OPTIMIZERS[name]
        return cls(params, lr=lr, betas=(beta1, 0.999), weight_decay=weight_decay)  # type: ignore[call-arg]
    if momentum is not None:
        raise ValueError(f"optimizer {name!r} has no momentum; leave momentum=None")
    return OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay)  # type: ignore[call-arg]
