"""The result of a range test: curves, stop reason, suggestions, bounds, plot, (de)serialization."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import numpy.typing as npt

from lrkit._files import atomic_write_text
from lrkit.engine import distributed
from lrkit.finder.smith import BoundsKind, lr_bounds
from lrkit.finder.suggest import Method, Suggestion, ema, suggest_lr, zero_lag_smooth

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from lrkit.schedules import Hyper

__all__ = ["RangeTestResult", "StopReason"]

StopReason = Literal["completed", "diverged", "nan", "interrupted", "error"]
_STOP_REASONS: tuple[str, ...] = ("completed", "diverged", "nan", "interrupted", "error")

FloatArray = npt.NDArray[np.float64]


def _floats(values: Any) -> list[float | None]:
    return [float(v) if math.isfinite(float(v)) else None for v in np.asarray(values).reshape(-1)]


def _array(values: Any) -> FloatArray:
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


@dataclass
class RangeTestResult:
    """The curves of an LR range test and what can be read off them.

    Attributes:
        lrs: the learning rate of each recorded step (the value of the param group with the
            largest LR).
        losses: the raw training loss after each step (mean over repeats).
        smoothed: the bias-corrected EMA (``beta = smoothing``) of the *scored* loss: the
            validation loss when ``val_losses`` exist, else ``losses``. The sweep's divergence
            check reads it; the suggestion and :meth:`plot` read the zero-lag smooth
            (:meth:`zero_lag`) instead, which does not lag behind the raw curve.
        stop_reason: ``"completed"``, ``"diverged"``, ``"nan"``, ``"interrupted"`` or
            ``"error"``.
        val_losses: mean validation loss at each step, when the test had ``val_data``.
        metrics: mean validation metric at each step, when the test had a ``metric_fn``.
        repeat_losses: the raw scored curve of every repeat, cut to the common length of
            ``lrs`` (the shortest repeat); one entry when ``repeats=1``.
        repeat_stop_reasons: why each repeat stopped.
        suggestion: lrkit's default suggestion (``None`` when the curve has no usable descent).
        suggestion_low, suggestion_high: its 10th-90th percentile uncertainty band.
        suggestion_reason: how it was found, or why there is none.
        smoothing, diverge, start_lr, end_lr, mode: the settings of the test.
        extended_from: the steps of a first sweep that showed no clear descent, when the test
            swept again with more steps (``range_test(extend=...)``); ``None`` otherwise.
    """

    lrs: FloatArray
    losses: FloatArray
    smoothed: FloatArray
    stop_reason: StopReason
    val_losses: FloatArray | None = None
    metrics: FloatArray | None = None
    repeat_losses: list[FloatArray] = field(default_factory=list)
    repeat_stop_reasons: list[str] = field(default_factory=list)
    suggestion: float | None = None
    suggestion_low: float | None = None
    suggestion_high: float | None = None
    suggestion_reason: str = ""
    smoothing: float = 0.98
    diverge: float = 4.0
    start_lr: float = math.nan
    end_lr: float = math.nan
    mode: str = "exp"
    extended_from: int | None = None

    @classmethod
    def build(
        cls,
        *,
        lrs: FloatArray,
        losses: FloatArray,
        stop_reason: StopReason,
        val_losses: FloatArray | None = None,
        metrics: FloatArray | None = None,
        repeat_losses: Sequence[FloatArray] | None = None,
        repeat_stop_reasons: Sequence[str] | None = None,
        smoothing: float = 0.98,
        diverge: float = 4.0,
        start_lr: float | None = None,
        end_lr: float | None = None,
        mode: str = "exp",
        band: bool = True,
    ) -> RangeTestResult:
        """Assemble a result from raw curves: computes ``smoothed`` and the default suggestion
        (with its uncertainty band unless ``band=False``)."""
        lrs = np.asarray(lrs, dtype=np.float64)
        losses = np.asarray(losses, dtype=np.float64)
        scored = losses if val_losses is None else np.asarray(val_losses, dtype=np.float64)
        repeats = [np.asarray(c, dtype=np.float64) for c in (repeat_losses or [scored])]
        result = cls(
            lrs=lrs,
            losses=losses,
            smoothed=ema(scored, smoothing),
            stop_reason=stop_reason,
            val_losses=None if val_losses is None else np.asarray(val_losses, dtype=np.float64),
            metrics=None if metrics is None else np.asarray(metrics, dtype=np.float64),
            repeat_losses=repeats,
            repeat_stop_reasons=list(repeat_stop_reasons or [stop_reason]),
            smoothing=smoothing,
            diverge=diverge,
            start_lr=float(lrs[0]) if start_lr is None and lrs.size else float(start_lr or 0.0),
            end_lr=float(lrs[-1]) if end_lr is None and lrs.size else float(end_lr or 0.0),
            mode=mode,
        )
        best = result.suggest("lrkit", band=band)
        result.suggestion = best.lr
        result.suggestion_low = best.low
        result.suggestion_high = best.high
        result.suggestion_reason = best.reason
        return result

    @property
    def scored_losses(self) -> FloatArray:
        """The raw curve the test scored: ``val_losses`` when present, else ``losses``."""
        return self.losses if self.val_losses is None else self.val_losses

    def zero_lag(self) -> tuple[FloatArray, FloatArray]:
        """``(lrs, smooth)``: the zero-lag smooth of the scored loss that lrkit's rule reads
        (:func:`~lrkit.finder.suggest.zero_lag_smooth`) and the LRs it is defined at (the
        positive LRs, up to the first non-finite loss). :meth:`plot` draws it as the main line,
        and :meth:`lowest_loss` is its minimum."""
        smooth = zero_lag_smooth(self.lrs, self.scored_losses)
        return self.lrs[self.lrs > 0][: smooth.size], smooth

    def lowest_loss(self) -> float | None:
        """The minimum of the zero-lag smooth (:meth:`zero_lag`), ``None`` for a curve without
        finite losses: the "lowest loss" of the weight-decay and momentum tests."""
        _, smooth = self.zero_lag()
        return float(smooth.min()) if smooth.size else None

    def suggest(self, method: Method = "lrkit", *, band: bool = True) -> Suggestion:
        """A suggested LR with an uncertainty band, by one of the rules of
        :mod:`lrkit.finder.suggest`: ``"lrkit"`` (default), ``"minimum"``, ``"steepest"``,
        ``"valley"``. The band comes from the repeats when there were several, else from a
        bootstrap of the curve (skipped with ``band=False``: ``low`` and ``high`` are then the
        suggestion itself)."""
        return suggest_lr(
            self.lrs,
            self.scored_losses,
            method,
            smoothing=self.smoothing,
            repeat_losses=self.repeat_losses if len(self.repeat_losses) > 1 else None,
            n_boot=200 if band else 0,
        )

    def bounds(self, kind: BoundsKind = "one_cycle") -> tuple[float, float]:
        """``(base, peak)``: ``peak`` is the default suggestion, ``base`` is ``peak/25`` for
        ``"one_cycle"`` (the start of ``lrkit.schedules.one_cycle``'s cycle,
        :data:`~lrkit.schedules.ONE_CYCLE_DIV_FACTOR`) and ``peak/4`` for ``"cyclic"``
        (Smith 2015; :func:`lrkit.finder.smith.lr_bounds`). Raises ``ValueError`` without a
        clear descent."""
        return lr_bounds(self.lrs, self.scored_losses, kind)

    def one_cycle(self, total_steps: int, **kwargs: Any) -> Hyper:
        """The one-cycle schedule at the suggested peak: ``lrkit.schedules.one_cycle(peak,
        total_steps, **kwargs)``, with that function's defaults (it starts at ``peak/25``, the
        ``base`` of :meth:`bounds`; pass ``start=`` for another start, e.g. Smith 2018's
        ``peak/10``). Raises ``ValueError`` without a clear descent."""
        from lrkit import schedules as S

        _, peak = self.bounds("one_cycle")
        return S.one_cycle(peak, total_steps, **kwargs)

    def cyclic(self, step_size_up: int, **kwargs: Any) -> Any:
        """The cyclical schedule for these bounds: ``lrkit.schedules.cyclic(base, peak,
        step_size_up, **kwargs)``."""
        from lrkit import schedules as S

        base, peak = self.bounds("cyclic")
        return S.cyclic(base, peak, step_size_up, **kwargs)

    def plot(self, target: str | os.PathLike[str] | Axes | None = None) -> Axes:
        """Draw the curve on a log-LR axis and return the axes.

        Shows the zero-lag smooth of the scored loss that the default rule reads (bold, the
        main line; :meth:`zero_lag`), the raw scored loss (thin), the EMA that the sweep's
        divergence check reads (faint, dashed), the other repeats (faint), the default
        suggestion (vertical line) with its uncertainty band (shaded), the one-cycle base
        (dotted) and, when recorded, the validation metric on a second axis. ``target`` is an
        existing matplotlib ``Axes``, a file path (written with the Agg backend, no window
        opens), or ``None`` for a new pyplot figure.
        """
        from lrkit.plot import new_axes, save_axes

        ax, path = new_axes(target)
        lrs = self.lrs
        raw = self.scored_losses
        label = "validation loss" if self.val_losses is not None else "loss"
        for curve in self.repeat_losses[1:] if len(self.repeat_losses) > 1 else []:
            m = min(len(curve), len(lrs))
            ax.plot(lrs[:m], curve[:m], color="0.75", linewidth=0.6)
        ax.plot(lrs, raw, color="C0", alpha=0.35, linewidth=0.8, label=f"{label} (raw)")
        ax.plot(
            lrs,
            self.smoothed,
            color="0.4",
            alpha=0.6,
            linestyle="--",
            linewidth=0.9,
            label="EMA (divergence check)",
        )
        x_smooth, smooth = self.zero_lag()
        if smooth.size:
            ax.plot(
                x_smooth,
                smooth,
                color="C0",
                linewidth=2.2,
                label=f"{label} (smoothed; read by the suggestion)",
            )
        if self.val_losses is not None:
            ax.plot(lrs, self.losses, color="C2", alpha=0.35, linewidth=0.8, label="train loss")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel(label)
        _set_ylim(ax, raw, smooth)
        if self.suggestion is not None:
            if self.suggestion_low is not None and self.suggestion_high is not None:
                ax.axvspan(self.suggestion_low, self.suggestion_high, color="C1", alpha=0.15)
            ax.axvline(
                self.suggestion,
                color="C1",
                linewidth=1.5,
                label=f"suggestion {self.suggestion:.3g}",
            )
            base, _ = self.bounds("one_cycle")
            ax.axvline(base, color="C1", linestyle=":", linewidth=1.0, label=f"base {base:.3g}")
        if self.metrics is not None:
            twin = ax.twinx()
            twin.plot(lrs, self.metrics, color="C3", linewidth=1.0, label="metric")
            twin.set_ylabel("validation metric")
        ax.set_title(f"LR range test ({self.stop_reason})")
        ax.legend(loc="best", fontsize="small")
        if path is not None:
            save_axes(ax, path)
        return ax

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict (non-finite numbers become ``None``)."""
        return {
            "lrs": _floats(self.lrs),
            "losses": _floats(self.losses),
            "smoothed": _floats(self.smoothed),
            "stop_reason": self.stop_reason,
            "val_losses": None if self.val_losses is None else _floats(self.val_losses),
            "metrics": None if self.metrics is None else _floats(self.metrics),
            "repeat_losses": [_floats(c) for c in self.repeat_losses],
            "repeat_stop_reasons": list(self.repeat_stop_reasons),
            "suggestion": self.suggestion,
            "suggestion_low": self.suggestion_low,
            "suggestion_high": self.suggestion_high,
            "suggestion_reason": self.suggestion_reason,
            "smoothing": self.smoothing,
            "diverge": self.diverge,
            "start_lr": self.start_lr,
            "end_lr": self.end_lr,
            "mode": self.mode,
            "extended_from": self.extended_from,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RangeTestResult:
        """Rebuild a result written by :meth:`to_dict`."""
        reason = d["stop_reason"]
        if reason not in _STOP_REASONS:
            raise ValueError(f"unknown stop_reason {reason!r}")
        return cls(
            lrs=_array(d["lrs"]),
            losses=_array(d["losses"]),
            smoothed=_array(d["smoothed"]),
            stop_reason=cast(StopReason, reason),
            val_losses=None if d.get("val_losses") is None else _array(d["val_losses"]),
            metrics=None if d.get("metrics") is None else _array(d["metrics"]),
            repeat_losses=[_array(c) for c in d.get("repeat_losses", [])],
            repeat_stop_reasons=list(d.get("repeat_stop_reasons", [])),
            suggestion=d.get("suggestion"),
            suggestion_low=d.get("suggestion_low"),
            suggestion_high=d.get("suggestion_high"),
            suggestion_reason=d.get("suggestion_reason", ""),
            smoothing=float(d.get("smoothing", 0.98)),
            diverge=float(d.get("diverge", 4.0)),
            start_lr=float(d.get("start_lr", math.nan)),
            end_lr=float(d.get("end_lr", math.nan)),
            mode=str(d.get("mode", "exp")),
            extended_from=d.get("extended_from"),
        )

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` as JSON to ``path`` (atomically: replaced whole or not at all).
        Under ``torch.distributed`` only rank 0 writes (every rank holds the same result)."""
        if not distributed.is_writer():
            return
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> RangeTestResult:
        """Read a result written by :meth:`to_json`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def __repr__(self) -> str:
        sug = "None" if self.suggestion is None else f"{self.suggestion:.3g}"
        return (
            f"RangeTestResult(steps={len(self.lrs)}, stop_reason={self.stop_reason!r}, "
            f"suggestion={sug}, repeats={len(self.repeat_losses)})"
        )


def _set_ylim(ax: Axes, raw: FloatArray, smoothed: FloatArray) -> None:
    """Show the descent: from just below the lowest loss to just above the start level (or the
    highest smoothed loss before its minimum); the divergence tail is cut off."""
    finite = raw[np.isfinite(raw)]
    if finite.size == 0:
        return
    low = float(finite.min())
    high = float(np.median(finite[: max(3, finite.size // 10)]))
    sm = smoothed[np.isfinite(smoothed)]
    if sm.size:
        low = min(low, float(sm.min()))
        high = max(high, float(sm[: int(np.argmin(sm)) + 1].max()))
    pad = 0.1 * (high - low) if high > low else 0.05 * max(abs(low), 1.0)
    ax.set_ylim(low - pad, high + pad)
