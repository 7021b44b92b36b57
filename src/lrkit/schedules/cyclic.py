"""Cyclical learning rates (Smith 2015/2017, "Cyclical Learning Rates for Training Neural Networks",
arXiv 1506.01186) and SGDR, cosine annealing with warm restarts (Loshchilov & Hutter 2017,
arXiv 1608.03983)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._base import (
    FloatArray,
    Schedule,
    check_finite,
    check_length,
    check_positive,
    register,
    setattr_frozen,
)

__all__ = [
    "cyclic",
    "cyclic_momentum",
    "exp_range",
    "sgdr",
    "triangular",
    "triangular2",
]

Mode = Literal["triangular", "triangular2", "exp_range"]
Window = Literal["triangular", "welch", "hann"]
ScaleMode = Literal["cycle", "iterations"]

_MODES = ("triangular", "triangular2", "exp_range")
_WINDOWS = ("triangular", "welch", "hann")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


@dataclass(frozen=True, repr=False)
class _Wave(Schedule):
    """The cycle geometry shared by :class:`cyclic` and :class:`cyclic_momentum`."""

    step_size_up: int
    step_size_down: int | None = None
    mode: Mode = "triangular"
    gamma: float = 1.0
    scale_fn: Callable[[float], float] | None = None
    scale_mode: ScaleMode | None = None
    window: Window = "triangular"
    steps: int | None = None

    def _check_wave(self) -> None:
        setattr_frozen(self, "step_size_up", check_length("step_size_up", self.step_size_up))
        down = self.step_size_down
        if down is None:
            down = self.step_size_up
        setattr_frozen(self, "step_size_down", check_length("step_size_down", down))
        _check_choice("mode", self.mode, _MODES)
        _check_choice("window", self.window, _WINDOWS)
        setattr_frozen(self, "gamma", check_positive("gamma", self.gamma))
        if self.scale_fn is not None and not callable(self.scale_fn):
            raise TypeError(
                f"scale_fn must be callable as scale_fn(x) -> float, got {self.scale_fn!r}"
            )
        default = "iterations" if self.scale_fn is None and self.mode == "exp_range" else "cycle"
        if self.scale_mode is None:
            setattr_frozen(self, "scale_mode", default)
        _check_choice("scale_mode", self.scale_mode, ("cycle", "iterations"))
        if self.scale_fn is None and self.scale_mode != default:
            raise ValueError(
                f"mode={self.mode!r} scales by the {default} number; scale_mode only applies to "
                "a custom scale_fn. Drop scale_mode, or pass scale_fn to scale by the "
                f"{self.scale_mode} number"
            )
        if self.scale_fn is None and self.mode == "exp_range" and self.gamma > 1:
            raise ValueError(
                f"exp_range scales the amplitude by gamma^t, so gamma must be in (0, 1] (got "
                f"{self.gamma}); above 1 the wave grows past peak without limit"
            )
        setattr_frozen(self, "steps", check_length("steps", self.steps, allow_none=True))

    def _scale(self, x: FloatArray) -> FloatArray:
        fn = self.scale_fn
        if fn is None:
            if self.mode == "triangular":
                return np.ones_like(x)
            if self.mode == "triangular2":
                return 1.0 / (2.0 ** (x - 1.0))
            return self.gamma**x
        uniq, inverse = np.unique(x, return_inverse=True)
        vals = np.asarray([float(fn(_plain(u))) for u in uniq], dtype=np.float64)
        return vals[inverse].reshape(x.shape)

    def amplitude(self, t: FloatArray) -> FloatArray:
        """The wave in [0, 1] times the cycle's scale: 1 at a peak, 0 at base."""
        if self.steps is not None:
            t = np.minimum(t, self.steps)
        up = float(self.step_size_up)
        total = up + float(self.step_size_down or self.step_size_up)
        ratio = up / total
        cycle = np.floor(1.0 + t / total)
        x = 1.0 + t / total - cycle
        rising = x <= ratio
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(rising, x / ratio, (x - 1.0) / (ratio - 1.0))
        if self.window == "welch":
            d = 1.0 - frac
            frac = 1.0 - d * d
        elif self.window == "hann":
            frac = 0.5 * (1.0 + np.cos(np.pi * (1.0 - frac)))
        arg = cycle if self.scale_mode == "cycle" else t
        result: FloatArray = frac * self._scale(arg)
        return result


def _plain(x: np.floating) -> float | int:
    v = float(x)
    return int(v) if v.is_integer() else v


@register
@dataclass(frozen=True, repr=False)
class cyclic(_Wave):
    """Cyclical learning rate between ``base`` and ``peak`` (Smith 2015, arXiv 1506.01186).

    With ``up = step_size_up``, ``down = step_size_down`` (default ``up``), ``T = up + down``::

        cycle = floor(1 + t / T)                     # 1, 2, 3, ...
        x     = 1 + t / T - cycle                    # position in the cycle, in [0, 1)
        f     = x / (up/T)         if x <= up/T      # rising: 0 at base, 1 at the peak
                (x - 1) / (up/T - 1) otherwise       # falling
        v(t)  = base + (peak - base) · w(f) · scale(cycle or t)

    The window ``w`` with ``d = 1 - f`` the normalised distance from the peak is ``1 - d``
    (triangular), ``1 - d²`` (Welch) or ``(1 + cos πd) / 2`` (Hann); Smith found all three
    equivalent. ``mode`` sets the scale: ``triangular`` 1, ``triangular2`` ``1 / 2^(cycle-1)``
    (amplitude halves every cycle), ``exp_range`` ``gamma^t``. A custom ``scale_fn`` receives the
    cycle number (``scale_mode="cycle"``, the default for it) or the step (``"iterations"``).

    Equals ``torch.optim.lr_scheduler.CyclicLR(base_lr=base, max_lr=peak, ...)`` at every step.
    Endless unless ``steps`` is given; then it holds its value at ``steps``. Smith recommends a
    half cycle of 2-10 epochs and stopping at the end of a cycle (``steps = k · T``).
    """

    name = "cyclic"
    base: float = 0.0
    peak: float = 0.0

    def __init__(
        self,
        base: float,
        peak: float,
        step_size_up: int,
        step_size_down: int | None = None,
        mode: Mode = "triangular",
        gamma: float = 1.0,
        scale_fn: Callable[[float], float] | None = None,
        scale_mode: ScaleMode | None = None,
        window: Window = "triangular",
        steps: int | None = None,
    ) -> None:
        for k, v in locals().items():
            if k not in ("self", "__class__"):
                setattr_frozen(self, k, v)
        setattr_frozen(self, "base", check_finite("base", base))
        setattr_frozen(self, "peak", check_finite("peak", peak))
        if self.peak < self.base:
            raise ValueError(
                f"peak ({peak}) must be >= base ({base}); for a wave that falls as the learning "
                "rate rises (cyclical momentum) use cyclic_momentum(high, low, ...)"
            )
        self._check_wave()

    def _values(self, t: FloatArray) -> FloatArray:
        a = self.amplitude(t)
        v = self.base + (self.peak - self.base) * a
        # base + (peak - base) can round one ulp past peak; a custom scale_fn above 1 may exceed it
        out: FloatArray = np.where(a <= 1.0, np.minimum(v, self.peak), v)
        return out

    def momentum(self, high: float = 0.95, low: float = 0.85) -> cyclic_momentum:
        """The matching cyclical momentum: ``high`` at base LR, ``low`` at the LR peak."""
        return cyclic_momentum(
            high,
            low,
            self.step_size_up,
            self.step_size_down,
            self.mode,
            self.gamma,
            self.scale_fn,
            self.scale_mode,
            self.window,
            self.steps,
        )

    def __repr__(self) -> str:
        return _wave_repr(self, "cyclic", ("base", self.base), ("peak", self.peak))


@register
@dataclass(frozen=True, repr=False)
class cyclic_momentum(_Wave):
    """A cyclical wave that falls while the LR rises: ``v(t) = high - (high - low) · wave(t)``.

    Same geometry and arguments as :class:`cyclic`; equals the momentum that
    ``torch.optim.lr_scheduler.CyclicLR(cycle_momentum=True, max_momentum=high,
    base_momentum=low)`` writes. Smith 2018 (arXiv 1803.09820) cycles momentum 0.95 → 0.85.
    """

    name = "cyclic_momentum"
    high: float = 0.95
    low: float = 0.85

    def __init__(
        self,
        high: float,
        low: float,
        step_size_up: int,
        step_size_down: int | None = None,
        mode: Mode = "triangular",
        gamma: float = 1.0,
        scale_fn: Callable[[float], float] | None = None,
        scale_mode: ScaleMode | None = None,
        window: Window = "triangular",
        steps: int | None = None,
    ) -> None:
        for k, v in locals().items():
            if k not in ("self", "__class__"):
                setattr_frozen(self, k, v)
        setattr_frozen(self, "high", check_finite("high", high))
        setattr_frozen(self, "low", check_finite("low", low))
        if self.low > self.high:
            raise ValueError(f"low ({low}) must be <= high ({high})")
        self._check_wave()

    def _values(self, t: FloatArray) -> FloatArray:
        a = self.amplitude(t)
        v = self.high - (self.high - self.low) * a
        out: FloatArray = np.where(a <= 1.0, np.maximum(v, self.low), v)
        return out

    def __repr__(self) -> str:
        return _wave_repr(self, "cyclic_momentum", ("high", self.high), ("low", self.low))


def _wave_repr(w: _Wave, name: str, a: tuple[str, float], b: tuple[str, float]) -> str:
    parts = [f"{a[0]}={a[1]!r}", f"{b[0]}={b[1]!r}", f"step_size_up={w.step_size_up}"]
    if w.step_size_down != w.step_size_up:
        parts.append(f"step_size_down={w.step_size_down}")
    if w.scale_fn is not None:
        parts.append(f"scale_fn={getattr(w.scale_fn, '__qualname__', w.scale_fn)}")
        parts.append(f"scale_mode={w.scale_mode!r}")
    else:
        if w.mode != "triangular":
            parts.append(f"mode={w.mode!r}")
        if w.mode == "exp_range" or w.gamma != 1.0:
            parts.append(f"gamma={w.gamma!r}")
        if w.scale_mode != ("iterations" if w.mode == "exp_range" else "cycle"):
            parts.append(f"scale_mode={w.scale_mode!r}")
    if w.window != "triangular":
        parts.append(f"window={w.window!r}")
    if w.steps is not None:
        parts.append(f"steps={w.steps}")
    return f"{name}({', '.join(parts)})"


def triangular(
    base: float,
    peak: float,
    step_size_up: int,
    step_size_down: int | None = None,
    window: Window = "triangular",
    steps: int | None = None,
) -> cyclic:
    """Smith's triangular policy: a constant-amplitude wave between ``base`` and ``peak``.

    ``v(t) = base + (peak - base) · max(0, 1 - |t/step_size - 2·cycle + 1|)``. See :class:`cyclic`.
    """
    return cyclic(
        base, peak, step_size_up, step_size_down, "triangular", window=window, steps=steps
    )


def triangular2(
    base: float,
    peak: float,
    step_size_up: int,
    step_size_down: int | None = None,
    window: Window = "triangular",
    steps: int | None = None,
) -> cyclic:
    """Smith's triangular2 policy: the amplitude halves after every cycle. See :class:`cyclic`."""
    return cyclic(
        base, peak, step_size_up, step_size_down, "triangular2", window=window, steps=steps
    )


def exp_range(
    base: float,
    peak: float,
    step_size_up: int,
    gamma: float,
    step_size_down: int | None = None,
    window: Window = "triangular",
    steps: int | None = None,
) -> cyclic:
    """Smith's exp_range policy: the amplitude is scaled by ``gamma^t``. See :class:`cyclic`."""
    return cyclic(
        base, peak, step_size_up, step_size_down, "exp_range", gamma, window=window, steps=steps
    )


@register
@dataclass(frozen=True, repr=False)
class sgdr(Schedule):
    """Cosine annealing with warm restarts, SGDR (Loshchilov & Hutter 2017, arXiv 1608.03983).

    Cycle ``i`` (from 0) lasts ``T_i = cycle_steps · cycle_mult^i`` steps and starts at
    ``S_i = cycle_steps · (cycle_mult^i - 1) / (cycle_mult - 1)`` (``i · cycle_steps`` when the
    multiplier is 1). Within it, with ``τ = t - S_i``::

        v(t) = end + (peak · peak_decay^i - end) · (1 + cos(π τ / T_i)) / 2

    With ``peak_decay = 1`` this equals ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts
    (T_0=cycle_steps, T_mult=cycle_mult, eta_min=end)`` at every step. Endless unless ``steps``
    is given (then the value at ``steps`` is held).
    """

    name = "sgdr"
    peak: float
    end: float
    cycle_steps: int
    cycle_mult: int = 1
    peak_decay: float = 1.0
    steps: int | None = None

    def __post_init__(self) -> None:
        setattr_frozen(self, "peak", check_finite("peak", self.peak))
        setattr_frozen(self, "end", check_finite("end", self.end))
        if self.peak < self.end:
            raise ValueError(f"peak ({self.peak}) must be >= end ({self.end})")
        setattr_frozen(self, "cycle_steps", check_length("cycle_steps", self.cycle_steps))
        setattr_frozen(self, "cycle_mult", check_length("cycle_mult", self.cycle_mult))
        decay = check_positive("peak_decay", self.peak_decay)
        if decay > 1:
            raise ValueError(f"peak_decay must be in (0, 1], got {decay}")
        setattr_frozen(self, "peak_decay", decay)
        setattr_frozen(self, "steps", check_length("steps", self.steps, allow_none=True))

    def cycle_index(self, t: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """For each step: (cycle i, step within the cycle τ, cycle length T_i)."""
        t0 = float(self.cycle_steps)
        m = self.cycle_mult
        t = np.floor(t)
        if m == 1:
            i = np.floor(t / t0)
            return i, t - i * t0, np.full_like(t, t0)
        i = np.floor(np.log(t / t0 * (m - 1) + 1.0) / math.log(m))
        start = t0 * (float(m) ** i - 1.0) / (m - 1)
        i = np.where(start > t, i - 1, i)  # correct rounding of the logarithm at boundaries
        start = t0 * (float(m) ** i - 1.0) / (m - 1)
        nxt = start + t0 * float(m) ** i
        i = np.where(nxt <= t, i + 1, i)
        start = t0 * (float(m) ** i - 1.0) / (m - 1)
        return i, t - start, t0 * float(m) ** i

    def _values(self, t: FloatArray) -> FloatArray:
        if self.steps is not None:
            t = np.minimum(t, self.steps)
        i, tau, length = self.cycle_index(t)
        top = self.peak * self.peak_decay**i
        return self.end + (top - self.end) * (1.0 + np.cos(math.pi * tau / length)) / 2.0
