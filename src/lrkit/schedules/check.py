"""The values a hyperparameter may take, checked over a schedule's steps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._base import Schedule
from .onecycle import Hyper

__all__ = ["check_values", "first_invalid"]


def first_invalid(values: Sequence[float] | np.ndarray) -> int | None:
    """The index of the first value that cannot be a learning rate, momentum or weight decay
    (NaN, infinite or negative), or ``None`` when all can."""
    v = np.asarray(values, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(v) | (v < 0))
    return int(bad[0]) if bad.size else None


def check_values(value: float | Schedule | Hyper, steps: int, what: str = "lr") -> None:
    """Raise ``ValueError`` if ``value`` (a number, a schedule, or each schedule of a
    :class:`Hyper`) is NaN, infinite or negative at any of the steps ``0 .. steps - 1``; the
    message names ``what``, the first bad step and its value."""
    if isinstance(value, Hyper):
        check_values(value.lr, steps, what)
        if value.momentum is not None:
            check_values(value.momentum, steps, f"{what} momentum")
        return
    if isinstance(value, Schedule):
        values = np.asarray(value(np.arange(max(1, steps))), dtype=np.float64)
    else:
        values = np.asarray([value], dtype=np.float64)
    i = first_invalid(values)
    if i is not None:
        where = f" at step {i}" if isinstance(value, Schedule) else ""
        raise ValueError(
            f"{what} {value!r} gives {values[i]:g}{where}; a learning rate, momentum or weight "
            "decay must be a finite number >= 0 at every step: check the schedule's values"
        )
