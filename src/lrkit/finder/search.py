"""The budgeted search: pick the peak of the schedule the user will train with.

A range test brackets the usable learning rates cheaply but cannot pick inside the bracket: two
curves of the same shape can want peaks on opposite sides of the basin, and overfitting does not
show in a training-loss sweep. :func:`tune_lr` spends a stated fraction of one training run on
short runs of the user's own schedule inside the bracket, scores them on validation data, and
corrects for their shorter horizon before it answers:

1. **Bracket.** A range test (:func:`~lrkit.finder.range_test`, extended when it finds no clear
   descent) gives an anchor (lrkit's suggestion) and a ceiling (where the loss turns up).
2. **Probe.** Peaks a factor of two apart, each trained for ``L`` updates with
   ``schedule(peak, L)`` from the same state and data order, and scored on the validation loss
   (or ``metric_fn``). They are centred on the anchor moved up by the prior drift (short runs
   prefer higher peaks) and kept below the ceiling; the best is refined by a parabola through
   the scores in log-LR. When the range test found no basin (a model that learns nothing in a
   sweep's few steps, such as a GRU), its anchor is a guess, so the probes look themselves: a
   walk up from the anchor by factors of four while they learn nothing (their validation loss
   does not fall clearly below the start state's), down while they diverge, and the probes
   left bracket the first that learned, half a step either side. When none of them learned,
   the largest that did not diverge is taken.
3. **Correct for the horizon.** The best peak of a run falls as the run gets longer (Bjorck et
   al., ICLR 2025, arXiv 2409.19913: ``LR*(D) ∝ D^-β``); a range test or a short probe is a
   short-horizon estimate (Wu et al. 2018). When the budget allows probes of at least an eighth
   of the run, four probes of ``L`` and three of ``2L`` (around the first round's best) measure
   the drift per doubling of the horizon, ``d = log2(p_L / p_2L)``, shrunk halfway towards the
   prior ``d0`` (:data:`PRIOR_DRIFT`); otherwise three probes of ``L`` use the prior alone. The
   drift is extrapolated over the doublings left, ``peak = p · 2^(-d̂ · n)``, kept within
   ``[p / 16, 2 p]``, below the ceiling and below half the smallest peak whose probe diverged.

The cost unit is one optimizer update (``accumulation_steps`` batches, forward and backward); an
evaluation batch counts as a third of a batch's update (a forward pass only). The search never
spends more than ``budget × total_steps`` units and reports what it spent.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from lrkit._checks import positive_int
from lrkit._files import atomic_write_text
from lrkit._optimizers import SPECS
from lrkit.driver import Scheduler, read_value
from lrkit.engine import (
    BatchStream,
    Engine,
    LossFn,
    MetricFn,
    RngState,
    SnapshotMode,
    StepFn,
    TrainingSnapshot,
    data_generators,
    distributed,
    validate_batch,
)
from lrkit.finder.range_test import ProgressFn, range_test
from lrkit.finder.result import RangeTestResult
from lrkit.finder.suggest import analyze_curve
from lrkit.schedules import Hyper, Schedule, one_cycle

__all__ = [
    "Probe",
    "ProbeJob",
    "ProbeOutcome",
    "ProbeRunner",
    "ScheduleFn",
    "TuneInterrupted",
    "TuneResult",
    "min_total_steps",
    "tune_lr",
]

logger = logging.getLogger(__name__)

ScheduleFn = Callable[[float, int], "Schedule | Hyper"]
"""``schedule(peak, steps) -> Schedule | Hyper``: the policy the user trains with."""

PRIOR_DRIFT = 0.4
"""Prior drift of the best peak per doubling of the horizon (log2 units): from one-cycle grids
at 1/16, 1/8 and the full length on the built-in tasks and the held-out design half, where
short runs' best peaks sat 0 to 1.1 doublings per doubling of the horizon above the full
run's. Its median over those tasks is near 0, but a peak too high costs far more than one too
low (a run that collapses): extrapolating with 0 or 0.2 (first round still centred with 0.4),
or using 0.6 throughout, raised the mean regret of ``benchmarks/suggestion_regret.py`` on the
built-in suite and the design half to 0.42, 0.23 and 0.24, from 0.22 with 0.4. Taking the best
probe as it is when it is the lowest of its round (no drift, on the view that the round's centring
already assumed too much) lowered the design half's mean regret from 0.17 to 0.12, but on the
model of ``tests/test_finder_search.py``, whose full run wants a peak 3 to 6 times below such a
probe, it chose a peak with regret 0.82: not kept."""

_EVAL_COST = 1.0 / 3.0
_MIN_PROBE = 8
_WALK_PROBES = 4
_WALK_FACTOR = 4.0
_LEARNED = 0.02
_MIN_RANGE_TEST = 10
_MAX_SKIPS = 50


@dataclass(frozen=True)
class Probe:
    """One short run of the schedule: its peak, length in updates, validation score (NaN when it
    diverged), the round it belonged to (1 first, as ``lrkit find --budget`` prints it), and its
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
``backend="ray"``). Each must start from the search's start state, as the search does."""


class TuneInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`tune_lr`. The search has no partial answer (a range test cut short
    brackets nothing, and unfinished probes choose nothing), so none is returned; the model,
    optimizer, scaler and RNGs are already as before when this is raised. ``where`` says where
    it stopped, e.g. ``"in the range test of the search, after 40 of its 100 steps"``."""

    def __init__(self, where: str) -> None:
        super().__init__(f"tune_lr was interrupted {where}; nothing was changed")
        self.where = where


@dataclass
class TuneResult:
    """What :func:`tune_lr` chose and how.

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
        drift: the measured drift of the best peak per doubling of the horizon (log2), or
            ``None`` with a single round of probes.
        reason: how the peak was reached, in words.
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
    drift: float | None = None
    schedule: ScheduleFn | None = field(default=None, repr=False, compare=False)

    def train_schedule(self) -> Schedule | Hyper:
        """The schedule to train with: ``schedule(peak, total_steps)``."""
        make = self.schedule if self.schedule is not None else _default_schedule(True)
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
            "drift": self.drift,
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
            drift=d.get("drift"),
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


def _default_schedule(cycles_momentum: bool) -> ScheduleFn:
    momentum = (0.95, 0.85) if cycles_momentum else None

    def make(peak: float, steps: int) -> Schedule | Hyper:
        return one_cycle(peak, steps, momentum=momentum)

    return make


def _optimizer_cycles_momentum(optimizer: torch.optim.Optimizer) -> bool:
    groups = optimizer.param_groups
    if all("betas" in g for g in groups):
        return True
    return all("momentum" in g for g in groups) and any(float(g["momentum"]) > 0 for g in groups)


# -- checks ----------------------------------------------------------------------------------


def _check_schedule(schedule: ScheduleFn) -> None:
    if not callable(schedule):
        raise ValueError(
            f"schedule must be a function schedule(peak, steps) -> Schedule | Hyper, got "
            f"{type(schedule).__name__}"
        )
    try:
        made = schedule(1e-3, 10)
    except TypeError as err:
        raise ValueError(
            f"schedule must accept (peak, steps), e.g. lambda peak, steps: one_cycle(peak, "
            f"steps); calling it with (0.001, 10) raised {err}"
        ) from err
    if not isinstance(made, (Schedule, Hyper)):
        raise ValueError(
            f"schedule(peak, steps) must return an lrkit Schedule or Hyper, got "
            f"{type(made).__name__}"
        )


def min_total_steps(budget: float) -> int:
    """The shortest run :func:`tune_lr` can search for with ``budget``: room for two probes and
    for the range test and a probe within the budget. Shorter runs need the range test alone."""
    return max(2 * _MIN_PROBE, math.ceil(2 * _MIN_RANGE_TEST / budget))


def _check_numbers(total_steps: int, budget: float, range_test_steps: int) -> None:
    positive_int("total_steps", total_steps)
    if total_steps < 2 * _MIN_PROBE:
        raise ValueError(
            f"total_steps ({total_steps}) is shorter than two probes of {_MIN_PROBE} steps; use "
            "range_test alone for runs this short"
        )
    if not (isinstance(budget, (int, float)) and 0 < budget <= 1):
        raise ValueError(f"budget must be a fraction of one run in (0, 1], got {budget!r}")
    if range_test_steps < _MIN_RANGE_TEST:
        raise ValueError(f"range_test_steps must be >= {_MIN_RANGE_TEST}, got {range_test_steps}")
    units = budget * total_steps
    if units < 2 * _MIN_RANGE_TEST:
        raise ValueError(
            f"budget {budget:g} of {total_steps} steps is {units:.0f} updates, too few for even "
            f"the range test ({_MIN_RANGE_TEST} updates) and a probe; raise budget to at least "
            f"{2 * _MIN_RANGE_TEST / total_steps:.2g} or use range_test alone"
        )


# -- validation data ---------------------------------------------------------------------------


def _holdout(data: Iterable[Any], seed: int) -> tuple[Iterable[Any], Iterable[Any], str]:
    """Split validation batches off the training data: ``(train, val, description)``."""
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        n = len(data)
        if n < 2:
            raise ValueError(
                "train_data has fewer than 2 batches, so none can be held out for scoring the "
                "probes; pass val_data"
            )
        k = max(1, min(n // 10, 50))
        order = np.random.default_rng(seed).permutation(n)
        held = sorted(int(i) for i in order[:k])
        keep = sorted(int(i) for i in order[k:])
        return (
            [data[i] for i in keep],
            [data[i] for i in held],
            (f"{k} of the {n} training batches held out for scoring (not trained on)"),
        )
    if isinstance(data, Iterator):
        raise ValueError(
            "train_data is an iterator, which the probes would use up; pass a list or a "
            "DataLoader, and val_data"
        )
    held = []
    for i, batch in enumerate(data):
        if i >= 10:
            break
        held.append(batch)
    return (
        data,
        held,
        (
            f"the first {len(held)} training batches held out for scoring; they also recur in "
            "training (pass val_data, or a list of batches, for a clean split)"
        ),
    )


# -- the plan ----------------------------------------------------------------------------------


def _range_plan(units: float, range_test_steps: int) -> tuple[int, int]:
    """The range test's length and extension: a fifth of the budget, at least a third of
    ``range_test_steps`` when the budget allows, and an extension (``range_test(extend=...)``)
    only while the worst case leaves 70% of the budget for the probes."""
    floor = min(max(_MIN_RANGE_TEST, range_test_steps // 3), int(units * 0.5))
    r = min(range_test_steps, max(_MIN_RANGE_TEST, floor, int(units * 0.2)))
    for extend in (3, 2):
        if r * (1 + extend) <= 0.3 * units:
            return r, extend
    return r, 1


def _sweep_range(
    start_lr: float, end_lr: float, steps: int, full_steps: int
) -> tuple[float, float]:
    """The LR range of a range test shortened by the budget: its top six decades (where
    learning rates that train are), so that each step still moves the LR by a small factor."""
    if steps >= full_steps:
        return start_lr, end_lr
    return max(start_lr, end_lr * 1e-6), end_lr


@dataclass(frozen=True)
class _ProbePlan:
    rounds: int
    candidates: int
    steps: int
    walk: bool = False


def _probe_plan(
    left: float, total_steps: int, eval_cost: float, *, bracketed: bool = True
) -> _ProbePlan:
    """How to spend what the range test left. Without a bracket from the range test (no basin),
    a walk of :data:`_WALK_PROBES` probes (and one evaluation of the start state) as long as the
    budget allows. Otherwise: probes shorter than an eighth of the run mislead (their best peaks
    drift far from the full run's), so two rounds (four probes of ``L`` updates, three of
    ``2L``) when ``L`` reaches an eighth of the run; else one round of three probes as long as
    the budget allows; else none."""
    if not bracketed:
        n = _WALK_PROBES
        length = min(int((left - (n + 1) * eval_cost) // n), total_steps // 2)
        if length >= _MIN_PROBE:
            return _ProbePlan(1, n, length, walk=True)
    length = min(int((left - 7 * eval_cost) // 10), total_steps // 4)
    if length >= max(_MIN_PROBE, total_steps / 8):
        return _ProbePlan(2, 4, length)
    length = min(int((left - 3 * eval_cost) // 3), total_steps // 2)
    if length >= _MIN_PROBE:
        return _ProbePlan(1, 3, length)
    return _ProbePlan(0, 0, 0)


# -- probing -----------------------------------------------------------------------------------


class _Prober:
    """Short runs of the schedule from one snapshot, scored on validation data."""

    def __init__(
        self,
        engine: Engine,
        snap: TrainingSnapshot,
        train: Iterable[Any],
        val: Iterable[Any],
        schedule: ScheduleFn,
        metric_fn: MetricFn | None,
        maximize: bool,
        seed: int,
        sources: Sequence[object],
        progress: ProgressFn | None,
        total_units: float,
        runner: ProbeRunner | None = None,
    ) -> None:
        self.engine, self.snap, self.train, self.val = engine, snap, train, val
        self.schedule, self.metric_fn, self.maximize, self.seed = (
            schedule,
            metric_fn,
            maximize,
            seed,
        )
        self.sources = sources
        self.progress = progress
        self.total_units = total_units
        self.runner = runner
        self.spent = 0.0
        self.val_batches = sum(1 for _ in val)
        self.own_lr = max(read_value(g, "lr") for g in engine.optimizer.param_groups)
        self.usual_lr = _usual_lr(engine.optimizer)
        self.eval_cost = self.val_batches * _EVAL_COST / engine.accumulation_steps
        self._doing = "before the first probe"
        self._job: ProbeJob | None = None
        self._applied = 0

    def position(self) -> str:
        """Where the probes are, in words: what :class:`TuneInterrupted` says after Ctrl-C."""
        job = self._job
        if job is None:
            return f"in the probes of the search, {self._doing}"
        what = f"{self._doing} (peak {job.peak:.3g})"
        if self._applied < job.steps:
            done = f"after {self._applied} of its {job.steps} steps"
            return f"in the probes of the search: {what}, {done}"
        return f"in the probes of the search: validating {what}"

    def reseed(self) -> None:
        """The same start for every run: the snapshot's state, then the search's seed."""
        self.snap.restore()
        _reseed(self.seed, self.sources, self.engine.device)

    def run_round(self, peaks: Sequence[float], steps: int, round_: int) -> list[Probe]:
        """One round: ``schedule(peak, steps)`` for each of ``peaks``, each from the start
        state; here one after another, or all at once by the runner."""
        jobs = [ProbeJob(p, steps, round_, self.schedule(p, steps), self.seed) for p in peaks]
        outcomes: list[ProbeOutcome] = []
        if self.runner is None:
            for k, job in enumerate(jobs):
                self._doing = (
                    f"probe {k + 1} of {len(jobs)} of round {round_}"
                    if len(jobs) > 1
                    else f"the probe of round {round_}"
                )
                outcomes.append(self.train_probe(job, self.spent))
                self.charge(outcomes[-1])
            return [o.probe for o in outcomes]
        self._job = None
        self._doing = f"while the runner trained the {len(jobs)} probes of round {round_}"
        outcomes = list(self.runner(jobs))
        if len(outcomes) != len(jobs):
            raise RuntimeError(f"the probe runner gave {len(outcomes)} outcomes for {len(jobs)}")
        for job, out in zip(jobs, outcomes, strict=True):
            self.charge(out)
            if self.progress is not None:
                self.progress(int(self.spent), int(self.total_units), job.peak, out.loss)
        return [o.probe for o in outcomes]

    def charge(self, out: ProbeOutcome) -> None:
        """Add a probe's cost to what the search spent."""
        self.spent += out.updates + (self.eval_cost if out.evaluated else 0.0)

    def train_probe(self, job: ProbeJob, spent: float = 0.0) -> ProbeOutcome:
        """Train ``job.lr`` from the start state and score it (``spent``: the search's cost so
        far, for the progress callback)."""
        self._job, self._applied = job, 0
        self.reseed()
        driver = Scheduler(self.engine.optimizer, lr=job.lr)
        stream = BatchStream(self.train)
        self.engine.model.train()
        applied = skips = updates = 0
        loss = math.nan
        diverged = False
        steps = job.steps
        while applied < steps and not diverged:
            update = self.engine.update(stream)
            updates += 1
            if update.status == "skipped":  # retried at the same LR, as in the range test
                skips += 1
                diverged = skips >= _MAX_SKIPS
                continue
            skips = 0
            diverged = update.status == "nonfinite"
            if diverged:
                break
            applied += 1
            self._applied = applied
            loss = update.loss
            driver.step()
            if self.progress is not None:
                lr = driver.values()["lr"][0]
                self.progress(int(spent + updates), int(self.total_units), lr, update.loss)
        score = val_loss = math.nan
        evaluated = not diverged
        if evaluated:
            self._applied = steps
            found = self.engine.evaluate(self.val, self.metric_fn)
            score = found.metric if self.metric_fn is not None else found.loss
            val_loss = found.loss
            diverged = not math.isfinite(score)
        logger.info("probe peak=%.4g, %d steps: score %.5g", job.peak, steps, score)
        probe = Probe(
            job.peak,
            steps,
            math.nan if diverged else score,
            diverged,
            job.round,
            math.nan if diverged else val_loss,
        )
        return ProbeOutcome(probe, updates, evaluated, loss)

    def start_loss(self) -> float:
        """The validation loss of the start state, before any probe trains (charged as one
        evaluation): what a probe must improve on to count as having learned."""
        self._job = None
        self._doing = "evaluating the start state, before the walk of probes"
        self.reseed()
        self.spent += self.eval_cost
        return self.engine.evaluate(self.val).loss

    def key(self, p: Probe) -> float:
        """Sort key, best first."""
        if p.diverged:
            return math.inf
        return -p.score if self.maximize else p.score


def _reseed(seed: int, sources: Sequence[object], device: torch.device) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if device.type == "cpu":
        # torch.manual_seed also queues a seeding of every accelerator backend, which costs
        # about a millisecond a call: as much as tens of updates of a small model
        torch.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)
    for g in data_generators(*sources):
        g.manual_seed(seed)


def _vertex(probes: Sequence[Probe], prober: _Prober) -> float:
    """The best peak of one round: the vertex of a parabola through the scores of the best
    probe and its neighbours in log2(peak), kept between those neighbours; the best probe's
    peak when it lies at an edge of the round."""
    ok = sorted((p for p in probes if not p.diverged), key=lambda p: p.peak)
    if not ok:
        return min(p.peak for p in probes) / 2
    best = min(range(len(ok)), key=lambda i: prober.key(ok[i]))
    if best == 0 or best == len(ok) - 1:
        return ok[best].peak
    x = np.log2([ok[best - 1].peak, ok[best].peak, ok[best + 1].peak])
    y = np.array([prober.key(p) for p in ok[best - 1 : best + 2]])
    a, b, _ = np.polyfit(x, y, 2)
    if a <= 0:
        return ok[best].peak
    return float(2.0 ** np.clip(-b / (2 * a), x[0], x[2]))


def _around(centre: float, k: int) -> list[float]:
    """``k`` peaks a factor of two apart centred on ``centre``."""
    return [centre * 2.0 ** (i - (k - 1) / 2) for i in range(k)]


def _below(peaks: list[float], ceiling: float | None) -> list[float]:
    """``peaks`` shifted down, keeping their spacing, so that none is above ``ceiling``."""
    if ceiling is None or peaks[-1] <= ceiling:
        return peaks
    return [p * ceiling / peaks[-1] for p in peaks]


def _learned(p: Probe, start_loss: float) -> bool:
    """Whether a probe's validation loss fell clearly (by :data:`_LEARNED` of it) below the start
    state's: a probe at a learning rate too small for its length learns nothing."""
    if p.diverged:
        return False
    if not math.isfinite(start_loss):
        return True
    return p.val_loss < start_loss - _LEARNED * abs(start_loss)


def _walk(start: float, plan: _ProbePlan, prober: _Prober) -> tuple[list[Probe], bool]:
    """Find learning rates that learn in a probe's length when the range test could not: from
    ``start`` up by :data:`_WALK_FACTOR` while the probes learn nothing (down instead while
    they diverge), then the slots left bracket the best at half a step either side (towards its
    better neighbour first, never at or above a peak that diverged). The walk stops at the first
    probe that learns rather than climbing on while short runs improve: a short run's best peak
    lies above the full run's, and a peak too high costs more than one too low (climbing on
    chose 0.03 for a small tabular AdamW model whose full run is best at 5e-4). Returns the
    probes and whether any of them learned."""
    start_loss = prober.start_loss()
    probes: list[Probe] = []
    peak = start
    while len(probes) < plan.candidates:
        p = prober.run_round([peak], plan.steps, 1)[0]
        probes.append(p)
        if all(q.diverged for q in probes):
            peak = min(q.peak for q in probes) / _WALK_FACTOR
            continue
        if p.diverged or any(q.diverged for q in probes[:-1]):
            break  # past the top, or the first that did not diverge on the way down
        if _learned(p, start_loss):
            break
        peak = p.peak * _WALK_FACTOR
    learned_any = any(_learned(q, start_loss) for q in probes)
    left = plan.candidates - len(probes)
    ok = [q for q in probes if not q.diverged]
    if left <= 0 or not ok or not learned_any:
        return probes, learned_any
    best = min(ok, key=prober.key)
    limit = min((q.peak for q in probes if q.diverged), default=math.inf)

    def neighbour_key(peak: float) -> float:
        near = [q for q in probes if math.isclose(q.peak, peak, rel_tol=1e-9)]
        return prober.key(near[0]) if near else -math.inf  # untried: the unexplored side

    step = math.sqrt(_WALK_FACTOR)
    sides = sorted(
        (best.peak * step, best.peak / step),
        key=lambda x: neighbour_key(x * step if x > best.peak else x / step),
    )
    # half steps lie between the walk's own peaks (a factor of four apart): never tried yet
    refine = [x for x in sides if x < limit][:left]
    if refine:
        probes += prober.run_round(refine, plan.steps, 2)
    return probes, learned_any


def _usual_lr(optimizer: torch.optim.Optimizer) -> float:
    """The conventional learning rate of the optimizer's kind: lrkit's default for a named
    optimizer class (0.1 for SGD, 1e-3 for Adam and AdamW, ...), else 1e-3 for one with betas
    and 0.1 for the rest."""
    for spec in SPECS.values():
        if type(optimizer) is spec.cls:
            return spec.lr
    return 1e-3 if "betas" in optimizer.param_groups[0] else 0.1


def _anchor(
    result: RangeTestResult, own_lr: float, usual_lr: float
) -> tuple[float, float | None, str]:
    """The anchor of the probes, the ceiling, and where the anchor came from: the range test's
    suggestion; else, when the range test found no basin, the optimizer's own learning rate when
    it is one that trains (in the top six decades of the sweep, not a finder's placeholder such
    as 1e-7), else the conventional learning rate of the optimizer's kind."""
    analysis = analyze_curve(result.lrs, result.scored_losses)
    ceiling = analysis.lr_up
    if result.suggestion is not None:
        return result.suggestion, ceiling, "the range test's suggestion"
    if result.end_lr * 1e-6 <= own_lr <= result.end_lr:
        return own_lr, ceiling, "the optimizer's own learning rate (the range test found no basin)"
    return (
        usual_lr,
        ceiling,
        "the usual learning rate of the optimizer (the range test found no basin)",
    )


def _check_finite(found: RangeTestResult, probes: Sequence[Probe]) -> None:
    """``ValueError`` when the loss was not finite at any learning rate the search tried: no
    finite loss in the range test, and every probe diverged."""
    if any(not p.diverged for p in probes) or np.isfinite(found.scored_losses).any():
        return
    tried = f"the range test from {found.lrs[0]:.3g}" if found.lrs.size else "the range test"
    if probes:
        peaks = [p.peak for p in probes]
        tried += f" and {len(probes)} probes with peaks from {min(peaks):.3g} to {max(peaks):.3g}"
    raise ValueError(
        f"the loss was not finite (NaN or inf) at any learning rate tried ({tried}), so there is "
        "no learning rate to choose; check the loss function, the data (NaN or inf in the "
        "inputs or targets) and the model's initialisation: the loss of the untrained model "
        "must be finite"
    )


def _extrapolate(
    p1: float, p2: float | None, length: int, total_steps: int, cap: float | None
) -> tuple[float, float | None, str]:
    """The peak for ``total_steps`` from the best peaks at ``length`` and ``2 length``."""
    if p2 is None:
        n = math.log2(total_steps / length)
        shrunk, base, drift = PRIOR_DRIFT, p1, None
        how = f"prior drift {PRIOR_DRIFT:.2f} per doubling"
    else:
        drift = math.log2(p1 / p2)
        shrunk = float(np.clip(0.5 * drift + 0.5 * PRIOR_DRIFT, -0.5, 1.5))
        n = math.log2(total_steps / (2 * length))
        base = p2
        how = f"measured drift {drift:+.2f} per doubling of the run, shrunk to {shrunk:+.2f}"
    peak = float(np.clip(base * 2.0 ** (-shrunk * n), base / 16, base * 2))
    if cap is not None and peak > cap:
        peak = cap
        how += f"; capped at {cap:.3g}"
    return peak, drift, f"{how}, over {n:.1f} doublings to {total_steps} steps"


def tune_lr(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_data: Iterable[Any],
    loss_fn: LossFn | None = None,
    *,
    total_steps: int,
    val_data: Iterable[Any] | None = None,
    budget: float = 0.5,
    schedule: ScheduleFn | None = None,
    metric_fn: MetricFn | None = None,
    maximize: bool = False,
    step_fn: StepFn | None = None,
    accumulation_steps: int = 1,
    scaler: Any = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    range_test_steps: int = 100,
    seed: int = 0,
    snapshot: SnapshotMode = "cpu",
    progress: ProgressFn | None = None,
    runner: ProbeRunner | None = None,
) -> TuneResult:
    """Pick the peak learning rate of the schedule you will train with, within a budget.

    See the module docstring for the method. Arguments as :func:`~lrkit.finder.range_test`'s,
    and:

    Args:
        total_steps: the optimizer updates of the training run the peak is for.
        val_data: batches to score the probes on; without them a slice of ``train_data`` is
            held out (a list of batches is split cleanly; ``result.holdout`` says what was done).
        budget: the fraction of one run (``total_steps`` updates) the whole search may spend,
            range test included; it is never exceeded (``result.spent``).
        schedule: ``schedule(peak, steps) -> Schedule | Hyper``, the policy you train with
            (default: lrkit's ``one_cycle``, with cyclical momentum when the optimizer has it).
            The probes use it too, so the choice transfers.
        metric_fn: ``metric_fn(outputs, targets) -> float`` per validation batch, averaged
            weighted by batch size; without it probes are scored on the validation loss.
        maximize: ``metric_fn`` is better when higher (accuracy); needs ``metric_fn``.
        range_test_steps: the longest range test (the budget may make it shorter).
        seed: the seed of the search's randomness (data order, dropout); the result is
            deterministic for a given seed.
        progress: ``progress(done, total, lr, loss)`` after every update of the range test and
            of the probes; ``done`` and ``total`` count the search's cost units (updates, and a
            third of an update per evaluation batch), ``total`` is the budget.
        runner: runs the independent probes of each round elsewhere (:data:`ProbeRunner`);
            default: here, one after another. The probes of a model and data of your own run
            here; :func:`lrkit.finder.task.tune_task` with ``backend="ray"`` passes a runner
            that trains a built-in task's probes as Ray tasks, with the same result.

    Returns:
        A :class:`TuneResult`; ``result.peak`` is never ``None``. The model, optimizer,
        scaler and RNGs (also a loader's own generator) are exactly as before afterwards.

    Under ``torchrun``, every rank calls it with its own part of the data (the same number of
    validation batches on every rank) and the model wrapped in ``DistributedDataParallel``: the
    range test and the probes' scores are reduced over the ranks, so every rank chooses the
    same peak (see :func:`~lrkit.finder.range_test`).

    Raises:
        ValueError: a budget too small for even the range test, ``total_steps`` shorter than
            two probes, empty ``val_data``, a ``schedule`` that does not take ``(peak, steps)``,
            ``maximize`` without ``metric_fn``, and under ``torch.distributed`` arguments that
            differ between ranks — before anything is modified. Also a loss that is not finite
            at any learning rate the search tries (no finite loss in the range test, and every
            probe diverged), after everything is restored.
        TuneInterrupted: Ctrl-C anywhere in the search (a ``KeyboardInterrupt``; its ``where``
            says where it stopped), after everything is restored. Unlike
            :func:`~lrkit.finder.range_test`, which returns what it swept so far, the search
            has no partial answer.
    """
    rng = RngState.capture(train_data, val_data)
    fingerprint = {
        "total_steps": total_steps, "budget": budget, "range_test_steps": range_test_steps,
        "start_lr": start_lr, "end_lr": end_lr, "seed": seed,
        "accumulation_steps": accumulation_steps, "maximize": maximize,
        "metric_fn": metric_fn is not None, "step_fn": step_fn is not None,
        "val_data": val_data is not None, "scaler": scaler is not None,
        "optimizer": type(optimizer).__name__,
        "optimizer lr": max(read_value(g, "lr") for g in optimizer.param_groups),
    }  # fmt: skip
    try:
        with distributed.agreement("tune_lr", fingerprint) as agreed:
            _check_numbers(total_steps, budget, range_test_steps)
            make = (
                schedule
                if schedule is not None
                else _default_schedule(_optimizer_cycles_momentum(optimizer))
            )
            _check_schedule(make)
            made = make(1.0, total_steps)
            lr_of = made.lr if isinstance(made, Hyper) else made
            agreed["schedule(1, total_steps) at 0, 1/2, end"] = [
                float(lr_of(i)) for i in (0, total_steps // 2, total_steps - 1)
            ]
            if maximize and metric_fn is None:
                raise ValueError("maximize=True needs metric_fn (the validation loss is minimized)")
            if metric_fn is not None and step_fn is not None:
                raise ValueError(
                    "metric_fn needs (inputs..., target) batches; it cannot be used with step_fn"
                )
            if isinstance(val_data, Iterator):
                raise ValueError("val_data is read after every probe; pass a list or a DataLoader")
            distributed.require_wrapped(model, "tune_lr")
            holdout = None
            train, val = train_data, val_data
            if val is None:
                train, val, holdout = _holdout(train_data, seed)
            _first(train, "train_data", "pass the training batches")
            val_first = _first(
                val,
                "val_data",
                "pass the batches to score the probes on (a non-empty list or DataLoader), or "
                "leave val_data out to hold out a slice of train_data",
            )
            validate_batch(
                val_first, has_step_fn=step_fn is not None, has_loss_fn=True, what="val_data"
            )
            if distributed.is_distributed():  # the probe plan counts them: ranks must agree
                agreed["validation batches"] = (
                    len(val) if isinstance(val, Sized) else sum(1 for _ in val)
                )
    except KeyboardInterrupt:
        rng.restore()
        raise TuneInterrupted("before the search started, while checking its arguments") from None
    except BaseException:
        rng.restore()
        raise
    rng.restore()
    return _search(
        model, optimizer, train, val, loss_fn, total_steps=total_steps, budget=budget,
        schedule=make, metric_fn=metric_fn, maximize=maximize, step_fn=step_fn,
        accumulation_steps=accumulation_steps, scaler=scaler, start_lr=start_lr, end_lr=end_lr,
        range_test_steps=range_test_steps, seed=seed, snapshot=snapshot, progress=progress,
        holdout=holdout, sources=(train_data, val_data), runner=runner,
    )  # fmt: skip


def _first(data: Iterable[Any], what: str, advice: str) -> Any:
    """The first batch of ``data``; ``ValueError`` naming ``what`` when it yields none."""
    for batch in data:
        return batch
    raise ValueError(f"{what} is empty: it yielded no batches; {advice}")


def _search(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: Iterable[Any],
    val: Iterable[Any],
    loss_fn: LossFn | None,
    *,
    total_steps: int,
    budget: float,
    schedule: ScheduleFn,
    metric_fn: MetricFn | None,
    maximize: bool,
    step_fn: StepFn | None,
    accumulation_steps: int,
    scaler: Any,
    start_lr: float,
    end_lr: float,
    range_test_steps: int,
    seed: int,
    snapshot: SnapshotMode,
    progress: ProgressFn | None,
    holdout: str | None,
    sources: Sequence[object],
    runner: ProbeRunner | None = None,
) -> TuneResult:
    units = budget * total_steps
    rng = RngState.capture(*sources)
    snap = TrainingSnapshot.take(model, optimizer, scaler, snapshot, rng=rng)
    engine = Engine(
        model,
        optimizer,
        loss_fn=loss_fn,
        step_fn=step_fn,
        accumulation_steps=accumulation_steps,
        scaler=scaler,
    )
    prober: _Prober | None = None
    sweep = _SweepProgress(progress, units)
    try:
        prober = _Prober(
            engine, snap, train, val, schedule, metric_fn, maximize, seed, sources, progress,
            units, runner,
        )  # fmt: skip
        steps, extend = _range_plan(units, range_test_steps)
        low, high = _sweep_range(start_lr, end_lr, steps, range_test_steps)
        _reseed(seed, sources, engine.device)
        sweep.started = True
        found = range_test(
            model,
            optimizer,
            train,
            loss_fn,
            step_fn=step_fn,
            start_lr=low,
            end_lr=high,
            steps=steps,
            accumulation_steps=accumulation_steps,
            scaler=scaler,
            seed=seed,
            snapshot=snapshot,
            extend=extend,
            band=False,
            progress=sweep,
        )
        if found.stop_reason == "interrupted":  # a range test cut short brackets nothing
            raise TuneInterrupted(sweep.position())
        sweep.finished = True
        prober.spent = float(len(found.lrs) + (found.extended_from or 0))
        plan = _probe_plan(
            units - prober.spent,
            total_steps,
            prober.eval_cost,
            bracketed=found.suggestion is not None,
        )
        return _probe_and_choose(found, plan, prober, total_steps, budget, units, holdout)
    except KeyboardInterrupt as err:
        if isinstance(err, TuneInterrupted):
            raise
        where = prober.position() if sweep.finished and prober is not None else sweep.position()
        raise TuneInterrupted(where) from None
    finally:
        engine.close()
        snap.restore()
        snap.close()


class _SweepProgress:
    """The range test's ``progress`` inside the search: passes it on in the search's units (a
    longer second sweep after one without a clear descent continues the count) and remembers
    the step reached, to say where Ctrl-C stopped the search."""

    def __init__(self, progress: ProgressFn | None, units: float) -> None:
        self.progress = progress
        self.units = units
        self.started = self.finished = False
        self.done = self.steps = self.offset = 0

    def __call__(self, done: int, total: int, lr: float, loss: float) -> None:
        if done <= self.done:  # the second sweep starts from its first step
            self.offset += self.done
        self.done, self.steps = done, total
        if self.progress is not None:
            self.progress(self.offset + done, int(self.units), lr, loss)

    def position(self) -> str:
        """Where the range test is, in words."""
        if not self.started:
            return "before the range test of the search started"
        if self.steps == 0:
            return "in the range test of the search, at its first step"
        second = ", in its second, longer sweep" if self.offset else ""
        return (
            f"in the range test of the search{second}, after {self.done} of its {self.steps} steps"
        )


def _probe_and_choose(
    found: RangeTestResult,
    plan: _ProbePlan,
    prober: _Prober,
    total_steps: int,
    budget: float,
    units: float,
    holdout: str | None,
) -> TuneResult:
    anchor, ceiling, source = _anchor(found, prober.own_lr, prober.usual_lr)
    score_name = "metric" if prober.metric_fn is not None else "val_loss"

    def result(peak: float, probes: list[Probe], reason: str, drift: float | None) -> TuneResult:
        spent = prober.spent / total_steps
        if spent > budget and math.isclose(spent, budget, rel_tol=1e-9):
            spent = budget  # the plan fits the budget; its costs' sum may round one ulp over
        return TuneResult(
            peak=float(peak),
            total_steps=total_steps,
            probes=probes,
            range_test=found,
            budget=float(budget),
            spent=spent,
            score_name=score_name,
            maximize=prober.maximize,
            reason=reason,
            holdout=holdout,
            drift=drift,
            schedule=prober.schedule,
        )

    if plan.rounds == 0:
        _check_finite(found, [])
        return result(anchor, [], f"{source}; the budget leaves no room for probes", None)
    length = plan.steps
    # short runs prefer higher peaks: centre the first round where the prior puts the anchor
    shift = 2.0 ** (PRIOR_DRIFT * math.log2(total_steps / length))
    where = f"probes around {source} ({anchor:.3g})"
    if plan.walk:
        probes, learned = _walk(anchor * shift / 2, plan, prober)
        where = f"a walk of probes up from {source} ({anchor:.3g})"
        if learned:
            p1 = _vertex(probes, prober)
        else:  # too short to learn at any of them: the largest that did not diverge
            where += ", none of which learned: from the largest that did not diverge"
            p1 = max((p.peak for p in probes if not p.diverged), default=anchor)
    else:
        first = _below(_around(anchor * shift, plan.candidates), ceiling)
        probes = prober.run_round(first, length, 1)
        p1 = _vertex(probes, prober)
    p2: float | None = None
    if plan.rounds == 2:
        second = _below(_around(p1 * 2.0**-PRIOR_DRIFT, 3), ceiling)
        probes += prober.run_round(second, 2 * length, 2)
        p2 = _vertex(probes[plan.candidates :], prober)
    _check_finite(found, probes)
    diverged = [p.peak for p in probes if p.diverged]
    cap = ceiling
    if diverged:
        cap = min(min(diverged) / 2, cap) if cap is not None else min(diverged) / 2
    peak, drift, how = _extrapolate(p1, p2, length, total_steps, cap)
    return result(peak, probes, f"{where}; {how}", drift)
