"""The usual family: constant, linear, geometric, exponential, step, multistep, polynomial, cosine.

Every schedule here is a frozen dataclass whose constructor is the public function of the same name
(``lrkit.schedules.cosine(...)`` builds a :class:`cosine`), so the repr reads like the call.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._base import (
    FloatArray,
    Schedule,
    callable_name,
    check_finite,
    check_length,
    check_non_negative,
    check_positive,
    register,
    setattr_frozen,
)

__all__ = [
    "constant",
    "cosine",
    "custom",
    "exponential",
    "geometric",
    "linear",
    "multistep",
    "polynomial",
    "step",
]


def _progress(t: FloatArray, steps: int) -> FloatArray:
    """Fraction of the schedule done, ``min(t, steps) / steps``."""
    return np.minimum(t, steps) / steps


@register
@dataclass(frozen=True, repr=False)
class constant(Schedule):
    """A constant value: ``v(t) = value``, with ``value >= 0`` (a learning rate, momentum or
    weight decay is never negative).

    ``steps`` gives it a length (for use inside :func:`~lrkit.schedules.sequence`); by default it
    never ends. PyTorch equivalent: no scheduler (or ``ConstantLR`` with factor 1).
    """

    name = "constant"
    value: float
    steps: int | None = None

    def __post_init__(self) -> None:
        setattr_frozen(self, "value", check_non_negative("constant value", self.value))
        setattr_frozen(self, "steps", check_length("steps", self.steps, allow_none=True))

    def _values(self, t: FloatArray) -> FloatArray:
        return np.full(t.shape, self.value, dtype=np.float64)


@register
@dataclass(frozen=True, repr=False)
class linear(Schedule):
    """Linear interpolation from ``start`` to ``end`` over ``steps`` updates.

    ``v(t) = start + (end - start) · min(t, steps) / steps``; ``v(steps) = end`` exactly and it
    holds ``end`` afterwards (the linear sweep of the LR range test). Same values as PyTorch's
    ``LinearLR`` (with ``start_factor·base`` = ``start``, ``end_factor·base`` = ``end``,
    ``total_iters`` = ``steps``).
    """

    name = "linear"
    start: float
    end: float
    steps: int

    def __post_init__(self) -> None:
        setattr_frozen(self, "start", check_finite("start", self.start))
        setattr_frozen(self, "end", check_finite("end", self.end))
        setattr_frozen(self, "steps", check_length("steps", self.steps))

    def _values(self, t: FloatArray) -> FloatArray:
        p = _progress(t, self.steps)
        return np.where(p >= 1.0, self.end, self.start + (self.end - self.start) * p)


@register
@dataclass(frozen=True, repr=False)
class geometric(Schedule):
    """Log-linear interpolation from ``start`` to ``end`` (both > 0) over ``steps`` updates.

    ``v(t) = start · (end / start) ^ (min(t, steps) / steps)``, exactly ``end`` from ``steps``
    on: equal ratios per step, the exponential sweep of the LR range test (Smith 2015; a sweep
    of ``n`` updates is ``geometric(start_lr, end_lr, n - 1)``) and the ``exponential`` warmup
    shape.
    """

    name = "geometric"
    start: float
    end: float
    steps: int

    def __post_init__(self) -> None:
        setattr_frozen(self, "start", check_positive("start", self.start))
        setattr_frozen(self, "end", check_positive("end", self.end))
        setattr_frozen(self, "steps", check_length("steps", self.steps))

    def _values(self, t: FloatArray) -> FloatArray:
        p = _progress(t, self.steps)
        return np.where(p >= 1.0, self.end, self.start * (self.end / self.start) ** p)


@register
@dataclass(frozen=True, repr=False)
class exponential(Schedule):
    """Exponential decay (or growth): ``v(t) = start · gamma^t``.

    PyTorch's ``ExponentialLR``. With ``steps`` it stops changing at ``t = steps`` and holds.
    """

    name = "exponential"
    start: float
    gamma: float
    steps: int | None = None

    def __post_init__(self) -> None:
        setattr_frozen(self, "start", check_finite("start", self.start))
        setattr_frozen(self, "gamma", check_positive("gamma", self.gamma))
        setattr_frozen(self, "steps", check_length("steps", self.steps, allow_none=True))

    def _values(self, t: FloatArray) -> FloatArray:
        if self.steps is not None:
            t = np.minimum(t, self.steps)
        return self.start * self.gamma**t


@register
@dataclass(frozen=True, repr=False)
class step(Schedule):
    """Step decay: ``v(t) = start · gamma ^ floor(t / step_size)``.

    PyTorch's ``StepLR``. ``steps`` optionally gives it a length; by default it never ends.
    """

    name = "step"
    start: float
    step_size: int
    gamma: float = 0.1
    steps: int | None = None

    def __post_init__(self) -> None:
        setattr_frozen(self, "start", check_finite("start", self.start))
        setattr_frozen(self, "step_size", check_length("step_size", self.step_size))
        setattr_frozen(self, "gamma", check_positive("gamma", self.gamma))
        setattr_frozen(self, "steps", check_length("steps", self.steps, allow_none=True))

    def _values(self, t: FloatArray) -> FloatArray:
        if self.steps is not None:
            t = np.minimum(t, self.steps)
        return self.start * self.gamma ** np.floor(t / self.step_size)


@register
@dataclass(frozen=True, repr=False)
class multistep(Schedule):
    """Decay by ``gamma`` at each milestone: ``v(t) = start · gamma ^ #{m in milestones : m <= t}``.

    PyTorch's ``MultiStepLR`` (milestones in optimizer steps here; wrap in
    :func:`~lrkit.schedules.per_epoch` to give them in epochs).
    """

    name = "multistep"
    start: float
    milestones: tuple[int, ...]
    gamma: float = 0.1
    steps: int | None = None

    def __post_init__(self) -> None:
        setattr_frozen(self, "start", check_finite("start", self.start))
        ms = tuple(self.milestones)
        for m in ms:
            check_length("each milestone", m)
        if any(b <= a for a, b in itertools.pairwise(ms)):
            raise ValueError(f"milestones must be strictly increasing, got {list(ms)}")
        if not ms:
            raise ValueError("milestones must name at least one step; use constant(...) for none")
        setattr_frozen(self, "milestones", tuple(int(m) for m in ms))
        setattr_frozen(self, "gamma", check_positive("gamma", self.gamma))
        setattr_frozen(self, "steps", check_length("steps", self.steps, allow_none=True))

    def _values(self, t: FloatArray) -> FloatArray:
        if self.steps is not None:
            t = np.minimum(t, self.steps)
        n = np.searchsorted(np.asarray(self.milestones, dtype=np.float64), t, side="right")
        return self.start * self.gamma ** n.astype(np.float64)


@register
@dataclass(frozen=True, repr=False)
class polynomial(Schedule):
    """Polynomial decay: ``v(t) = (start - end) · (1 - min(t, steps)/steps)^power + end``.

    PyTorch's ``PolynomialLR`` when ``end = 0``; ``power = 1`` is a linear decay.
    """

    name = "polynomial"
    start: float
    end: float
    steps: int
    power: float = 1.0

    def __post_init__(self) -> None:
        setattr_frozen(self, "start", check_finite("start", self.start))
        setattr_frozen(self, "end", check_finite("end", self.end))
        setattr_frozen(self, "steps", check_length("steps", self.steps))
        setattr_frozen(self, "power", check_positive("power", self.power))

    def _values(self, t: FloatArray) -> FloatArray:
        return (self.start - self.end) * (1.0 - _progress(t, self.steps)) ** self.power + self.end


@register
@dataclass(frozen=True, repr=False)
class cosine(Schedule):
    """Cosine annealing (Loshchilov & Hutter 2017, SGDR, arXiv 1608.03983), one half period.

    ``v(t) = end + (start - end) · (1 + cos(π · min(t, steps) / steps)) / 2``. PyTorch's
    ``CosineAnnealingLR`` with ``T_max = steps`` and ``eta_min = end``, except that past ``steps``
    lrkit holds ``end`` where PyTorch's curve rises again.
    """

    name = "cosine"
    start: float
    steps: int
    end: float = 0.0

    def __post_init__(self) -> None:
        setattr_frozen(self, "start", check_finite("start", self.start))
        setattr_frozen(self, "steps", check_length("steps", self.steps))
        setattr_frozen(self, "end", check_finite("end", self.end))

    def _values(self, t: FloatArray) -> FloatArray:
        return (
            self.end
            + (self.start - self.end) * (1.0 + np.cos(np.pi * _progress(t, self.steps))) / 2.0
        )


@register
@dataclass(frozen=True, repr=False, eq=True)
class custom(Schedule):
    """Wrap a plain function ``fn(step: int) -> float`` as a schedule.

    It composes and drives like any other schedule but cannot be serialised: ``to_dict`` raises
    a ``TypeError`` rather than silently dropping the function. ``steps`` optionally gives it a
    length; past it the value at ``steps`` is held.
    """

    name = "custom"
    fn: Callable[[Any], float] = field(compare=True)
    steps: int | None = None

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"fn must be callable as fn(step) -> float, got {self.fn!r}")
        setattr_frozen(self, "steps", check_length("steps", self.steps, allow_none=True))

    def _values(self, t: FloatArray) -> FloatArray:
        if self.steps is not None:
            t = np.minimum(t, self.steps)
        flat = [float(self.fn(_as_step(x))) for x in t.ravel()]
        return np.asarray(flat, dtype=np.float64).reshape(t.shape)

    def __repr__(self) -> str:
        length = "" if self.steps is None else f", steps={self.steps}"
        return f"custom({callable_name(self.fn)}{length})"


def _as_step(x: Any) -> int | float:
    v = float(x)
    return int(v) if v.is_integer() else v
