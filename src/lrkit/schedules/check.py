"""The values a hyperparameter may take, checked over a schedule's steps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._base import Hyper, Policy, Schedule

__all__ = ["check_values", "first_invalid", "valid_range"]


def first_invalid(values: Sequence[float] | np.ndarray, upper: float | None = None) -> int | None:
    """The index of the first value that cannot be a learning rate, momentum or weight decay
    (NaN, infinite or negative, or ``>= upper`` when given: ``upper=1`` for momentum), or
    ``None`` when all can."""
    v = np.asarray(values, dtype=np.float64)
    invalid = ~np.isfinite(v) | (v < 0)
    if upper is not None:
        invalid |= v >= upper
    bad = np.flatnonzero(invalid)
    return int(bad[0]) if bad.size else None


def valid_range(upper: float | None = None) -> str:
    """How :func:`first_invalid` with ``upper`` says what a valid value is, in words."""
    return "finite and >= 0" if upper is None else f"finite and in [0, {upper:g})"


def check_values(
    value: float | Policy, steps: int, what: str = "lr", *, upper: float | None = None
) -> None:
    """Raise ``ValueError`` if ``value`` (a number, a schedule, or each schedule of a
    :class:`Hyper`) is NaN, infinite or negative (or ``>= upper``, when given) at any of the
    steps ``0 .. steps - 1``; the message names ``what``, the first bad step and its value. A
    :class:`Hyper`'s momentum is checked with ``upper=1``."""
    if isinstance(value, Hyper):
        check_values(value.lr, steps, what, upper=upper)
        if value.momentum is not None:
            check_values(value.momentum, steps, f"{what} momentum", upper=1.0)
        return
    if isinstance(value, Schedule):
        values = np.asarray(value(np.arange(max(1, steps))), dtype=np.float64)
    else:
        values = np.asarray([value], dtype=np.float64)
    i = first_invalid(values, upper)
    if i is not None:
        where = f" at step {i}" if isinstance(value, Schedule) else ""
        kind = "a learning rate, momentum or weight decay" if upper is None else "it"
        raise ValueError(
            f"{what} {value!r} gives {values[i]:g}{where}; {kind} must be "
            f"{valid_range(upper).replace('finite and', 'a finite number')} at every step: "
            "check the schedule's values"
        )
