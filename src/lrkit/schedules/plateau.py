"""Metric-driven reduction, the one stateful schedule."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from ._base import (
    FloatArray,
    Schedule,
    check_count,
    check_finite,
    check_non_negative,
    check_positive,
    register,
)

__all__ = ["reduce_on_plateau"]

PlateauMode = Literal["min", "max"]
ThresholdMode = Literal["rel", "abs"]


@register
class reduce_on_plateau(Schedule):
    """Multiply the value by ``factor`` when a metric stops improving (PyTorch's
    ``ReduceLROnPlateau``, same rules and defaults).

    The driver feeds it metrics (``Scheduler.observe(metric)`` or ``Scheduler.step(metric=...)``).
    A metric improves when it beats the best so far by ``threshold`` (relative:
    ``m < best · (1 - threshold)`` in ``min`` mode; absolute: ``m < best - threshold``). After
    more than ``patience`` reports without improvement the value drops to ``max(value · factor,
    min_value)`` (unless the change is below ``eps``), then ``cooldown`` reports are ignored.

    Its value at step ``t`` is ``start · factor^k`` where ``k`` counts reductions recorded at or
    before ``t``, so the schedule stays a function of the step given the metrics seen. Its state
    (best, counters, reductions) is saved in the driver's ``state_dict``. It never ends, and may
    follow a warmup inside :func:`~lrkit.schedules.sequence`, which PyTorch's ``SequentialLR``
    cannot do.
    """

    name = "reduce_on_plateau"
    steps = None

    def __init__(
        self,
        start: float,
        factor: float = 0.1,
        patience: int = 10,
        mode: PlateauMode = "min",
        threshold: float = 1e-4,
        threshold_mode: ThresholdMode = "rel",
        cooldown: int = 0,
        min_value: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        self.start = check_positive("start", start)
        self.factor = check_positive("factor", factor)
        if self.factor >= 1.0:
            raise ValueError(f"factor must be < 1 (it multiplies the value), got {factor}")
        patience = check_count("patience", patience, "metric reports")
        cooldown = check_count("cooldown", cooldown, "metric reports")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.patience = patience
        self.cooldown = cooldown
        self.mode: PlateauMode = mode
        self.threshold = check_non_negative("threshold", threshold)
        self.threshold_mode: ThresholdMode = threshold_mode
        self.min_value = check_non_negative("min_value", min_value)
        self.eps = check_non_negative("eps", eps)
        self.reset()

    _CONFIG = (
        "start",
        "factor",
        "patience",
        "mode",
        "threshold",
        "threshold_mode",
        "cooldown",
        "min_value",
        "eps",
    )

    def reset(self) -> None:
        """Forget all metrics seen."""
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad = 0
        self.cooldown_counter = 0
        self.reductions: list[tuple[int, float]] = []

    @property
    def value(self) -> float:
        """The current value (after the reductions so far)."""
        return self.reductions[-1][1] if self.reductions else self.start

    def _better(self, a: float) -> bool:
        rel = self.threshold_mode == "rel"
        if self.mode == "min":
            return a < (self.best * (1.0 - self.threshold) if rel else self.best - self.threshold)
        return a > (self.best * (1.0 + self.threshold) if rel else self.best + self.threshold)

    def observe(self, metric: float, step: int) -> bool:
        current = check_finite("metric", float(metric))
        if self._better(current):
            self.best = current
            self.num_bad = 0
        else:
            self.num_bad += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad = 0
        if self.num_bad > self.patience:
            self.cooldown_counter = self.cooldown
            self.num_bad = 0
            old = self.value
            new = max(old * self.factor, self.min_value)
            if old - new > self.eps:
                self.reductions = [(s, v) for s, v in self.reductions if s < step]
                self.reductions.append((int(step), new))
                return True
        return False

    def stateful(self) -> list[Schedule]:
        return [self]

    def children(self) -> tuple[Schedule, ...]:
        return ()

    def _values(self, t: FloatArray) -> FloatArray:
        out = np.full(t.shape, self.start, dtype=np.float64)
        for s, v in self.reductions:
            out = np.where(t >= s, v, out)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Counters and reductions (plain Python types)."""
        return {
            "best": self.best,
            "num_bad": self.num_bad,
            "cooldown_counter": self.cooldown_counter,
            "reductions": [[s, v] for s, v in self.reductions],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.best = float(state["best"])
        self.num_bad = int(state["num_bad"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self.reductions = [(int(s), float(v)) for s, v in state["reductions"]]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.name, **{k: getattr(self, k) for k in self._CONFIG}}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, reduce_on_plateau):
            return NotImplemented
        return self.to_dict() == other.to_dict() and self.state_dict() == other.state_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        defaults = reduce_on_plateau(1.0)
        parts = [f"start={self.start!r}"]
        for k in self._CONFIG[1:]:
            if getattr(self, k) != getattr(defaults, k):
                parts.append(f"{k}={getattr(self, k)!r}")
        return f"reduce_on_plateau({', '.join(parts)})"
