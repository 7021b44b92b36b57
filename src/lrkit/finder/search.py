"""The budgeted search: pick the peak of the schedule the user will train with.

A range test brackets the usable learning rates cheaply but cannot pick inside the bracket: two
curves of the same shape can want peaks on opposite sides of the basin, and overfitting does not
show in a training-loss sweep. :func:`tune_lr` spends a stated fraction of one training run on
short runs of the user's own schedule around the range test's suggestion, scored on validation
data, and moves away from the suggestion only on evidence:

1. **Bracket.** The plain range test (:func:`~lrkit.finder.range_test`, the same length and
   range, never shortened; extended when it finds no clear descent, as far as the budget holds)
   gives the suggestion (lrkit's rule) and a ceiling (where the loss turns up). A budget too
   small for it is refused.
2. **Probe.** Peaks at half, one, two and four times the suggestion, each trained for ``L``
   updates with ``schedule(peak, L)`` from the same state and data order and scored on the
   validation loss (or ``metric_fn``), and the suggestion's probe once more under another seed:
   the difference of the two is the probes' noise. When the range test found no basin (a model
   that learns nothing in a sweep's few steps, such as a GRU), the probes look themselves: a
   walk up from the optimizer's learning rate by factors of four while they learn nothing.
3. **Decide.** The answer stays the range test's suggestion unless the best probe learned (its
   validation loss clearly below the start state's) and beat the suggestion's probe by more
   than :data:`~lrkit.finder.peak_choice.EVIDENCE` times the noise. Only then does it move: to
   the best probe's peak (the vertex of a parabola through the scores in log-LR), carried to the
   run's length by the horizon model (:mod:`lrkit.finder.horizon`: the best peak of a short run
   differs from the full run's, by an amount fitted on a design set of tasks), kept below the
   ceiling and half the smallest peak whose probe diverged. Probes shorter than a sixteenth of
   the run (:data:`~lrkit.finder.peak_choice.MIN_FRACTION`) are not evidence and are not bought:
   when the budget cannot buy longer ones, the answer is the range test's suggestion, and
   ``reason`` says so.

The cost unit is one optimizer update (``accumulation_steps`` batches, forward and backward); an
evaluation batch counts as a third of a batch's update (a forward pass only). The search never
spends more than ``budget × total_steps`` units and reports what it spent.

This module holds :func:`tune_lr` (its checks, the range test, and the restore); the plan and
the choice are in :mod:`lrkit.finder.peak_choice`, the probes' training in
:mod:`lrkit.finder.probes`, the result types in :mod:`lrkit.finder.tune_result`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from lrkit._checks import positive_int
from lrkit.driver import read_value
from lrkit.engine import (
    Engine,
    LossFn,
    MetricFn,
    RngState,
    Session,
    SnapshotMode,
    StepFn,
    TrainingSnapshot,
    count_batches,
    distributed,
    validate_batch,
)
from lrkit.finder.horizon import model_traits
from lrkit.finder.peak_choice import MIN_PROBE, probe_and_choose, probe_plan, range_plan
from lrkit.finder.probes import Prober, reseed
from lrkit.finder.range_test import ProgressFn, peek_checked
from lrkit.finder.range_test import sweep as range_sweep
from lrkit.finder.result import RangeTestResult
from lrkit.finder.tune_result import (
    Probe,
    ProbeJob,
    ProbeOutcome,
    ProbeRunner,
    ScheduleFn,
    TuneInterrupted,
    TuneResult,
    default_schedule,
)
from lrkit.schedules import Hyper, Schedule

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


def min_total_steps(budget: float, range_test_steps: int = 100) -> int:
    """The shortest run :func:`tune_lr` can search for with ``budget``: its range test (of
    ``range_test_steps`` updates, as the plain one) within the budget. Shorter runs need the
    range test alone."""
    return max(2 * MIN_PROBE, math.ceil(range_test_steps / budget))


def _check_numbers(total_steps: int, budget: float, range_test_steps: int) -> None:
    positive_int("total_steps", total_steps)
    if total_steps < 2 * MIN_PROBE:
        raise ValueError(
            f"total_steps ({total_steps}) is shorter than two probes of {MIN_PROBE} steps; use "
            "range_test alone for runs this short"
        )
    if not (isinstance(budget, (int, float)) and 0 < budget <= 1):
        raise ValueError(f"budget must be a fraction of one run in (0, 1], got {budget!r}")
    positive_int("range_test_steps", range_test_steps)
    units = budget * total_steps
    if units < range_test_steps:
        need = range_test_steps / total_steps
        advice = (
            f"raise budget to at least {math.ceil(need * 100) / 100:g}"
            if need <= 1
            else "the range test alone costs more than the run"
        )
        raise ValueError(
            f"budget {budget:g} of {total_steps} steps is {units:.0f} updates, fewer than the "
            f"range test's {range_test_steps} (range_test_steps), which the search never "
            f"shortens; {advice}, or use range_test alone: its suggestion is what tune_lr "
            "answers when the budget buys no probes"
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
    autocast: torch.dtype | None = None,
    max_grad_norm: float | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    range_test_steps: int = 100,
    seed: int = 0,
    snapshot: SnapshotMode = "cpu",
    progress: ProgressFn | None = None,
    runner: ProbeRunner | None = None,
) -> TuneResult:
    """Pick the peak learning rate of the schedule you will train with, within a budget.

    See the module docstring for the method. Arguments as :func:`~lrkit.finder.range_test`'s
    (``autocast`` and ``max_grad_norm`` too: the range test and every probe train the update
    you train, mixed precision and clipping included), and:

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
        range_test_steps: the range test's length, as :func:`~lrkit.finder.range_test`'s
            ``steps`` (never shortened by the budget; a budget below it is refused).
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
        "autocast": None if autocast is None else str(autocast), "max_grad_norm": max_grad_norm,
        "optimizer": type(optimizer).__name__,
        "optimizer lr": max(read_value(g, "lr") for g in optimizer.param_groups),
    }  # fmt: skip
    try:
        with distributed.agreement("tune_lr", fingerprint) as agreed:
            make, train, val, holdout = _checked_inputs(
                agreed, model, optimizer, train_data, val_data, total_steps=total_steps,
                budget=budget, range_test_steps=range_test_steps, schedule=schedule,
                metric_fn=metric_fn, maximize=maximize, step_fn=step_fn, seed=seed,
            )  # fmt: skip
            session = Session(
                model, optimizer, loss_fn, step_fn, accumulation_steps, scaler, autocast,
                max_grad_norm, val, metric_fn,
            )  # fmt: skip
            session.check("tune_lr", val_read="after every probe")
    except KeyboardInterrupt:
        rng.restore()
        raise TuneInterrupted("before the search started, while checking its arguments") from None
    except BaseException:
        rng.restore()
        raise
    rng.restore()
    return _search(
        session, train, val, total_steps=total_steps, budget=budget, schedule=make,
        maximize=maximize, start_lr=start_lr, end_lr=end_lr, range_test_steps=range_test_steps,
        seed=seed, snapshot=snapshot, progress=progress, holdout=holdout,
        sources=(train_data, val_data), runner=runner,
    )  # fmt: skip


def _checked_inputs(
    agreed: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_data: Iterable[Any],
    val_data: Iterable[Any] | None,
    *,
    total_steps: int,
    budget: float,
    range_test_steps: int,
    schedule: ScheduleFn | None,
    metric_fn: MetricFn | None,
    maximize: bool,
    step_fn: StepFn | None,
    seed: int,
) -> tuple[ScheduleFn, Iterable[Any], Iterable[Any], str | None]:
    """:func:`tune_lr`'s checks of its arguments, before anything is modified: the schedule,
    the training and validation data (``val_data`` held out of ``train_data`` when not given)
    and how they were held out; what every rank must agree on is added to ``agreed``."""
    _check_numbers(total_steps, budget, range_test_steps)
    make = (
        schedule
        if schedule is not None
        else default_schedule(_optimizer_cycles_momentum(optimizer))
    )
    _check_schedule(make)
    made = make(1.0, total_steps)
    lr_of = made.lr if isinstance(made, Hyper) else made
    agreed["schedule(1, total_steps) at 0, 1/2, end"] = [
        float(lr_of(i)) for i in (0, total_steps // 2, total_steps - 1)
    ]
    if maximize and metric_fn is None:
        raise ValueError("maximize=True needs metric_fn (the validation loss is minimized)")
    if isinstance(val_data, Iterator):
        raise ValueError("val_data is read after every probe; pass a list or a DataLoader")
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
    validate_batch(val_first, has_step_fn=step_fn is not None, has_loss_fn=True, what="val_data")
    if distributed.is_distributed():  # the probe plan counts them: ranks must agree
        agreed["validation batches"] = count_batches(val)
    return make, train, val, holdout


def _first(data: Iterable[Any], what: str, advice: str) -> Any:
    """The first batch of ``data``; ``ValueError`` naming ``what`` when it yields none."""
    for batch in data:
        return batch
    raise ValueError(f"{what} is empty: it yielded no batches; {advice}")


def _search(
    session: Session,
    train: Iterable[Any],
    val: Iterable[Any],
    *,
    total_steps: int,
    budget: float,
    schedule: ScheduleFn,
    maximize: bool,
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
    """The search on ``session`` (checked; ``val`` its validation data, held out of the
    training data when the caller gave none): one snapshot and one engine for the range test
    and the probes, everything restored afterwards."""
    units = budget * total_steps
    snap = session.snapshot(snapshot, RngState.capture(*sources))
    engine = session.engine()
    prober: Prober | None = None
    sweep = _SweepProgress(progress, units)
    try:
        prober = Prober(
            engine, snap, train, val, schedule, session.metric_fn, maximize, seed,
            sources, progress, units, runner,
        )  # fmt: skip
        reseed(seed, sources, engine.device)
        found = _bracket(
            engine, snap, train, sweep, has_step_fn=session.step_fn is not None, seed=seed,
            start_lr=start_lr, end_lr=end_lr, range_test_steps=range_test_steps,
        )  # fmt: skip
        prober.spent = float(len(found.lrs) + (found.extended_from or 0))
        plan = probe_plan(
            units - prober.spent,
            total_steps,
            prober.eval_cost,
            bracketed=found.suggestion is not None,
        )
        traits = model_traits(session.model, session.optimizer)
        return probe_and_choose(found, plan, prober, total_steps, budget, units, holdout, traits)
    except KeyboardInterrupt as err:
        if isinstance(err, TuneInterrupted):
            raise
        where = prober.position() if sweep.finished and prober is not None else sweep.position()
        raise TuneInterrupted(where) from None
    finally:
        engine.close()
        snap.restore()
        snap.close()


class _RangeTestStart:
    """Where the search's range test starts: the search's snapshot of the model, optimizer and
    scaler, with the RNGs as the range test found them (the search has seeded them)."""

    def __init__(self, snap: TrainingSnapshot, rng: RngState) -> None:
        self.snap, self.rng = snap, rng

    def restore_training(self) -> None:
        self.snap.restore_training()

    def restore(self) -> None:
        self.snap.restore_training()
        self.rng.restore()


def _bracket(
    engine: Engine,
    snap: TrainingSnapshot,
    train: Iterable[Any],
    sweep: _SweepProgress,
    *,
    has_step_fn: bool,
    seed: int,
    start_lr: float,
    end_lr: float,
    range_test_steps: int,
) -> RangeTestResult:
    """The range test that brackets the search: the plain range test's length and range, its
    extension as far as the budget holds it (:func:`range_plan`), on the search's own engine and
    snapshot, reporting through ``sweep``; :class:`TuneInterrupted` when Ctrl-C cut it short.
    The state is as it was before it afterwards."""
    extend = range_plan(sweep.units, range_test_steps)
    sweep.started = True
    start = _RangeTestStart(snap, RngState.capture(train))
    try:
        first = peek_checked(train, None, has_step_fn=has_step_fn)
        found = range_sweep(
            engine, start, train, first, range_test_steps, start_lr=start_lr, end_lr=end_lr,
            seed=seed, progress=sweep, extend=extend, band=False,
        )  # fmt: skip
    finally:
        start.restore()
    if found.stop_reason == "interrupted":  # a range test cut short brackets nothing
        raise TuneInterrupted(sweep.position())
    sweep.finished = True
    return found


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
