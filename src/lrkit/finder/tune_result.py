"""What :func:`~lrkit.finder.tune_lr` returns and its probes exchange: the result
(:class:`TuneResult`, with its JSON form and plot), one probe's outcome (:class:`Probe`), the
work of a probe for a :data:`ProbeRunner` (:class:`ProbeJob`, :class:`ProbeOutcome`), and the
exception Ctrl-C raises (:class:`TuneInterrupted`)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lrkit._files import atomic_write_text
from lrkit.engine import distributed
from lrkit.finder.result import RangeTestResult
from lrkit.schedules import Hyper, Schedule, one_cycle

__all__ = [
    "Probe",
    "ProbeJob",
    "ProbeOutcome",
    "ProbeRunner",
    "ScheduleFn",
    "TuneInterrupted",
    "TuneResult",
    "default_schedule",
]

ScheduleFn = Callable[[float, int], "Schedule | Hyper"]
"""``schedule(peak, steps) -> Schedule | Hyper``: the policy the user trains with."""


@dataclass(frozen=True)
class Probe:
    """One short run of the schedule: its peak, length in updates, validation score (NaN when it
    diverged), the round it belonged to (1 first, as ``lrkit tune`` prints it), and its
    validation loss (the score itself without ``metric_fn``; NaN when it diverged)."""

    peak: float
    steps: int
    score: float
    diverged: bool
    round: int
    val_loss: float = math.nan


@dataclass(frozen=True)
class ProbeJob:
    """One probe for a :data:`ProbeRunner`: train ``lr`` (the schedule at ``peak`` over
    ``steps`` updates) from the search's start state, reseeded with ``seed``, and score it
    (``round``: 1 first)."""

    peak: float
    steps: int
    round: int
    lr: Schedule | Hyper
    seed: int


@dataclass(frozen=True)
class ProbeOutcome:
    """What a probe gave: the :class:`Probe`, the updates it tried (skipped ones included),
    whether it was scored (a probe that diverged is not), and its last training loss."""

    probe: Probe
    updates: int
    evaluated: bool
    loss: float


ProbeRunner = Callable[[Sequence[ProbeJob]], Sequence[ProbeOutcome]]
"""``runner(jobs) -> outcomes`` (in the order of ``jobs``): runs the independent probes of one
round elsewhere, e.g. as Ray tasks (:func:`lrkit.finder.task.tune_task` with
``backend="ray"``). Each must start from the search's start state, as the search does;
:meth:`Prober.train_probe <lrkit.finder.probes.Prober.train_probe>` trains one job from it as the
search does."""


class TuneInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`~lrkit.finder.tune_lr`. The search has no partial answer (a range
    test cut short brackets nothing, and unfinished probes choose nothing), so none is returned;
    the model, optimizer, scaler and RNGs are already as before when this is raised. ``where``
    says where it stopped, e.g. ``"in the range test of the search, after 40 of its 100
    steps"``."""

    def __init__(self, where: str) -> None:
        super().__init__(f"tune_lr was interrupted {where}; nothing was changed")
        self.where = where


@dataclass
class TuneResult:
    """What :func:`~lrkit.finder.tune_lr` chose and how.

    Attributes:
        peak: the learning rate to train with: the peak of ``schedule(peak, total_steps)``.
        total_steps: the length of the run the peak is for.
        probes: every short run, in the order they ran.
        range_test: the range test that bracketed the search.
        budget: the fraction of one run the search was allowed; ``spent``: what it used (same
            units: optimizer updates over ``total_steps``, evaluations counted as a third).
        score_name: ``"metric"`` (with ``maximize``) or ``"val_loss"``.
        holdout: how validation data was made from the training data, when ``val_data`` was
            not given (``None`` otherwise).
        reason: how the peak was reached, in words.
        evidence: what the choice rested on, when probes ran around the range test's
            suggestion: ``anchor`` (the suggestion), ``ceiling``, ``noise`` (how far the
            suggestion's probe and its repeat under another seed differ), ``gap`` (how much
            the best probe beat the suggestion's), ``start_loss``, ``moved``, and when it
            moved ``vertex`` (the probes' best peak), ``shift`` (the horizon model's
            correction, log2) and ``features`` (the horizon model's inputs).
    """

    peak: float
    total_steps: int
    probes: list[Probe]
    range_test: RangeTestResult
    budget: float
    spent: float
    score_name: str
    maximize: bool
    reason: str
    holdout: str | None = None
    evidence: dict[str, Any] | None = None
    schedule: ScheduleFn | None = field(default=None, repr=False, compare=False)

    def train_schedule(self) -> Schedule | Hyper:
        """The schedule to train with: ``schedule(peak, total_steps)``."""
        make = self.schedule if self.schedule is not None else default_schedule(True)
        return make(self.peak, self.total_steps)

    def one_cycle(self, total_steps: int | None = None, **kwargs: Any) -> Hyper:
        """lrkit's :func:`~lrkit.schedules.one_cycle` at the chosen peak (over ``total_steps``,
        default the searched length; other arguments as ``one_cycle``'s)."""
        return one_cycle(
            self.peak, self.total_steps if total_steps is None else total_steps, **kwargs
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict (non-finite scores become ``None``)."""
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "budget": self.budget,
            "spent": self.spent,
            "score_name": self.score_name,
            "maximize": self.maximize,
            "reason": self.reason,
            "holdout": self.holdout,
            "evidence": _jsonable(self.evidence),
            "probes": [
                {
                    "peak": p.peak,
                    "steps": p.steps,
                    "score": p.score if math.isfinite(p.score) else None,
                    "diverged": p.diverged,
                    "round": p.round,
                    "val_loss": p.val_loss if math.isfinite(p.val_loss) else None,
                }
                for p in self.probes
            ],
            "range_test": self.range_test.to_dict(),
        }

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` as JSON (atomically); under ``torch.distributed`` only rank 0
        writes (every rank holds the same result)."""
        if not distributed.is_writer():
            return
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TuneResult:
        """Rebuild a result written by :meth:`to_dict` (without its ``schedule`` function: a
        rebuilt result's :meth:`train_schedule` is lrkit's one-cycle)."""
        return cls(
            peak=float(d["peak"]),
            total_steps=int(d["total_steps"]),
            probes=[
                Probe(
                    float(p["peak"]),
                    int(p["steps"]),
                    math.nan if p["score"] is None else float(p["score"]),
                    bool(p["diverged"]),
                    int(p["round"]),
                    math.nan if p.get("val_loss") is None else float(p["val_loss"]),
                )
                for p in d["probes"]
            ],
            range_test=RangeTestResult.from_dict(d["range_test"]),
            budget=float(d["budget"]),
            spent=float(d["spent"]),
            score_name=str(d["score_name"]),
            maximize=bool(d["maximize"]),
            reason=str(d["reason"]),
            holdout=d.get("holdout"),
            evidence=d.get("evidence"),
        )

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TuneResult:
        """Read a result written by :meth:`to_json`."""
        with open(path) as fh:
            return cls.from_dict(json.load(fh))

    def plot(self, path: str | os.PathLike[str] | None = None) -> Any:
        """The range-test curve (left axis) with every probe's score against its peak (right
        axis; one colour and marker per probe length, none of them a colour of the range test,
        the best probe of each length ringed in black and named in the legend), the peaks of
        diverged probes (red lines) and the chosen peak (black line), with one legend outside
        the axes, to the right. Saved to ``path`` when given (drawn without a display), else
        drawn on a new pyplot figure. Returns the matplotlib Axes of the range test."""
        from lrkit.plot import new_axes, outside_legend, save_axes

        ax, out = new_axes(path, width=10.0, height=4.5)
        self.range_test.plot(ax)
        other = ax.twinx()
        colors = ("C4", "C6", "C8", "C9", "C5")  # the range test draws in C0-C3, grey and black
        markers = ("o", "s", "^", "D", "v")
        sign = 1.0 if self.maximize else -1.0
        for i, steps in enumerate(sorted({p.steps for p in self.probes})):
            ps = sorted((p for p in self.probes if p.steps == steps), key=lambda p: p.peak)
            ok = [p for p in ps if not p.diverged and math.isfinite(p.score)]
            if not ok:
                continue
            color, marker = colors[i % len(colors)], markers[i % len(markers)]
            best = max(ok, key=lambda p: sign * p.score)
            other.plot(
                [p.peak for p in ok],
                [p.score for p in ok],
                color=color,
                marker=marker,
                lw=1.4,
                ms=6,
                label=f"probes, {steps} steps (best: {best.peak:.3g}, {best.score:.4g})",
            )
            other.plot(
                [best.peak],
                [best.score],
                ls="none",
                marker=marker,
                ms=12,
                mfc="none",
                mec="black",
                mew=1.5,
                zorder=6,
                label="_nolegend_",
            )
        for j, peak in enumerate(sorted({p.peak for p in self.probes if p.diverged})):
            label = "diverged probe" if j == 0 else "_nolegend_"
            ax.axvline(peak, color="red", alpha=0.3, lw=1, label=label)
        other.margins(y=0.12)  # room for the rings at the highest and lowest scores
        better = "higher" if self.maximize else "lower"
        other.set_ylabel(f"probe {self.score_name} ({better} is better)")
        ax.axvline(self.peak, color="black", lw=2, label=f"tuned peak {self.peak:.3g}")
        outside_legend(ax, other)
        ax.set_title(f"tune_lr: peak {self.peak:.3g} for {self.total_steps} steps")
        if out is not None:
            save_axes(ax, out)
        return ax


def default_schedule(cycles_momentum: bool) -> ScheduleFn:
    """:func:`~lrkit.finder.tune_lr`'s schedule when it is given none: lrkit's
    :func:`~lrkit.schedules.one_cycle`, with cyclical momentum (0.95 to 0.85) when
    ``cycles_momentum`` (an optimizer with momentum or betas), without it otherwise."""
    momentum = (0.95, 0.85) if cycles_momentum else None

    def make(peak: float, steps: int) -> Schedule | Hyper:
        return one_cycle(peak, steps, momentum=momentum)

    return make


def _jsonable(x: Any) -> Any:
    """``x`` with non-finite floats as ``None``, for strict JSON."""
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
