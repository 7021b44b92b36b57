"""Learning-rate bounds from a range-test curve.

Smith 2015 (arXiv 1506.01186) reads two numbers off the range test: ``base`` where the loss
starts to fall (accuracy starts to rise) and ``peak`` where the fall slows, becomes ragged or
turns into a rise; the rule of thumb is ``base = peak/3`` or ``peak/4``. Smith 2018 (arXiv
1803.09820) uses the peak as the maximum of the one-cycle policy and starts the cycle at
``peak/5`` to ``peak/10``; Smith & Topin 2017 cycled 0.1 to 3.0 (``peak/30``).

lrkit's choices:

- ``peak`` is lrkit's default suggestion (:func:`~lrkit.finder.suggest.suggest_lrkit`): half the
  LR at the middle of the basin where the loss stops improving, robust to spikes.
- ``kind="one_cycle"``: ``base = peak / 25``, the one default start of lrkit's one-cycle policy
  (:data:`lrkit.schedules.ONE_CYCLE_DIV_FACTOR`: PyTorch's and fastai's ``div_factor``, and the
  start under which the suggestion was measured as a one-cycle peak), so that
  ``bounds("one_cycle")``, ``result.one_cycle(n)`` and ``schedules.one_cycle(peak, n)`` agree.
  Pass ``start=peak / 10`` to the schedule for Smith 2018's start.
- ``kind="cyclic"``: ``base = peak / 4`` (Smith 2015's rule of thumb; the point where the loss
  starts to fall is usually more than a decade lower in a fast exponential sweep, which would
  make the cycle spend most of its time at uselessly small LRs).
"""

from __future__ import annotations

from typing import Literal

import numpy.typing as npt

from lrkit.finder.suggest import analyze_curve
from lrkit.schedules.onecycle import ONE_CYCLE_DIV_FACTOR

__all__ = ["CYCLIC_DIVISOR", "ONE_CYCLE_DIVISOR", "BoundsKind", "lr_bounds"]

BoundsKind = Literal["one_cycle", "cyclic"]

ONE_CYCLE_DIVISOR = ONE_CYCLE_DIV_FACTOR
"""``base = peak / ONE_CYCLE_DIVISOR`` for the one-cycle policy: 25, the default start of
:func:`lrkit.schedules.one_cycle` (one constant, :data:`lrkit.schedules.ONE_CYCLE_DIV_FACTOR`)."""

CYCLIC_DIVISOR = 4.0
"""``base = peak / CYCLIC_DIVISOR`` for cyclical learning rates (Smith 2015: /3 or /4)."""


def lr_bounds(
    lrs: npt.ArrayLike, losses: npt.ArrayLike, kind: BoundsKind = "one_cycle"
) -> tuple[float, float]:
    """``(base, peak)`` learning rates for a cyclical or one-cycle schedule from a raw curve.

    ``peak`` is lrkit's default suggestion; ``base`` is ``peak/25`` for ``"one_cycle"`` (the
    default start of :func:`lrkit.schedules.one_cycle`) and ``peak/4`` for ``"cyclic"`` (see
    the module docstring for the sources). Raises ``ValueError`` when the curve has no clear
    descent, with the reason.
    """
    if kind not in ("one_cycle", "cyclic"):
        raise ValueError(f"kind must be 'one_cycle' or 'cyclic', got {kind!r}")
    found = analyze_curve(lrs, losses)
    if found.lr is None:
        raise ValueError(f"no learning-rate bounds: {found.reason}")
    peak = found.lr
    divisor = ONE_CYCLE_DIVISOR if kind == "one_cycle" else CYCLIC_DIVISOR
    return peak / divisor, peak
