"""Schedules by name: the one map from a name (``"one-cycle"``, ``"triangular"``, ...) to a
schedule, shared by ``lrkit schedule``, ``lrkit compare`` and the recipes."""

from __future__ import annotations

from ._base import Hyper, Policy
from .basic import constant, cosine, exponential, linear, multistep, polynomial, step
from .compose import warmup, wsd
from .cyclic import cyclic, sgdr
from .onecycle import one_cycle

__all__ = ["NAMES", "named"]

NAMES = (
    "one-cycle",
    "triangular",
    "triangular2",
    "exp-range",
    "cosine",
    "warmup-cosine",
    "sgdr",
    "wsd",
    "step",
    "multistep",
    "exponential",
    "linear",
    "polynomial",
    "constant",
)
"""The names :func:`named` builds."""

_CYCLIC_MODES = {"triangular": "triangular", "triangular2": "triangular2", "exp-range": "exp_range"}


def named(
    name: str,
    *,
    peak: float,
    steps: int,
    base: float | None = None,
    end: float | None = None,
    step_size: int | None = None,
    gamma: float | None = None,
    window: str = "triangular",
    pct_start: float = 0.3,
    anneal: str = "cos",
    three_phase: bool = False,
    momentum: tuple[float, float] | None = (0.95, 0.85),
    cycle_steps: int | None = None,
    cycle_mult: int = 1,
    warmup_steps: int | None = None,
    decay_steps: int | None = None,
    milestones: list[int] | None = None,
) -> Policy:
    """Build the schedule called ``name`` (one of :data:`NAMES`) from a few options.

    ``peak`` is the largest value; ``steps`` the number of optimizer steps to draw and, for
    finite schedules, their length. Unset options get the defaults the papers use: a cyclic
    half-cycle of ``steps // 8`` and ``base = peak / 4`` (Smith 2015), one-cycle's own defaults,
    a 5% warmup, step decays by 0.1 (one step at a third; milestones at a half and three
    quarters). ``momentum`` (high, low) is cycled against the LR for one-cycle and the cyclic
    policies (``None``: no momentum schedule).
    """
    if name not in NAMES:
        raise ValueError(f"unknown schedule name {name!r}; use one of {', '.join(NAMES)}")
    half = step_size if step_size is not None else max(1, steps // 8)
    low = base if base is not None else peak / 4.0
    if name == "one-cycle":
        return one_cycle(
            peak,
            steps,
            start=base,
            end=end,
            pct_start=pct_start,
            anneal=anneal,  # type: ignore[arg-type]
            three_phase=three_phase,
            momentum=momentum,
        )
    if name in _CYCLIC_MODES:
        mode = _CYCLIC_MODES[name]
        lr = cyclic(
            low,
            peak,
            half,
            mode=mode,  # type: ignore[arg-type]
            gamma=gamma if gamma is not None else (0.999 if mode == "exp_range" else 1.0),
            window=window,  # type: ignore[arg-type]
        )
        if momentum is None:
            return lr
        return Hyper(lr=lr, momentum=lr.momentum(*momentum))
    if name == "cosine":
        return cosine(peak, steps, end=end or 0.0)
    if name == "warmup-cosine":
        w = warmup_steps if warmup_steps is not None else max(1, steps // 20)
        return warmup(cosine(peak, steps - w, end=end or 0.0), w)
    if name == "sgdr":
        c = cycle_steps if cycle_steps is not None else max(1, steps // 7)
        return sgdr(peak, end or 0.0, c, cycle_mult)
    if name == "wsd":
        w = warmup_steps if warmup_steps is not None else max(1, steps // 20)
        d = decay_steps if decay_steps is not None else max(1, steps // 5)
        return wsd(peak, steps, w, d, end=end or 0.0)
    if name == "step":
        return step(peak, step_size or max(1, steps // 3), gamma if gamma is not None else 0.1)
    if name == "multistep":
        ms = milestones or [steps // 2, steps * 3 // 4]
        return multistep(peak, tuple(ms), gamma if gamma is not None else 0.1)
    if name == "exponential":
        return exponential(peak, gamma if gamma is not None else 0.01 ** (1.0 / steps))
    if name == "linear":
        return linear(peak, end or 0.0, steps)
    if name == "polynomial":
        return polynomial(peak, end or 0.0, steps, power=2.0)
    return constant(peak)
