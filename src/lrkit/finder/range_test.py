"""The learning-rate range test (Smith 2015, arXiv 1506.01186, section 3.3).

Train for a few hundred steps while the learning rate rises from ``start_lr`` to ``end_lr``, and
record the loss at each step. The loss first stays flat (LR too small to make progress), then
falls, then turns up or explodes (LR too large). The LR range where it falls is the usable range;
:mod:`lrkit.finder.suggest` reads a learning rate off the curve.

The test trains the model, so it first takes a :class:`~lrkit.engine.TrainingSnapshot`
and restores everything afterwards: parameters, buffers, gradients, optimizer state and
hyperparameters, GradScaler, the global RNGs and the private generator a data loader shuffles with
(``DataLoader(shuffle=True, generator=g)``) are exactly as before, whether the test completes,
diverges, hits a NaN, is interrupted with Ctrl-C or the user's code raises.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import nn

from lrkit._checks import positive_int
from lrkit.driver import Scheduler
from lrkit.engine import (
    BatchStream,
    Engine,
    LossFn,
    MetricFn,
    RngState,
    Session,
    SnapshotMode,
    StepFn,
    Update,
    distributed,
    drive,
    peek,
    validate_batch,
)
from lrkit.finder._sweep_math import LossWatch, check_sweep_args
from lrkit.finder.result import RangeTestResult, StopReason
from lrkit.schedules import Schedule, geometric, linear

__all__ = [
    "ProgressFn",
    "Restart",
    "lr_sequence",
    "peek_checked",
    "range_test",
    "sweep",
    "sweep_schedule",
]

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, float, float], None]
"""``progress(done, total, lr, loss)``: called after every update; ``done`` counts updates over
all repeats, ``total = steps * repeats``."""

_EMPTY = object()


def sweep_schedule(
    start_lr: float, end_lr: float, steps: int, mode: Literal["exp", "linear"] = "exp"
) -> Schedule:
    """The learning rates of a range test as a schedule over its ``steps`` optimizer updates.

    ``"exp"``: :func:`~lrkit.schedules.geometric`, ``lr_i = start_lr * (end_lr / start_lr) **
    (i / (steps - 1))`` (equal spacing in log-LR); ``"linear"``:
    :func:`~lrkit.schedules.linear`, ``lr_i = start_lr + (end_lr - start_lr) * i / (steps -
    1)``. Both start exactly at ``start_lr`` and end exactly at ``end_lr``.
    """
    if mode == "exp":
        return geometric(start_lr, end_lr, steps - 1)
    if mode == "linear":
        return linear(start_lr, end_lr, steps - 1)
    raise ValueError(f"mode must be 'exp' or 'linear', got {mode!r}")


def lr_sequence(
    start_lr: float, end_lr: float, steps: int, mode: Literal["exp", "linear"] = "exp"
) -> np.ndarray:
    """The learning rates of a range test, one per optimizer update: the values of
    :func:`sweep_schedule` at steps ``0 .. steps - 1``."""
    return np.asarray(sweep_schedule(start_lr, end_lr, steps, mode).table(0, steps))


def _check_args(
    start_lr: float,
    end_lr: float,
    steps: int,
    mode: str,
    smoothing: float,
    diverge: float,
    repeats: int,
    snapshot: str,
) -> None:
    """The sweep's own settings (the session checks the rest)."""
    check_sweep_args(start_lr, end_lr, steps, mode, smoothing, diverge)
    positive_int("repeats", repeats)
    if snapshot not in ("cpu", "disk"):
        raise ValueError(f"snapshot must be 'cpu' or 'disk', got {snapshot!r}")


class _Sweep:
    """One run of the sweep (one repeat): the LR schedule driven by :class:`lrkit.Scheduler`
    into the optimizer, one :meth:`Engine.update` per step, and the per-step bookkeeping."""

    def __init__(
        self,
        engine: Engine,
        schedule: Schedule,
        steps: int,
        *,
        smoothing: float,
        diverge: float,
        val_data: Iterable[Any] | None,
        metric_fn: MetricFn | None,
        progress: ProgressFn | None,
        progress_offset: int,
        progress_total: int,
    ) -> None:
        self.engine = engine
        self.schedule = schedule
        self.steps = steps
        self.beta = smoothing
        self.diverge = diverge
        self.val_data = val_data
        self.metric_fn = metric_fn
        self.progress = progress
        self.progress_offset = progress_offset
        self.progress_total = progress_total
        self.train_losses: list[float] = []
        self.val_losses: list[float] = []
        self.metrics: list[float] = []
        self.scored: list[float] = []
        self.smoothed: list[float] = []
        self.stop_reason: StopReason = "completed"
        self.skipped_steps = 0

    def run(self, stream: Iterator[Any]) -> None:
        """Sweep until ``steps`` updates are done, the loss diverges or becomes non-finite
        (:func:`~lrkit.engine.drive`, with this sweep as its hooks).

        ``KeyboardInterrupt`` ends the sweep with ``stop_reason="interrupted"``; any other
        exception propagates.
        """
        driver = Scheduler(self.engine.optimizer, lr=self.schedule)
        self._watch = LossWatch(self.beta, self.diverge)
        self._lrs = self.schedule.table(0, self.steps)
        self.smoothed = self._watch.smoothed
        try:
            self.engine.model.train()
            done = drive(self.engine, stream, self.steps, self, scheduler=driver)
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
            return
        if done.stop == "skipped":
            logger.warning(
                "GradScaler skipped %d steps in a row at lr=%.3g: gradients are not finite",
                done.skips,
                self._lrs[done.applied],
            )
            self.stop_reason = "nan"

    def before(self, step: int) -> None:
        """Nothing to do before an update."""

    def skipped(self, step: int, update: Update) -> None:
        """Count a step the GradScaler skipped."""
        self.skipped_steps += 1

    def after(self, step: int, update: Update) -> bool:
        """Record the update's loss (and the validation loss and metric); ``True`` stops."""
        train_loss = update.loss
        self.train_losses.append(train_loss)
        value = train_loss
        if self.val_data is not None:
            # a non-finite training loss was not stepped on: nothing new to validate
            found = (
                self.engine.evaluate(self.val_data, self.metric_fn)
                if math.isfinite(train_loss)
                else None
            )
            value = math.nan if found is None else found.loss
            self.val_losses.append(value)
            self.metrics.append(math.nan if found is None else found.metric)
        self.scored.append(value)
        stop = self._watch.add(value)
        if stop == "nan":
            self.stop_reason = stop
            return True
        if self.progress is not None:
            lr = self._lrs[step]
            self.progress(self.progress_offset + step + 1, self.progress_total, lr, value)
        if stop is not None:
            self.stop_reason = stop
            return True
        return False


def range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Iterable[Any],
    loss_fn: LossFn | None = None,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    mode: Literal["exp", "linear"] = "exp",
    smoothing: float = 0.98,
    diverge: float = 4.0,
    accumulation_steps: int = 1,
    val_data: Iterable[Any] | None = None,
    metric_fn: MetricFn | None = None,
    step_fn: StepFn | None = None,
    scaler: Any = None,
    autocast: torch.dtype | None = None,
    max_grad_norm: float | None = None,
    repeats: int = 1,
    seed: int = 0,
    snapshot: SnapshotMode = "cpu",
    progress: ProgressFn | None = None,
    extend: int = 3,
    band: bool = True,
) -> RangeTestResult:
    """Run an LR range test and restore the model, optimizer, scaler and RNGs afterwards.

    The learning rate rises over ``steps`` optimizer updates from ``start_lr`` to ``end_lr``
    (:func:`lr_sequence`: geometric for ``mode="exp"``, arithmetic for ``"linear"``). The loss
    after each update is recorded raw and smoothed with a bias-corrected exponential moving
    average (as in Adam): ``avg_i = beta * avg_(i-1) + (1 - beta) * loss_i``,
    ``smoothed_i = avg_i / (1 - beta**(i+1))`` with ``beta = smoothing``. The sweep stops early
    when ``smoothed_i > best + (diverge - 1) * |best|`` (``diverge`` times the best smoothed loss
    for positive losses; ``stop_reason="diverged"``) or the loss is NaN/inf (``"nan"``).

    Args:
        model: the model; it is put in train mode for the sweep (``eval`` for validation) and its
            modes are restored afterwards.
        optimizer: an optimizer over (some of) the model's parameters. With several param
            groups, the group with the largest initial LR follows the sweep and the others keep
            their LR ratio to it.
        data: any iterable of batches (list, DataLoader, ...), re-iterated when it has fewer
            than ``steps * accumulation_steps`` batches. Batches are ``(inputs..., target)``
            tuples used as ``loss_fn(model(*inputs), target)``, or anything when ``step_fn``
            is given (dict batches need ``step_fn``). Tensors are moved to the model's device.
        loss_fn: ``loss_fn(output, target) -> scalar tensor``.
        start_lr, end_lr, steps, mode: the LR sequence; ``steps`` counts optimizer updates.
        smoothing: ``beta`` of the moving average, in ``[0, 1)`` (0: no smoothing).
        diverge: stop when the smoothed loss exceeds this multiple of its best value (> 1).
        accumulation_steps: batches per update; the gradient is the mean over them and the
            recorded loss is their mean loss. The LR advances once per update.
        val_data: when given, each step is scored on the mean validation loss over these
            batches (slower, less noisy); the training loss is still recorded.
        metric_fn: ``metric_fn(output, target) -> float``, averaged over ``val_data`` at each
            step (e.g. accuracy; Smith 2015 read the bounds off accuracy). Needs ``val_data``
            with ``(inputs..., target)`` batches and no ``step_fn``.
        step_fn: ``step_fn(model, batch) -> loss`` for models that compute their own loss.
        scaler: a ``torch.amp.GradScaler``: the loss is scaled before ``backward``, the step goes
            through ``scaler.step``/``scaler.update``, and a step the scaler skips (inf/NaN
            gradients) is retried with the next batch at the same LR. 50 skips in a row stop the
            sweep with ``stop_reason="nan"``.
        autocast: run the forward pass under ``torch.autocast`` in this dtype
            (``torch.bfloat16``, or ``torch.float16`` with a ``scaler`` on CUDA), as your
            training does: the sweep then measures the update you train with.
        max_grad_norm: clip the global gradient norm to this before each step, as your
            training does (``None``: no clipping).
        repeats: run the sweep this many times with different data orders (a shuffling
            DataLoader is re-iterated; a list of batches is permuted; other iterables pass a
            32-batch shuffle buffer), restoring the model in between. The result's ``losses``
            are the mean over repeats, up to the length of the shortest one; the spread of the
            repeats gives the suggestion's uncertainty band.
        seed: seed of the private generator that permutes batches for ``repeats > 1``.
        snapshot: keep the restore copy on the ``"cpu"`` or on ``"disk"`` (a temporary file).
        progress: ``progress(done, total, lr, loss)`` after every update.
        extend: when the curve shows no clear descent (the model learns too slowly for the
            sweep), run the test once more, from the same state, with ``extend`` times the
            steps (so it costs at most ``1 + extend`` times ``steps``);
            ``result.extended_from`` then holds the first sweep's length. 1 turns this off.
        band: estimate the suggestion's uncertainty band (``suggestion_low``,
            ``suggestion_high``); with one repeat it is a bootstrap of the rule over the curve,
            a few milliseconds, which :func:`~lrkit.finder.search.tune_lr` does without.

    Returns:
        A :class:`RangeTestResult` with the curves, ``stop_reason`` and the default suggestion.
        ``KeyboardInterrupt`` returns the partial result with ``stop_reason="interrupted"``.

    Under ``torchrun`` (an initialized ``torch.distributed`` process group of several
    processes), every rank calls ``range_test`` with its own part of the data and the model
    wrapped in ``DistributedDataParallel``. The loss of each step is averaged over the ranks
    (weighted by batch size) before smoothing, and validation pools every rank's batches, so
    every rank records the same curve, stops at the same step and returns the same result; each
    rank restores its own state. The ranks first compare their arguments: any difference, or a
    bad argument on one rank, raises ``ValueError`` on every rank before any step.

    Raises:
        ValueError: bad arguments, empty data, unusable batches or a non-scalar loss, before any
            state is changed (a non-scalar loss is found at step 1, then everything is restored
            first); under ``torch.distributed``, arguments that differ between ranks or a model
            not wrapped in ``DistributedDataParallel``. Exceptions raised by the caller's code
            propagate after the restore; the partial result is attached to them as
            ``range_test_result`` (with ``stop_reason="error"``).
    """
    session = Session(
        model, optimizer, loss_fn, step_fn, accumulation_steps, scaler, autocast,
        max_grad_norm, val_data, metric_fn,
    )  # fmt: skip
    rng = RngState.capture(data, val_data)
    fingerprint = {
        "start_lr": start_lr, "end_lr": end_lr, "steps": steps, "mode": mode,
        "smoothing": smoothing, "diverge": diverge, "repeats": repeats, "seed": seed,
        "extend": extend, **session.fingerprint(),
    }  # fmt: skip
    try:
        with distributed.agreement("range_test", fingerprint):
            _check_args(start_lr, end_lr, steps, mode, smoothing, diverge, repeats, snapshot)
            positive_int("extend", extend)
            session.check("range_test")
            first_iter = peek_checked(data, val_data, has_step_fn=step_fn is not None)
    except BaseException:
        rng.restore()
        raise
    snap = session.snapshot(snapshot, rng)
    engine = session.engine()
    try:
        return sweep(
            engine, snap, data, first_iter, steps, start_lr=start_lr, end_lr=end_lr, mode=mode,
            smoothing=smoothing, diverge=diverge, val_data=val_data, metric_fn=metric_fn,
            repeats=repeats, seed=seed, progress=progress, extend=extend, band=band,
        )  # fmt: skip
    finally:
        engine.close()
        snap.restore()
        snap.close()


class Restart(Protocol):
    """How a sweep puts the state back between its runs: :meth:`restore_training` (model,
    optimizer and scaler) between repeats, :meth:`restore` (the RNGs too) before a longer
    second sweep. A :class:`~lrkit.engine.TrainingSnapshot` is one."""

    def restore_training(self) -> None:
        """Put the model, optimizer and scaler back."""

    def restore(self) -> None:
        """Put the model, optimizer, scaler and the RNGs back."""


def sweep(
    engine: Engine,
    start: Restart,
    data: Iterable[Any],
    first: Iterator[Any] | None,
    steps: int,
    *,
    start_lr: float,
    end_lr: float,
    mode: Literal["exp", "linear"] = "exp",
    smoothing: float = 0.98,
    diverge: float = 4.0,
    val_data: Iterable[Any] | None = None,
    metric_fn: MetricFn | None = None,
    repeats: int = 1,
    seed: int = 0,
    progress: ProgressFn | None = None,
    extend: int = 3,
    band: bool = True,
) -> RangeTestResult:
    """The sweeps of a range test on ``engine``, its arguments already checked: ``repeats``
    runs over ``steps`` updates (``start`` restores the state between them), and one more over
    ``extend`` times the steps when the first finds no clear descent. ``first`` is the
    iterator :func:`peek_checked` left (its first batch still to come). The caller restores
    the state afterwards; :func:`range_test` is this with the checks, the snapshot and the
    restore, and :func:`~lrkit.finder.tune_lr` calls it on its own session."""
    test = _Test(engine, start, data, first, val_data, metric_fn, repeats, seed, progress, band)
    settings = (start_lr, end_lr, mode, smoothing, diverge)
    result = test.run(steps, *settings)
    if extend > 1 and _no_clear_descent(result):
        logger.info("no clear descent in %d steps; sweeping again over %d", steps, extend * steps)
        start.restore()
        result = test.run(extend * steps, *settings)
        result.extended_from = steps
    return result


def _no_clear_descent(result: RangeTestResult) -> bool:
    return (
        result.suggestion is None
        and result.suggestion_reason.startswith("no clear descent")
        and result.stop_reason in ("completed", "diverged", "nan")
    )


class _Test:
    """The repeats of one range test, over one engine and snapshot."""

    def __init__(
        self,
        engine: Engine,
        snap: Restart,
        data: Iterable[Any],
        first_iter: Iterator[Any] | None,
        val_data: Iterable[Any] | None,
        metric_fn: MetricFn | None,
        repeats: int,
        seed: int,
        progress: ProgressFn | None,
        band: bool = True,
    ) -> None:
        self.engine, self.snap, self.data, self.first_iter = engine, snap, data, first_iter
        self.val_data, self.metric_fn, self.repeats, self.seed = val_data, metric_fn, repeats, seed
        self.progress, self.band = progress, band

    def run(
        self,
        steps: int,
        start_lr: float,
        end_lr: float,
        mode: Literal["exp", "linear"],
        smoothing: float,
        diverge: float,
    ) -> RangeTestResult:
        """Sweep ``repeats`` times over ``steps`` updates and assemble the result; an exception
        from the caller's code carries the partial result as ``range_test_result``."""
        schedule = sweep_schedule(start_lr, end_lr, steps, mode)
        args = (schedule, start_lr, end_lr, mode, smoothing, diverge)
        sweeps: list[_Sweep] = []
        try:
            for r in range(self.repeats):
                if r > 0:
                    self.snap.restore_training()
                first = self.first_iter if (r == 0 or isinstance(self.data, Iterator)) else None
                self.first_iter = None if not isinstance(self.data, Iterator) else self.first_iter
                stream = BatchStream(self.data, first=first, reorder=r > 0, seed=self.seed + r)
                sweep = _Sweep(
                    self.engine,
                    schedule,
                    steps,
                    smoothing=smoothing,
                    diverge=diverge,
                    val_data=self.val_data,
                    metric_fn=self.metric_fn,
                    progress=self.progress,
                    progress_offset=r * steps,
                    progress_total=steps * self.repeats,
                )
                sweeps.append(sweep)
                sweep.run(stream)
                logger.info(
                    "range test repeat %d/%d: %d steps, stopped: %s, %d skipped by the scaler",
                    r + 1,
                    self.repeats,
                    len(sweep.scored),
                    sweep.stop_reason,
                    sweep.skipped_steps,
                )
                if sweep.stop_reason == "interrupted":
                    break
        except BaseException as err:
            _attach_partial(err, sweeps, *args)
            raise
        return _assemble(sweeps, *args, band=self.band)


def peek_checked(
    data: Iterable[Any], val_data: Iterable[Any] | None, *, has_step_fn: bool
) -> Iterator[Any]:
    """Check the first batch of ``data`` (and that ``val_data`` has one, usable); an iterator
    over ``data`` that still yields that first batch."""
    first, first_iter = peek(data)
    validate_batch(first, has_step_fn=has_step_fn, has_loss_fn=True, what="data")
    if val_data is not None:
        val_first = next(iter(val_data), _EMPTY)
        if val_first is _EMPTY:
            raise ValueError(
                "val_data is empty: it yielded no batches; pass the batches to score each step "
                "on (a non-empty list or DataLoader), or leave val_data out to score the "
                "training loss"
            )
        validate_batch(val_first, has_step_fn=has_step_fn, has_loss_fn=True, what="val_data")
    return first_iter


def _attach_partial(err: BaseException, sweeps: Sequence[_Sweep], *args: Any) -> None:
    """Attach the partial result to an exception raised by the caller's code."""
    if not sweeps or not isinstance(err, Exception):
        return
    sweeps[-1].stop_reason = "error"
    try:
        setattr(err, "range_test_result", _assemble(sweeps, *args))  # noqa: B010
    except Exception:  # the partial result is a courtesy; never mask the error
        logger.debug("could not assemble a partial range-test result", exc_info=True)


def _assemble(
    sweeps: Sequence[_Sweep],
    schedule: Schedule,
    start_lr: float,
    end_lr: float,
    mode: str,
    smoothing: float,
    diverge: float,
    *,
    band: bool = True,
) -> RangeTestResult:
    done = [s for s in sweeps if s.scored]
    if not done:
        done = list(sweeps[:1])
    n = min(len(s.scored) for s in done)
    shortest = min(done, key=lambda s: len(s.scored))
    stop: StopReason = shortest.stop_reason
    if any(s.stop_reason == "interrupted" for s in sweeps):
        stop = "interrupted"
    if any(s.stop_reason == "error" for s in sweeps):
        stop = "error"

    def mean_of(attr: str) -> np.ndarray:
        rows = [np.asarray(getattr(s, attr)[:n], dtype=np.float64) for s in done]
        return np.mean(rows, axis=0) if rows else np.empty(0)

    validating = bool(done and done[0].val_losses)
    return RangeTestResult.build(
        lrs=np.asarray(schedule.table(0, n), dtype=np.float64),
        losses=mean_of("train_losses"),
        val_losses=mean_of("val_losses") if validating else None,
        metrics=mean_of("metrics") if validating and done[0].metric_fn is not None else None,
        repeat_losses=[np.asarray(s.scored[:n], dtype=np.float64) for s in done],
        repeat_stop_reasons=[s.stop_reason for s in done],
        stop_reason=stop,
        smoothing=smoothing,
        diverge=diverge,
        start_lr=start_lr,
        end_lr=end_lr,
        mode=mode,
        band=band,
    )
