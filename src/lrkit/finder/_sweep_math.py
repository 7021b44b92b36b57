"""The framework-free arithmetic of a range-test sweep: the check of its settings and the
smoothed-loss stop rule. The Keras range test (:mod:`lrkit.keras`) runs its sweep with these, so
its curves, stop reasons and suggestions follow the same rules as :func:`lrkit.range_test`."""

from __future__ import annotations

import math

from lrkit.finder.result import StopReason

__all__ = ["LossWatch", "check_sweep_args"]


def check_sweep_args(
    start_lr: float, end_lr: float, steps: int, mode: str, smoothing: float, diverge: float
) -> None:
    """Raise ``ValueError`` for settings a sweep cannot run with (the messages of
    :func:`lrkit.range_test`)."""
    if mode not in ("exp", "linear"):
        raise ValueError(f"mode must be 'exp' or 'linear', got {mode!r}")
    if not (math.isfinite(start_lr) and math.isfinite(end_lr)):
        raise ValueError("start_lr and end_lr must be finite")
    if mode == "exp" and start_lr <= 0:
        raise ValueError(f"start_lr must be > 0 for an exponential sweep, got {start_lr}")
    if start_lr < 0:
        raise ValueError(f"start_lr must be >= 0, got {start_lr}")
    if start_lr >= end_lr:
        raise ValueError(f"start_lr ({start_lr}) must be smaller than end_lr ({end_lr})")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 10:
        raise ValueError(f"steps must be an int >= 10, got {steps!r}")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    if not diverge > 1.0:
        raise ValueError(f"diverge must be > 1, got {diverge}")


class LossWatch:
    """The running smoothed loss of a sweep and its stop rule.

    Fed the scored loss of each step, it keeps the bias-corrected exponential moving average
    ``avg_i = beta · avg_(i-1) + (1 - beta) · loss_i``, ``smoothed_i = avg_i / (1 - beta^(i+1))``
    (``beta = smoothing``; the raw loss when it is 0) and says when to stop: ``"nan"`` for a
    non-finite loss, ``"diverged"`` once ``smoothed_i > best + (diverge - 1) · |best|``, with
    ``best`` the lowest smoothed loss so far.
    """

    def __init__(self, smoothing: float, diverge: float) -> None:
        self.beta = smoothing
        self.diverge = diverge
        self.smoothed: list[float] = []
        self._avg = 0.0
        self._correction = 1.0
        self._best = math.inf

    def add(self, loss: float) -> StopReason | None:
        """Record one step's loss; returns why the sweep stops here, or ``None`` to go on."""
        if not math.isfinite(loss):
            self.smoothed.append(math.nan)
            return "nan"
        beta = self.beta
        self._avg = beta * self._avg + (1.0 - beta) * loss
        self._correction *= beta
        smooth = self._avg / (1.0 - self._correction) if beta > 0 else loss
        self.smoothed.append(smooth)
        self._best = min(self._best, smooth)
        if smooth > self._best + (self.diverge - 1.0) * abs(self._best):
            return "diverged"
        return None
