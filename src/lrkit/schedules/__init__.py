"""Pure learning-rate (and momentum, weight-decay) schedules.

A schedule is an immutable function of the optimizer step: ``s(step)`` gives a float, ``s(array)``
an array, ``s.steps`` its length (``None`` if endless), and past its end it holds its final value.
Compose them with :func:`sequence`, :func:`warmup`, :func:`product`, :func:`per_epoch`, ... and
drive a PyTorch optimizer with :class:`lrkit.Scheduler`, which takes a :data:`Policy`: a
schedule, or a :class:`Hyper` pair of LR and momentum schedules such as :func:`one_cycle`'s.
"""

from ._base import Hyper, Policy, Schedule, as_hyper, from_dict
from .basic import (
    constant,
    cosine,
    custom,
    exponential,
    geometric,
    linear,
    multistep,
    polynomial,
    step,
)
from .check import check_values, first_invalid
from .compose import (
    Product,
    Sequence,
    Warmup,
    clamp,
    per_epoch,
    product,
    repeat,
    scale,
    sequence,
    take,
    warmup,
    wsd,
)
from .cyclic import cyclic, cyclic_momentum, exp_range, sgdr, triangular, triangular2
from .named import NAMES, named
from .onecycle import (
    ONE_CYCLE_DIV_FACTOR,
    one_cycle,
    one_cycle_lr,
    one_cycle_momentum,
    piecewise,
)
from .plateau import reduce_on_plateau

__all__ = [
    "NAMES",
    "ONE_CYCLE_DIV_FACTOR",
    "Hyper",
    "Policy",
    "Product",
    "Schedule",
    "Sequence",
    "Warmup",
    "as_hyper",
    "check_values",
    "clamp",
    "constant",
    "cosine",
    "custom",
    "cyclic",
    "cyclic_momentum",
    "exp_range",
    "exponential",
    "first_invalid",
    "from_dict",
    "geometric",
    "linear",
    "multistep",
    "named",
    "one_cycle",
    "one_cycle_lr",
    "one_cycle_momentum",
    "per_epoch",
    "piecewise",
    "polynomial",
    "product",
    "reduce_on_plateau",
    "repeat",
    "scale",
    "sequence",
    "sgdr",
    "step",
    "take",
    "triangular",
    "triangular2",
    "warmup",
    "wsd",
]
