"""Composition: sequence, warmup, repeat, scale, clamp, product, per_epoch, take, and
warmup-stable-decay. Each piece sees its own step from 0, so composites stay pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._base import (
    FloatArray,
    Schedule,
    check_count,
    check_finite,
    check_length,
    check_non_negative,
    check_positive,
    check_schedule,
    check_steps,
    register,
    setattr_frozen,
)

__all__ = [
    "clamp",
    "per_epoch",
    "product",
    "repeat",
    "scale",
    "sequence",
    "take",
    "warmup",
    "wsd",
]


@register
@dataclass(frozen=True, repr=False)
class take(Schedule):
    """The first ``steps`` steps of ``schedule``, then its value at ``steps`` is held.

    Gives an endless schedule (a constant, a cyclic wave) a length for :func:`sequence`.
    """

    name = "take"
    schedule: Schedule
    steps: int

    def __post_init__(self) -> None:
        check_schedule("schedule", self.schedule)
        setattr_frozen(self, "steps", check_steps("steps", self.steps))

    def _values(self, t: FloatArray) -> FloatArray:
        return self.schedule._values(np.minimum(t, self.steps))

    def observe(self, metric: float, step: int) -> bool:
        return step <= self.steps and self.schedule.observe(metric, step)


@register
@dataclass(frozen=True, repr=False)
class Sequence(Schedule):
    """Pieces joined end to end by their lengths; built by :func:`sequence`."""

    name = "sequence"
    pieces: tuple[Schedule, ...]

    def __post_init__(self) -> None:
        pieces = tuple(self.pieces)
        if not pieces:
            raise ValueError("sequence needs at least one piece")
        for i, p in enumerate(pieces):
            check_schedule(f"piece {i}", p)
            if p.steps is None and i < len(pieces) - 1:
                raise ValueError(
                    f"piece {i} ({p!r}) never ends, so the pieces after it would never run; give "
                    "it a length with (schedule, steps) or take(schedule, steps)"
                )
        setattr_frozen(self, "pieces", pieces)

    @property
    def offsets(self) -> tuple[int, ...]:
        """The step at which each piece starts."""
        out = [0]
        for p in self.pieces[:-1]:
            out.append(out[-1] + int(p.steps or 0))
        return tuple(out)

    @property
    def steps(self) -> int | None:
        last = self.pieces[-1].steps
        return None if last is None else self.offsets[-1] + last

    def _index(self, t: FloatArray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.offsets[1:]), t, side="right")

    def _values(self, t: FloatArray) -> FloatArray:
        out = np.empty(t.shape, dtype=np.float64)
        idx = self._index(t)
        for i, (piece, off) in enumerate(zip(self.pieces, self.offsets, strict=True)):
            mask = idx == i
            if np.any(mask):
                out[mask] = piece._values(t[mask] - off)
        return out

    def observe(self, metric: float, step: int) -> bool:
        i = int(self._index(np.asarray([float(step)]))[0])
        return self.pieces[i].observe(metric, step - self.offsets[i])

    def __repr__(self) -> str:
        return f"sequence({', '.join(repr(p) for p in self.pieces)})"


def sequence(*pieces: Schedule | tuple[Schedule, int]) -> Sequence:
    """Join schedules end to end: piece ``k`` runs for its own ``steps`` and sees its own step
    from 0 (optax's ``join_schedules``; PyTorch's ``SequentialLR`` without its off-by-one).

    A piece may be ``(schedule, steps)`` to cut an endless one (same as ``take``). Only the last
    piece may be endless. The join is continuous when each piece ends where the next begins.
    A metric-driven piece (:func:`reduce_on_plateau`) may follow a warmup: metrics reported
    during the warmup are ignored, later ones are fed to it.
    """
    norm: list[Schedule] = []
    for p in pieces:
        if isinstance(p, tuple):
            if len(p) != 2:
                raise ValueError(f"a tuple piece must be (schedule, steps), got {p!r}")
            norm.append(take(p[0], p[1]))
        else:
            norm.append(p)
    return Sequence(tuple(norm))


WarmupShape = Literal["linear", "exponential"]


@register
@dataclass(frozen=True, repr=False)
class Warmup(Schedule):
    """A ramp prepended to a schedule; built by :func:`warmup`."""

    name = "warmup"
    schedule: Schedule
    warmup_steps: int
    start: float = 0.0
    shape: WarmupShape = "linear"

    def __post_init__(self) -> None:
        check_schedule("schedule", self.schedule)
        setattr_frozen(self, "warmup_steps", check_steps("steps", self.warmup_steps))
        if self.shape == "linear":
            setattr_frozen(self, "start", check_finite("start", self.start))
        elif self.shape == "exponential":
            setattr_frozen(self, "start", check_positive("start (exponential warmup)", self.start))
            if self.schedule(0) <= 0:
                raise ValueError(
                    "an exponential warmup needs the schedule to start above 0, got "
                    f"{self.schedule(0)}; use shape='linear'"
                )
        else:
            raise ValueError(f"shape must be 'linear' or 'exponential', got {self.shape!r}")

    @property
    def steps(self) -> int | None:
        inner = self.schedule.steps
        return None if inner is None else self.warmup_steps + inner

    def _values(self, t: FloatArray) -> FloatArray:
        w = self.warmup_steps
        top = float(self.schedule._values(np.zeros(1))[0])
        frac = np.minimum(t, w) / w
        if self.shape == "linear":
            ramp = self.start + (top - self.start) * frac
        else:
            ramp = self.start * (top / self.start) ** frac
        out = np.asarray(ramp, dtype=np.float64)
        late = t >= w
        if np.any(late):
            out = out.copy()
            out[late] = self.schedule._values(t[late] - w)
        return out

    def observe(self, metric: float, step: int) -> bool:
        return step >= self.warmup_steps and self.schedule.observe(metric, step - self.warmup_steps)

    def __repr__(self) -> str:
        extra = "" if self.start == 0.0 else f", start={self.start!r}"
        extra += "" if self.shape == "linear" else f", shape={self.shape!r}"
        return f"warmup({self.schedule!r}, steps={self.warmup_steps}{extra})"


def warmup(
    schedule: Schedule, steps: int, start: float = 0.0, shape: WarmupShape = "linear"
) -> Warmup:
    """Prepend a warmup of ``steps`` updates that ramps from ``start`` to ``schedule(0)``.

    ``linear``: ``v(t) = start + (s(0) - start) · t / steps``; ``exponential``: ``v(t) = start ·
    (s(0) / start)^(t / steps)``; then ``v(t) = s(t - steps)``. Goyal et al. 2017 (arXiv
    1706.02677) warm up linearly over 5 epochs for large batches. The total length is
    ``steps + schedule.steps``: to fit a fixed budget ``N``, build the main schedule with
    ``N - steps``.
    """
    return Warmup(schedule, steps, start, shape)


@register
@dataclass(frozen=True, repr=False)
class repeat(Schedule):
    """Repeat a finite schedule: ``v(t) = s(t mod L)`` for ``times`` cycles (forever if None).

    After the last repetition the schedule's final value ``s(L)`` is held.
    """

    name = "repeat"
    schedule: Schedule
    times: int | None = None

    def __post_init__(self) -> None:
        check_schedule("schedule", self.schedule)
        if self.schedule.steps is None:
            raise ValueError(f"repeat needs a schedule with a length, got {self.schedule!r}")
        setattr_frozen(self, "times", check_length("times", self.times, allow_none=True))

    @property
    def steps(self) -> int | None:
        length = int(self.schedule.steps or 0)
        return None if self.times is None else length * self.times

    def _values(self, t: FloatArray) -> FloatArray:
        length = float(self.schedule.steps or 0)
        local = np.mod(t, length)
        if self.times is not None:
            local = np.where(t >= length * self.times, length, local)
        return self.schedule._values(local)

    def observe(self, metric: float, step: int) -> bool:
        return self.schedule.observe(metric, step % int(self.schedule.steps or 1))


@register
@dataclass(frozen=True, repr=False)
class scale(Schedule):
    """A schedule times a constant: ``v(t) = factor · s(t)``."""

    name = "scale"
    schedule: Schedule
    factor: float

    def __post_init__(self) -> None:
        check_schedule("schedule", self.schedule)
        setattr_frozen(self, "factor", check_finite("factor", self.factor))

    @property
    def steps(self) -> int | None:
        return self.schedule.steps

    def _values(self, t: FloatArray) -> FloatArray:
        return self.factor * self.schedule._values(t)


@register
@dataclass(frozen=True, repr=False)
class clamp(Schedule):
    """A schedule limited to ``[low, high]``: ``v(t) = min(max(s(t), low), high)``."""

    name = "clamp"
    schedule: Schedule
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        check_schedule("schedule", self.schedule)
        if self.low is None and self.high is None:
            raise ValueError("clamp needs low, high or both")
        if self.low is not None:
            setattr_frozen(self, "low", check_finite("low", self.low))
        if self.high is not None:
            setattr_frozen(self, "high", check_finite("high", self.high))
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")

    @property
    def steps(self) -> int | None:
        return self.schedule.steps

    def _values(self, t: FloatArray) -> FloatArray:
        return np.clip(self.schedule._values(t), self.low, self.high)


@register
@dataclass(frozen=True, repr=False)
class Product(Schedule):
    """Pointwise product of schedules; built by :func:`product`."""

    name = "product"
    factors: tuple[Schedule, ...]

    def __post_init__(self) -> None:
        factors = tuple(self.factors)
        if len(factors) < 2:
            raise ValueError("product needs at least two schedules")
        for i, f in enumerate(factors):
            check_schedule(f"factor {i}", f)
        setattr_frozen(self, "factors", factors)

    @property
    def steps(self) -> int | None:
        lengths = [f.steps for f in self.factors]
        if any(n is None for n in lengths):
            return None
        return max(int(n or 0) for n in lengths)

    def _values(self, t: FloatArray) -> FloatArray:
        out = self.factors[0]._values(t)
        for f in self.factors[1:]:
            out = out * f._values(t)
        return out

    def __repr__(self) -> str:
        return f"product({', '.join(repr(f) for f in self.factors)})"


def product(*factors: Schedule) -> Product:
    """Multiply schedules pointwise: ``v(t) = s1(t) · s2(t) · ...``.

    What PyTorch's ``ChainedScheduler`` does with multiplicative schedulers, for example
    ``product(exponential(0.1, 0.999), multistep(1.0, [3000, 6000]))``. It ends when all factors
    have ended (each holds its final value after its own end).
    """
    return Product(tuple(factors))


@register
@dataclass(frozen=True, repr=False)
class per_epoch(Schedule):
    """A schedule written in epochs, stepped per optimizer update: ``v(t) = s(floor(t / n))``
    with ``n = steps_per_epoch``. The value changes only at epoch boundaries (a staircase), so
    ``per_epoch(multistep(0.1, [30, 60]), len(loader))`` does what ``MultiStepLR`` stepped once
    per epoch does, without mixing units."""

    name = "per_epoch"
    schedule: Schedule
    steps_per_epoch: int

    def __post_init__(self) -> None:
        check_schedule("schedule", self.schedule)
        setattr_frozen(
            self, "steps_per_epoch", check_steps("steps_per_epoch", self.steps_per_epoch)
        )

    @property
    def steps(self) -> int | None:
        inner = self.schedule.steps
        return None if inner is None else inner * self.steps_per_epoch

    def _values(self, t: FloatArray) -> FloatArray:
        return self.schedule._values(np.floor(t / self.steps_per_epoch))

    def observe(self, metric: float, step: int) -> bool:
        return self.schedule.observe(metric, step // self.steps_per_epoch)


DecayShape = Literal["linear", "cosine", "1-sqrt"]


@register
@dataclass(frozen=True, repr=False)
class wsd(Schedule):
    """Warmup-stable-decay (Hu et al. 2024, MiniCPM, arXiv 2404.06395; Hägele et al. 2024,
    arXiv 2405.18392).

    A linear warmup ``start → peak`` over ``warmup_steps``, a constant ``peak``, then a decay to
    ``end`` over the last ``decay_steps`` of ``total_steps``. With ``p`` the decay's progress in
    [0, 1], the decay is ``end + (peak - end) · g(p)`` where ``g`` is ``1 - p`` (linear),
    ``(1 + cos πp) / 2`` (cosine) or ``1 - sqrt(p)`` (Hägele et al.'s "1-sqrt" cooldown).
    """

    name = "wsd"
    peak: float
    total_steps: int
    warmup_steps: int
    decay_steps: int
    end: float = 0.0
    decay_shape: DecayShape = "linear"
    start: float = 0.0

    def __post_init__(self) -> None:
        setattr_frozen(self, "peak", check_positive("peak", self.peak))
        setattr_frozen(self, "total_steps", check_steps("total_steps", self.total_steps))
        setattr_frozen(self, "warmup_steps", check_count("warmup_steps", self.warmup_steps))
        setattr_frozen(self, "decay_steps", check_steps("decay_steps", self.decay_steps))
        if self.warmup_steps + self.decay_steps > self.total_steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) + decay_steps ({self.decay_steps}) exceed "
                f"total_steps ({self.total_steps}); shorten them or train longer"
            )
        setattr_frozen(self, "end", check_non_negative("end", self.end))
        setattr_frozen(self, "start", check_non_negative("start", self.start))
        if self.end > self.peak or self.start > self.peak:
            raise ValueError(f"start and end must be <= peak ({self.peak})")
        if self.decay_shape not in ("linear", "cosine", "1-sqrt"):
            raise ValueError(
                f"decay_shape must be 'linear', 'cosine' or '1-sqrt', got {self.decay_shape!r}"
            )

    @property
    def steps(self) -> int | None:
        return self.total_steps

    def _values(self, t: FloatArray) -> FloatArray:
        w, d, n = self.warmup_steps, self.decay_steps, self.total_steps
        out = np.full(t.shape, self.peak, dtype=np.float64)
        if w > 0:
            rising = t < w
            out = np.where(rising, self.start + (self.peak - self.start) * t / w, out)
        p = np.clip((t - (n - d)) / d, 0.0, 1.0)
        if self.decay_shape == "linear":
            g = 1.0 - p
        elif self.decay_shape == "cosine":
            g = (1.0 + np.cos(math.pi * p)) / 2.0
        else:
            g = 1.0 - np.sqrt(p)
        return np.where(t > n - d, self.end + (self.peak - self.end) * g, out)
