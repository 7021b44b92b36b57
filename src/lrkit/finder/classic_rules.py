"""The classic rules for reading a learning rate off a range-test curve, each a pure function
of ``(lrs, losses)`` that reads the curve it is given, normally the EMA-smoothed loss of the range
test (:func:`ema`): :func:`suggest_minimum`, :func:`suggest_steepest` and :func:`suggest_valley`.
:mod:`lrkit.finder.suggest` compares them with lrkit's own rule and adds uncertainty bands."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "STEEPEST_SKIP_END",
    "STEEPEST_SKIP_START",
    "ArrayLike",
    "FloatArray",
    "ema",
    "finite_curve",
    "suggest_minimum",
    "suggest_steepest",
    "suggest_valley",
]

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]

STEEPEST_SKIP_START = 10
"""Points :func:`suggest_steepest` leaves out at the start of a curve (pytorch-lr-finder's
default ``skip_start``)."""
STEEPEST_SKIP_END = 5
"""Points :func:`suggest_steepest` leaves out at the end of a curve (pytorch-lr-finder's
default ``skip_end``)."""


def finite_curve(lrs: ArrayLike, losses: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate a range-test curve, drop leading points with ``lr <= 0`` (a linear sweep from 0
    has no place on a log axis) and cut it at the first non-finite loss."""
    x = np.asarray(lrs, dtype=np.float64).reshape(-1)
    y = np.asarray(losses, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"lrs and losses differ in length: {x.size} vs {y.size}")
    if not np.all(np.isfinite(x)):
        raise ValueError("lrs must be finite")
    if x.size > 1 and np.any(np.diff(x) <= 0):
        raise ValueError("lrs must be strictly increasing")
    positive = int(np.searchsorted(x, 0.0, side="right"))
    x, y = x[positive:], y[positive:]
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        x, y = x[: bad[0]], y[: bad[0]]
    return x, y


def ema(losses: ArrayLike, beta: float = 0.98) -> FloatArray:
    """Bias-corrected exponential moving average, as used by the range test.

    ``avg_i = beta * avg_(i-1) + (1 - beta) * loss_i`` with ``avg_(-1) = 0``, and
    ``smoothed_i = avg_i / (1 - beta**(i+1))`` (Adam's bias correction: without it the first
    values are pulled towards 0). ``beta = 0`` returns the losses unchanged. Non-finite values
    propagate.
    """
    y = np.asarray(losses, dtype=np.float64).reshape(-1)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    if beta == 0.0 or y.size == 0:
        same: FloatArray = y.copy()
        return same
    out: FloatArray = np.empty_like(y)
    avg = 0.0
    correction = 1.0
    for i, v in enumerate(y):
        avg = beta * avg + (1.0 - beta) * v
        correction *= beta
        out[i] = avg / (1.0 - correction)
    return out


def suggest_minimum(lrs: ArrayLike, losses: ArrayLike) -> float | None:
    """The LR at the minimum of ``losses`` divided by 10.

    The rule of the CLR literature (Smith 2015's range test read in the PyTorch tutorial and
    fastai's ``minimum``): the minimum marks where the LR becomes too large; a tenth of it is
    safely inside the range where the loss falls. Pass the smoothed loss. ``None`` for an empty
    curve. The result can be below ``min(lrs)`` when the minimum is in the first decade.
    """
    x, y = finite_curve(lrs, losses)
    if y.size == 0:
        return None
    return float(x[int(np.argmin(y))] / 10.0)


def suggest_steepest(
    lrs: ArrayLike,
    losses: ArrayLike,
    *,
    skip_start: int = STEEPEST_SKIP_START,
    skip_end: int = STEEPEST_SKIP_END,
) -> float | None:
    """The LR where ``losses`` fall fastest per unit of log-LR, away from the ends of the sweep.

    The rule of pytorch-lr-finder (its ``plot(suggest_lr=True)``) and fastai's ``steep``: the
    first ``skip_start`` and the last ``skip_end`` points are left out (pytorch-lr-finder's
    defaults, 10 and 5), and the suggestion is the LR at the most negative
    ``np.gradient(losses, ln(lrs))`` of the rest. The first points of a smoothed curve move most
    from one step to the next (the moving average has seen only a few losses, so noise alone
    can make them the steepest drop, at the very first LR of the sweep), and the last ones are
    the divergence; on an exponential sweep the gradient per unit of log-LR has its minimum
    where pytorch-lr-finder's gradient per step has, and on a linear sweep it is not biased
    towards the densely sampled end. The answer always lies within the points read. Pass the
    smoothed loss. It fails badly when the loss spikes and recovers during the sweep: the
    recovery is the steepest drop.

    ``None`` when fewer than ``skip_start + skip_end + 2`` points are finite (pytorch-lr-finder
    refuses such a curve too) or the loss never falls between the skipped ends.
    """
    for name, value in (("skip_start", skip_start), ("skip_end", skip_end)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    x, y = finite_curve(lrs, losses)
    if y.size < max(3, skip_start + skip_end + 2):
        return None
    x, y = x[skip_start : y.size - skip_end], y[skip_start : y.size - skip_end]
    grad = np.gradient(y, np.log(x))
    i = int(np.argmin(grad))
    if grad[i] >= 0:
        return None
    return float(x[i])


def suggest_valley(lrs: ArrayLike, losses: ArrayLike) -> float | None:
    """A point two thirds of the way down the longest descending stretch of ``losses``.

    The longest run of consecutive strict decreases is found; the suggestion is the LR at index
    ``start + 2/3 * (end - start)`` of that run (the idea of fastai's ``valley``, which tends to
    be conservative: often 10-30x below the best one-cycle peak). ``None`` when the loss never
    decreases.
    """
    x, y = finite_curve(lrs, losses)
    if y.size < 2:
        return None
    down = np.diff(y) < 0
    best_len, best_start, run_start = 0, 0, 0
    for i, d in enumerate(down):
        if not d:
            run_start = i + 1
            continue
        length = i + 1 - run_start
        if length > best_len:
            best_len, best_start = length, run_start
    if best_len == 0:
        return None
    k = best_start + round(2.0 * best_len / 3.0)
    return float(x[k])
