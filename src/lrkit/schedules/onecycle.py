"""The one-cycle policy (Smith & Topin 2017, arXiv 1708.07120; Smith 2018, arXiv 1803.09820)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ._base import (
    FloatArray,
    Hyper,
    Schedule,
    check_finite,
    check_length,
    check_non_negative,
    check_positive,
    check_steps,
    register,
    setattr_frozen,
)

__all__ = [
    "ONE_CYCLE_DIV_FACTOR",
    "ONE_CYCLE_FINAL_DIV_FACTOR",
    "Hyper",
    "one_cycle",
    "one_cycle_lr",
    "one_cycle_momentum",
    "piecewise",
]

Anneal = Literal["cos", "linear"]


@register
@dataclass(frozen=True, repr=False)
class piecewise(Schedule):
    """Annealing between knots: phase ``i`` runs from ``knots[i]`` to ``knots[i+1]``.

    For a step ``t`` in phase ``i`` (the first phase with ``t <= knots[i+1]``), with
    ``p = (t - knots[i]) / (knots[i+1] - knots[i])``::

        cos:    v = b + (a - b) · (1 + cos(π p)) / 2        a = values[i], b = values[i+1]
        linear: v = a + (b - a) · p

    ``shape`` is one name for every phase or one per phase. Knots may be fractional. Past the last
    knot the last value is held. ``steps`` (default ``ceil(knots[-1])``) is the schedule's length.
    This is the machinery of :func:`one_cycle`, and evaluates phases exactly as PyTorch's
    ``OneCycleLR`` does.
    """

    name = "piecewise"
    knots: tuple[float, ...]
    values: tuple[float, ...]
    shape: Anneal | tuple[Anneal, ...] = "cos"
    steps: int | None = None

    def __post_init__(self) -> None:
        knots = tuple(check_finite("each knot", k) for k in self.knots)
        values = tuple(check_finite("each value", v) for v in self.values)
        if len(knots) < 2 or len(knots) != len(values):
            raise ValueError(
                "knots and values must have the same length, at least 2 "
                f"(got {len(knots)} knots and {len(values)} values)"
            )
        if knots[0] != 0:
            raise ValueError(f"the first knot must be step 0, got {knots[0]}")
        if any(b < a for a, b in itertools.pairwise(knots)):
            raise ValueError(f"knots must be non-decreasing, got {list(knots)}")
        shapes = (self.shape,) * (len(knots) - 1) if isinstance(self.shape, str) else self.shape
        shapes = tuple(shapes)
        if len(shapes) != len(knots) - 1 or any(s not in ("cos", "linear") for s in shapes):
            raise ValueError(
                f"shape must be 'cos' or 'linear', or one of them per phase ({len(knots) - 1} "
                f"phases), got {self.shape!r}"
            )
        setattr_frozen(self, "knots", knots)
        setattr_frozen(self, "values", values)
        setattr_frozen(self, "shape", shapes[0] if len(set(shapes)) == 1 else shapes)
        steps = self.steps if self.steps is not None else max(1, math.ceil(knots[-1]))
        setattr_frozen(self, "steps", check_length("steps", steps))

    def _values(self, t: FloatArray) -> FloatArray:
        knots = np.asarray(self.knots)
        vals = np.asarray(self.values)
        ends = knots[1:]
        i = np.minimum(np.searchsorted(ends, t, side="left"), len(ends) - 1)
        lo, hi = knots[i], knots[i + 1]
        span = hi - lo
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(span > 0, (t - lo) / np.where(span > 0, span, 1.0), 1.0)
        p = np.minimum(p, 1.0)
        a, b = vals[i], vals[i + 1]
        if isinstance(self.shape, str):
            cos = np.full(t.shape, self.shape == "cos")
        else:
            cos = np.asarray([s == "cos" for s in self.shape])[i]
        cos_v = b + (a - b) / 2.0 * (np.cos(math.pi * p) + 1.0)
        lin_v = (b - a) * p + a
        result: FloatArray = np.where(cos, cos_v, lin_v)
        return result


ONE_CYCLE_DIV_FACTOR = 25.0
"""The one default start of the one-cycle policy: ``start = peak / ONE_CYCLE_DIV_FACTOR``.

The same as ``div_factor=25`` of PyTorch's ``OneCycleLR`` and fastai's ``fit_one_cycle``, inside
the range Smith's papers used (Smith & Topin 2017: 0.1 to 3.0, i.e. /30; Smith 2018: /5 to /10),
and the start under which lrkit's default suggestion was measured as a one-cycle peak
(``benchmarks/suggestion_regret.py``). :func:`one_cycle` and the range test's
``RangeTestResult.one_cycle()`` and ``bounds("one_cycle")`` all use it."""

ONE_CYCLE_FINAL_DIV_FACTOR = 1e4
"""The default end of the one-cycle policy: ``end = start / ONE_CYCLE_FINAL_DIV_FACTOR``
(PyTorch's ``final_div_factor``)."""


def _check_anneal(anneal: object) -> None:
    if anneal not in ("cos", "linear"):
        raise ValueError(f"anneal must be 'cos' or 'linear', got {anneal!r}")


def _cycle_knots(total_steps: int, pct_start: float, three_phase: bool) -> tuple[float, ...]:
    """The knots of one cycle (see :func:`one_cycle`), validating ``pct_start`` and
    ``three_phase``."""
    pct = check_finite("pct_start", pct_start)
    if not 0.0 < pct < 1.0:
        raise ValueError(f"pct_start must be in (0, 1), got {pct_start}")
    if not isinstance(three_phase, bool):
        raise TypeError(f"three_phase must be True or False, got {three_phase!r}")
    n = float(total_steps)
    up = pct * n - 1.0
    if up < 0:
        raise ValueError(
            f"the warm-up phase is empty: pct_start · total_steps = {pct * n:g} < 1; raise "
            "total_steps or pct_start"
        )
    if not three_phase:
        return (0.0, up, n - 1.0)
    knots = (0.0, up, 2.0 * pct * n - 2.0, n - 1.0)
    if knots[2] > knots[3]:
        raise ValueError(
            f"three_phase needs pct_start <= 0.5 so the phases fit in total_steps; got "
            f"pct_start={pct_start}"
        )
    return knots


def _call(name: str, args: list[tuple[str, Any]]) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in args)})"


def _cycle_args(s: one_cycle_lr | one_cycle_momentum) -> list[tuple[str, Any]]:
    """The cycle's geometry as it is written in a call: the arguments that differ from their
    defaults."""
    out: list[tuple[str, Any]] = []
    if s.pct_start != 0.3:
        out.append(("pct_start", s.pct_start))
    if s.anneal != "cos":
        out.append(("anneal", s.anneal))
    if s.three_phase:
        out.append(("three_phase", True))
    return out


class _Cycle(Schedule):
    """A piece of the one-cycle policy: a :class:`piecewise` curve over ``total_steps`` built
    once from the checked fields, which :meth:`_freeze` stores back."""

    total_steps: int

    def _freeze(
        self, fields: dict[str, Any], knots: tuple[float, ...], values: tuple[float, ...]
    ) -> None:
        anneal: Anneal = getattr(self, "anneal")  # noqa: B009 - a field of the subclasses
        for key, value in fields.items():
            setattr_frozen(self, key, value)
        curve = piecewise(knots, values, anneal, steps=fields["total_steps"])
        setattr_frozen(self, "_curve", curve)

    @property
    def steps(self) -> int:
        """``total_steps``."""
        return self.total_steps

    def _values(self, t: FloatArray) -> FloatArray:
        curve: piecewise = self.__dict__["_curve"]
        return curve._values(t)


@register
@dataclass(frozen=True, repr=False)
class one_cycle_lr(_Cycle):
    """The learning rate of the one-cycle policy; :func:`one_cycle` pairs it with
    :class:`one_cycle_momentum`.

    ``start`` defaults to ``peak / ONE_CYCLE_DIV_FACTOR`` (``peak / 25``) and ``end`` to
    ``start / 1e4``; the shape is described in :func:`one_cycle`. Its repr reads like the call
    that made it, for example ``one_cycle_lr(peak=0.8, total_steps=1000)``.
    """

    name = "one_cycle_lr"
    peak: float
    total_steps: int
    start: float | None = None
    end: float | None = None
    pct_start: float = 0.3
    anneal: Anneal = "cos"
    three_phase: bool = False

    def __post_init__(self) -> None:
        peak = check_positive("peak", self.peak)
        total = check_steps("total_steps", self.total_steps)
        start = (
            peak / ONE_CYCLE_DIV_FACTOR
            if self.start is None
            else check_non_negative("start", self.start)
        )
        end = (
            start / ONE_CYCLE_FINAL_DIV_FACTOR
            if self.end is None
            else check_non_negative("end", self.end)
        )
        if start > peak:
            raise ValueError(f"start ({start}) must be <= peak ({peak})")
        if end > peak:
            raise ValueError(f"end ({end}) must be <= peak ({peak})")
        _check_anneal(self.anneal)
        knots = _cycle_knots(total, self.pct_start, self.three_phase)
        values = (start, peak, start, end) if self.three_phase else (start, peak, end)
        fields = {"peak": peak, "total_steps": total, "start": start, "end": end}
        self._freeze({**fields, "pct_start": float(self.pct_start)}, knots, values)

    def call_args(self) -> list[tuple[str, Any]]:
        """The arguments of the call that builds this schedule, those at their defaults left
        out (shared with :class:`Hyper`'s repr, which reads ``one_cycle(...)``)."""
        out: list[tuple[str, Any]] = [("peak", self.peak), ("total_steps", self.total_steps)]
        start = float(self.start or 0.0)
        if start != self.peak / ONE_CYCLE_DIV_FACTOR:
            out.append(("start", start))
        if self.end != start / ONE_CYCLE_FINAL_DIV_FACTOR:
            out.append(("end", self.end))
        return out + _cycle_args(self)

    def hyper_repr(self, momentum: Schedule | None) -> str | None:
        """``one_cycle(...)`` for a :class:`Hyper` of this LR with no momentum or with the
        :class:`one_cycle_momentum` that cycles with it; ``None`` otherwise."""
        if momentum is None:
            return _call("one_cycle", [*self.call_args(), ("momentum", None)])
        if isinstance(momentum, one_cycle_momentum) and momentum.matches(self):
            args = self.call_args()
            if (momentum.high, momentum.low) != (0.95, 0.85):
                args.append(("momentum", (momentum.high, momentum.low)))
            return _call("one_cycle", args)
        return None

    def __repr__(self) -> str:
        return _call(self.name, self.call_args())


@register
@dataclass(frozen=True, repr=False)
class one_cycle_momentum(_Cycle):
    """The cyclical momentum of the one-cycle policy: ``high → low`` while the LR of a
    :class:`one_cycle_lr` with the same ``total_steps``, ``pct_start``, ``anneal`` and
    ``three_phase`` rises, ``low → high`` while it falls (held at ``high`` in the third phase).
    Built by :func:`one_cycle`."""

    name = "one_cycle_momentum"
    high: float
    low: float
    total_steps: int
    pct_start: float = 0.3
    anneal: Anneal = "cos"
    three_phase: bool = False

    def __post_init__(self) -> None:
        high = check_finite("momentum", self.high)
        low = check_finite("momentum", self.low)
        if not (0.0 <= low <= 1.0 and 0.0 <= high <= 1.0):
            raise ValueError(
                f"momentum values must lie in [0, 1], got high={self.high!r}, low={self.low!r}"
            )
        total = check_steps("total_steps", self.total_steps)
        _check_anneal(self.anneal)
        knots = _cycle_knots(total, self.pct_start, self.three_phase)
        values = (high, low, high, high) if self.three_phase else (high, low, high)
        fields = {"high": high, "low": low, "total_steps": total}
        self._freeze({**fields, "pct_start": float(self.pct_start)}, knots, values)

    def __repr__(self) -> str:
        args: list[tuple[str, Any]] = [
            ("high", self.high),
            ("low", self.low),
            ("total_steps", self.total_steps),
        ]
        return _call(self.name, args + _cycle_args(self))

    def matches(self, lr: one_cycle_lr) -> bool:
        """Whether this momentum cycles with ``lr`` (same length, phases and shape)."""
        return (self.total_steps, self.pct_start, self.anneal, self.three_phase) == (
            lr.total_steps,
            lr.pct_start,
            lr.anneal,
            lr.three_phase,
        )


def one_cycle(
    peak: float,
    total_steps: int,
    start: float | None = None,
    end: float | None = None,
    pct_start: float = 0.3,
    anneal: Anneal = "cos",
    three_phase: bool = False,
    momentum: tuple[float, float] | None = (0.95, 0.85),
) -> Hyper:
    """The one-cycle policy with cyclical momentum (Smith & Topin 2017; Smith 2018).

    The LR rises from ``start`` (default ``peak / 25``, :data:`ONE_CYCLE_DIV_FACTOR`) to
    ``peak`` over the first ``pct_start · total_steps - 1`` steps, then anneals to ``end``
    (default ``start / 1e4``) at step ``total_steps - 1``. Momentum ``(high, low)`` moves the
    other way: ``high → low`` while the LR rises, ``low → high`` while it falls. With
    ``three_phase`` the LR goes ``start → peak → start`` in two equal phases and then anneals to
    ``end`` with momentum held at ``high`` (Smith 2018's original shape). Phases use ``anneal``
    (cosine or linear)::

        knots  = (0, pct_start·N - 1, N - 1)                      two phases
               = (0, pct_start·N - 1, 2·pct_start·N - 2, N - 1)   three phases
        lr     = piecewise(knots, (start, peak, end))             (start, peak, start, end)
        mom    = piecewise(knots, (high, low, high))              (high, low, high, high)

    Equals ``torch.optim.lr_scheduler.OneCycleLR(max_lr=peak, total_steps=N, div_factor=peak /
    start, final_div_factor=start / end, ...)`` for steps ``0 .. N-1``; the defaults are
    PyTorch's (``div_factor=25``, ``final_div_factor=1e4``). Smith 2018 starts at ``peak/5`` to
    ``peak/10``: pass ``start=peak / 10`` for that. PyTorch raises after step ``N`` and
    extrapolates at step ``N``; lrkit holds ``end`` past ``N - 1``, so training a little longer
    than planned is safe. Smith reports super-convergence with ResNet-56 on CIFAR-10: 92.4% after
    10k iterations against 91.2% after 80k with a piecewise-constant schedule.

    Returns a :class:`Hyper` with ``.lr`` (a :class:`one_cycle_lr`) and ``.momentum`` (a
    :class:`one_cycle_momentum`, ``None`` when ``momentum=None``). Its repr reads like this
    call and ``from_dict(h.to_dict()) == h``.
    """
    lr = one_cycle_lr(peak, total_steps, start, end, pct_start, anneal, three_phase)
    if momentum is None:
        return Hyper(lr=lr)
    if not isinstance(momentum, tuple | list):
        raise TypeError(f"momentum must be a pair (high, low) or None, got {momentum!r}")
    if len(momentum) != 2:
        raise ValueError(f"momentum must be a pair (high, low) or None, got {momentum!r}")
    high, low = momentum
    mom = one_cycle_momentum(high, low, lr.total_steps, lr.pct_start, anneal, three_phase)
    return Hyper(lr=lr, momentum=mom)
