"""Smith's weight-decay and momentum tests (Smith 2018, arXiv 1803.09820).

Run one LR range test per candidate value of a hyperparameter, from the same starting state and
the same data order (every range test restores the model, optimizer and RNGs), and compare the
curves on one plot. Smith 2018 searches weight decay over ``1e-3, 1e-4, 1e-5, 0`` and momentum
over ``0.99, 0.97, 0.95, 0.9``; a good value lets the loss fall lower and stay low up to a larger
learning rate.

Every curve is read through one smoothing, the zero-lag smooth of lrkit's rule
(:meth:`RangeTestResult.zero_lag`): the plot draws it, each value's lowest loss
(:attr:`HyperTestResult.lowest`) is its minimum, and the recommendation compares those minima.

The recommendation (:func:`recommend`): among the curves with a clear descent, the ones whose
zero-lag smoothed minimum is within half the typical step-to-step noise (or 2% of the typical
drop, if larger) of the lowest minimum are equivalent; of those, the one whose lrkit suggestion
is largest wins (it tolerates the largest LR while reaching the lowest loss). Ties keep the
earlier value in the list.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from lrkit.finder.range_test import range_test
from lrkit.finder.result import RangeTestResult
from lrkit.finder.suggest import analyze_curve

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["HyperTestResult", "momentum_test", "recommend", "weight_decay_test"]


@dataclass
class HyperTestResult:
    """The range tests of a weight-decay or momentum test.

    Attributes:
        name: ``"weight_decay"`` or ``"momentum"``.
        values: the values tested, in order.
        results: one :class:`RangeTestResult` per value.
        best: the recommended value, or ``None`` when no curve has a clear descent.
        reason: why ``best`` was chosen (or why there is none).
        lowest: each value's lowest loss, the minimum of the zero-lag smooth that
            :meth:`plot` draws and :func:`recommend` compares (``None`` for a curve without
            finite losses); computed from ``results``.
    """

    name: str
    values: list[float]
    results: list[RangeTestResult]
    best: float | None
    reason: str
    lowest: list[float | None] = field(init=False)

    def __post_init__(self) -> None:
        if len(self.values) != len(self.results):
            raise ValueError(
                f"values and results differ in length: {len(self.values)} vs {len(self.results)}"
            )
        self.lowest = [r.lowest_loss() for r in self.results]

    def plot(self, target: str | os.PathLike[str] | Axes | None = None) -> Axes:
        """Every value's zero-lag smoothed curve (:meth:`RangeTestResult.zero_lag`, whose
        minima are :attr:`lowest`) on one log-LR plot, the recommended one drawn bold.
        ``target`` is an ``Axes``, a file path (Agg backend) or ``None`` (new pyplot
        figure)."""
        from lrkit.plot import new_axes, save_axes

        ax, path = new_axes(target)
        tops: list[float] = []
        lows: list[float] = []
        for k, (value, res) in enumerate(zip(self.values, self.results, strict=True)):
            chosen = self.best is not None and value == self.best
            lrs, smooth = res.zero_lag()
            ax.plot(
                lrs,
                smooth,
                color=f"C{k % 10}",
                linewidth=2.5 if chosen else 1.2,
                label=f"{self.name}={value:g}" + (" (best)" if chosen else ""),
            )
            if smooth.size:
                tops.append(float(smooth[: max(3, smooth.size // 10)].max()))
                lows.append(float(smooth.min()))
        if tops and lows:
            low, high = min(lows), max(tops)
            pad = 0.08 * (high - low) if high > low else 0.05
            ax.set_ylim(low - pad, high + pad)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss (zero-lag smooth)")
        ax.set_title(f"{self.name} test")
        ax.legend(loc="best", fontsize="small")
        if path is not None:
            save_axes(ax, path)
        return ax

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict."""
        return {
            "name": self.name,
            "values": list(self.values),
            "results": [r.to_dict() for r in self.results],
            "best": self.best,
            "reason": self.reason,
            "lowest": list(self.lowest),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HyperTestResult:
        """Rebuild a result written by :meth:`to_dict` (``lowest`` is recomputed from the
        curves)."""
        return cls(
            name=str(d["name"]),
            values=[float(v) for v in d["values"]],
            results=[RangeTestResult.from_dict(r) for r in d["results"]],
            best=None if d.get("best") is None else float(d["best"]),
            reason=str(d.get("reason", "")),
        )


def recommend(
    values: Sequence[float], results: Sequence[RangeTestResult]
) -> tuple[float | None, str]:
    """Pick the best value from range tests run at each value (see the module docstring).
    Each curve's depth is :meth:`RangeTestResult.lowest_loss`, the minimum of the curve that
    :meth:`HyperTestResult.plot` draws."""
    cands: list[tuple[float, float, float, float, float]] = []
    for value, res in zip(values, results, strict=True):
        found = analyze_curve(res.lrs, res.scored_losses)
        lowest = res.lowest_loss()
        if found.lr is None or lowest is None:
            continue
        cands.append((value, lowest, found.lr, found.noise, found.drop))
    if not cands:
        return None, "no curve has a clear descent"
    lowest = min(c[1] for c in cands)
    tol = max(
        0.5 * float(np.median([c[3] for c in cands])),
        0.02 * float(np.median([c[4] for c in cands])),
    )
    near = [c for c in cands if c[1] <= lowest + tol]
    best = max(near, key=lambda c: c[2])
    others = ", ".join(f"{c[0]:g}" for c in near if c is not best)
    reason = f"lowest smoothed loss ({best[1]:.4g}) reached"
    if others:
        reason += f"; tied within noise with {others}, and tolerates the largest LR ({best[2]:.3g})"
    return best[0], reason


def _run_series(
    name: str,
    values: Sequence[float],
    optimizer: torch.optim.Optimizer,
    apply: Callable[[dict[str, Any], float], None],
    run: Callable[[], RangeTestResult],
) -> HyperTestResult:
    saved = [
        copy.deepcopy({k: v for k, v in g.items() if k != "params"}) for g in optimizer.param_groups
    ]
    results: list[RangeTestResult] = []
    try:
        for value in values:
            for group in optimizer.param_groups:
                apply(group, value)
            results.append(run())
            if results[-1].stop_reason == "interrupted":  # Ctrl-C stops the whole series
                break
    finally:
        for group, original in zip(optimizer.param_groups, saved, strict=True):
            for key, v in original.items():
                group[key] = v
    done = [float(v) for v in values[: len(results)]]
    best, reason = recommend(done, results)
    return HyperTestResult(name=name, values=done, results=results, best=best, reason=reason)


def _check_data(data: Iterable[Any]) -> None:
    if isinstance(data, Iterator):
        raise ValueError(
            "data is an iterator and would be used up by the first range test; pass a list "
            "or a DataLoader"
        )


def _check_values(values: Sequence[float], what: str, upper: float | None) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise ValueError(f"{what}: give at least one value")
    for v in out:
        if not np.isfinite(v) or v < 0 or (upper is not None and v >= upper):
            bound = f" and < {upper:g}" if upper is not None else ""
            raise ValueError(f"{what} must be finite, >= 0{bound}; got {v}")
    return out


def weight_decay_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Iterable[Any],
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    *,
    weight_decays: Sequence[float] = (1e-3, 1e-4, 1e-5, 0.0),
    **range_test_kwargs: Any,
) -> HyperTestResult:
    """One range test per weight decay (Smith 2018), all from the same state.

    Sets ``weight_decay`` in every param group to each value in turn and runs
    :func:`~lrkit.finder.range_test` with ``range_test_kwargs``. Everything, including the
    original weight decays, is restored afterwards. The recommendation is described in
    :func:`recommend`: the lowest loss, ties broken by the largest usable LR.
    """
    values = _check_values(weight_decays, "weight_decays", None)
    _check_data(data)
    if any("weight_decay" not in g for g in optimizer.param_groups):
        raise ValueError(f"{type(optimizer).__name__} has no weight_decay hyperparameter")

    def apply(group: dict[str, Any], value: float) -> None:
        group["weight_decay"] = value

    def run() -> RangeTestResult:
        return range_test(model, optimizer, data, loss_fn, **range_test_kwargs)

    return _run_series("weight_decay", values, optimizer, apply, run)


def momentum_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Iterable[Any],
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    *,
    momentums: Sequence[float] = (0.99, 0.97, 0.95, 0.9),
    **range_test_kwargs: Any,
) -> HyperTestResult:
    """One range test per momentum (Smith 2018), all from the same state.

    For optimizers with ``betas`` (Adam, AdamW, NAdam, ...) the momentum is ``betas[0]``; for
    optimizers with ``momentum`` (SGD, RMSprop) it is ``momentum``. Raises ``ValueError`` for
    optimizers with neither, and for an optimizer built with ``momentum=0`` in every group (SGD
    without momentum): turning momentum on behind the caller's back would test a different
    optimizer; build it with ``momentum>0`` instead. Everything is restored afterwards; the
    recommendation is described in :func:`recommend`.
    """
    values = _check_values(momentums, "momentums", 1.0)
    _check_data(data)
    groups = optimizer.param_groups
    name = type(optimizer).__name__
    if all("betas" in g for g in groups):

        def apply(group: dict[str, Any], value: float) -> None:
            group["betas"] = (value, *tuple(group["betas"])[1:])

    elif all("momentum" in g for g in groups):
        if all(float(g["momentum"]) == 0.0 for g in groups):
            raise ValueError(
                f"{name} was built with momentum=0, so momentum cannot be tested; build it "
                "with momentum>0 (e.g. momentum=0.9) to test momentum"
            )

        def apply(group: dict[str, Any], value: float) -> None:
            group["momentum"] = value

    else:
        raise ValueError(f"{name} has neither momentum nor betas; there is no momentum to test")

    def run() -> RangeTestResult:
        return range_test(model, optimizer, data, loss_fn, **range_test_kwargs)

    return _run_series("momentum", values, optimizer, apply, run)
