"""What a training run records: per-step values, evaluations, and how it ended."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["TIMING_FIELDS", "History"]

TIMING_FIELDS = ("seconds", "wall_seconds", "eval_seconds", "seconds_to_target")
"""Fields that hold wall-clock times; they differ between otherwise identical runs."""

_FLOAT_LISTS = ("lr", "momentum", "loss", "val_loss", "metric", "eval_seconds")
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _encode(x: float) -> float | str:
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _decode(x: float | str | None) -> float:
    if isinstance(x, str):
        if x not in _NON_FINITE:
            raise ValueError(f"expected a number or 'nan'/'inf'/'-inf', got {x!r}")
        return _NON_FINITE[x]
    if x is None:
        return math.nan
    return float(x)


@dataclasses.dataclass
class History:
    """The record of one :func:`lrkit.train.fit` run.

    Per optimizer update ``i`` (0-based), ``lr[i]`` and ``momentum[i]`` are the values of the
    first param group used by that update (``momentum`` is SGD/RMSprop momentum or Adam's beta1,
    NaN for optimizers without one) and ``loss[i]`` is its training loss (the mean over
    accumulated micro-batches). Evaluation ``j`` happened after ``eval_step[j]`` updates and gave
    ``val_loss[j]`` and ``metric[j]`` (higher is better) at ``eval_seconds[j]`` seconds of
    training.

    Times (``seconds``, ``eval_seconds``, ``seconds_to_target``) count training only, not
    evaluation or checkpoint writing, and add up across resumed segments; ``wall_seconds`` counts
    everything. They are the only fields that differ between a resumed and an uninterrupted run
    (see :data:`TIMING_FIELDS` and ``to_dict(timing=False)``).

    Attributes:
        task: Task name, or ``None`` for a user-supplied model.
        metric_name: Name of the metric (``"accuracy"``, ``"r2"``, ``"neg_val_loss"``, ...).
        optimizer: Optimizer name, or the factory's name.
        seed: The run's seed.
        total_steps: Planned number of optimizer updates.
        target: Metric value for "steps to target", or ``None``.
        steps_to_target: ``eval_step`` of the first evaluation with ``metric >= target``.
        seconds_to_target: Training seconds at that evaluation.
        diverged: ``True`` when a loss was NaN or infinite; the run then stopped.
        stop_reason: Why the run ended, in words (including the step).
        final_metric: Metric of the last evaluation, ``None`` if there was none.
    """

    task: str | None = None
    metric_name: str = "metric"
    optimizer: str = ""
    seed: int = 0
    total_steps: int = 0
    target: float | None = None
    lr: list[float] = dataclasses.field(default_factory=list)
    momentum: list[float] = dataclasses.field(default_factory=list)
    loss: list[float] = dataclasses.field(default_factory=list)
    eval_step: list[int] = dataclasses.field(default_factory=list)
    val_loss: list[float] = dataclasses.field(default_factory=list)
    metric: list[float] = dataclasses.field(default_factory=list)
    eval_seconds: list[float] = dataclasses.field(default_factory=list)
    steps_to_target: int | None = None
    seconds_to_target: float | None = None
    diverged: bool = False
    stop_reason: str = ""
    seconds: float = 0.0
    wall_seconds: float = 0.0
    final_metric: float | None = None

    @property
    def steps(self) -> int:
        """Number of optimizer updates recorded."""
        return len(self.loss)

    @property
    def best_metric(self) -> float | None:
        """Highest finite metric over all evaluations, ``None`` if there was none."""
        finite = [m for m in self.metric if math.isfinite(m)]
        return max(finite) if finite else None

    @property
    def evaluations(self) -> list[tuple[int, float, float]]:
        """``(step, val_loss, metric)`` of each evaluation."""
        return list(zip(self.eval_step, self.val_loss, self.metric, strict=True))

    def to_dict(self, *, timing: bool = True) -> dict[str, Any]:
        """A JSON-able dict (strict JSON: NaN and infinities become ``"nan"``, ``"inf"``).

        With ``timing=False`` the wall-clock fields (:data:`TIMING_FIELDS`) are left out, which
        makes two runs that did the same work compare equal.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if not timing and f.name in TIMING_FIELDS:
                continue
            value = getattr(self, f.name)
            if f.name in _FLOAT_LISTS:
                value = [_encode(float(v)) for v in value]
            elif f.name == "eval_step":
                value = [int(v) for v in value]
            elif isinstance(value, float):
                value = _encode(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        """Rebuild from :meth:`to_dict` output (missing timing fields read as 0 / empty)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown History fields: {sorted(unknown)}")
        kw: dict[str, Any] = {}
        for name, value in d.items():
            if name in _FLOAT_LISTS:
                kw[name] = [_decode(v) for v in value]
            elif name == "eval_step":
                kw[name] = [int(v) for v in value]
            elif name in ("target", "seconds_to_target", "final_metric"):
                kw[name] = None if value is None else _decode(value)
            elif name in ("seconds", "wall_seconds"):
                kw[name] = _decode(value)
            else:
                kw[name] = value
        return cls(**kw)
