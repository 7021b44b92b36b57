"""Optimizers by name, with the defaults the trainer uses: see :mod:`lrkit._optimizers`."""

from lrkit._optimizers import (
    OPTIMIZERS,
    OptimizerFactory,
    build_optimizer,
    cycles_momentum,
    default_lr,
    has_momentum,
)

__all__ = [
    "OPTIMIZERS",
    "OptimizerFactory",
    "build_optimizer",
    "cycles_momentum",
    "default_lr",
    "has_momentum",
]
