"""The LR range test on a compiled Keras model."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import keras
import numpy as np

from lrkit.engine import BatchStream, RngState, peek
from lrkit.finder._sweep_math import LossWatch, check_sweep_args
from lrkit.finder.range_test import ProgressFn, lr_sequence
from lrkit.finder.result import RangeTestResult, StopReason
from lrkit.keras._callbacks import read_learning_rate, set_learning_rate

__all__ = ["range_test"]

logger = logging.getLogger(__name__)

_WHO = "lrkit.keras.range_test"


def _array_batches(
    x: Any, y: Any, sample_weight: Any, batch_size: int, shuffle: bool, seed: int
) -> Iterator[tuple[Any, Any, Any]]:
    """Endless ``(x, y, sample_weight)`` batches of arrays (or nested structures of arrays),
    in a new order each pass when ``shuffle`` (a private generator; global RNGs untouched)."""
    n = len(keras.tree.flatten(x)[0])
    if n == 0:
        raise ValueError("x is empty")
    for name, part in (("y", y), ("sample_weight", sample_weight)):
        for a in keras.tree.flatten(part) if part is not None else []:
            if len(a) != n:
                raise ValueError(f"x has {n} samples but {name} has {len(a)}")
    rng = np.random.default_rng(seed)

    def take(part: Any, idx: np.ndarray) -> Any:
        return None if part is None else keras.tree.map_structure(lambda a: a[idx], part)

    while True:
        order = rng.permutation(n) if shuffle else np.arange(n)
        for lo in range(0, n, batch_size):
            idx = order[lo : lo + batch_size]
            yield take(x, idx), take(y, idx), take(sample_weight, idx)


def _dataset_batches(data: Iterable[Any]) -> Iterator[tuple[Any, Any, Any]]:
    first, first_iter = peek(data)
    keras.utils.unpack_x_y_sample_weight(first)
    for batch in BatchStream(data, first=first_iter):
        yield keras.utils.unpack_x_y_sample_weight(batch)


class _Snapshot:
    """Copies of the values of Keras variables, put back bit for bit by :meth:`restore`."""

    def __init__(self, variables: Iterable[Any]) -> None:
        seen: set[int] = set()
        self.saved: list[tuple[Any, np.ndarray]] = []
        for v in variables:
            if id(v) in seen:
                continue
            seen.add(id(v))
            self.saved.append((v, np.array(keras.ops.convert_to_numpy(v.value), copy=True)))

    def restore(self) -> None:
        for v, value in self.saved:
            v.assign(value)


def range_test(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    sample_weight: Any = None,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int = 0,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    mode: Literal["exp", "linear"] = "exp",
    smoothing: float = 0.98,
    diverge: float = 4.0,
    progress: ProgressFn | None = None,
) -> RangeTestResult:
    """Run the LR range test (Smith 2015, arXiv 1506.01186) on a compiled Keras model and
    restore the model and the optimizer afterwards.

    The sweep is :func:`lrkit.range_test`'s: the learning rate takes the values of
    :func:`lrkit.finder.lr_sequence` (``start_lr → end_lr`` over ``steps`` batches, geometric
    for ``mode="exp"``, arithmetic for ``"linear"``), one ``model.train_on_batch`` per value,
    with the model's own loss and optimizer; the loss of every batch is recorded and smoothed
    with the bias-corrected moving average of ``smoothing``, and the sweep stops once the
    smoothed loss exceeds ``diverge`` times its best (``stop_reason="diverged"``) or the loss is
    not finite (``"nan"``). The result is a :class:`lrkit.RangeTestResult` built from these
    curves, so its suggestion, ``bounds(...)``, ``one_cycle(...)`` and ``plot(...)`` are the
    ones :func:`lrkit.range_test` would give.

    Afterwards every variable of the model (weights, normalization statistics, dropout seed
    states) and of the optimizer (iterations, the learning rate, slot variables), the model's
    metric variables and the global Python, NumPy and torch random generators hold exactly their
    values from before, whether the sweep completes, diverges, is interrupted (Ctrl-C returns
    the partial result with ``stop_reason="interrupted"``) or raises (the partial result is then
    attached to the exception as ``range_test_result``). An optimizer that was not built yet is
    built first, with the zero slots it would start training with.

    Args:
        model: a built Keras model compiled with a float learning rate (not a Keras
            ``LearningRateSchedule``).
        x, y: input and target arrays (or nested structures of arrays, as ``model.fit``
            takes), batched by ``batch_size``; or, with ``y=None``, a dataset: any iterable of
            ``(x, y)`` or ``(x, y, sample_weight)`` batches (a list of batches, a
            ``keras.utils.PyDataset``, a ``tf.data.Dataset``, a torch ``DataLoader``),
            re-iterated when it has fewer than ``steps`` batches.
        sample_weight: per-sample weights for array data.
        batch_size: samples per batch for array data.
        shuffle, seed: visit array data in a new random order each pass, drawn from a private
            generator seeded with ``seed``.
        start_lr, end_lr, steps, mode, smoothing, diverge: the sweep, as in
            :func:`lrkit.range_test`.
        progress: ``progress(done, steps, lr, loss)`` after every batch.

    Raises:
        ValueError: bad arguments, an uncompiled or unbuilt model, or empty data, before any
            state changes.
        TypeError: an optimizer whose learning rate cannot be set.
    """
    check_sweep_args(start_lr, end_lr, steps, mode, smoothing, diverge)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError(f"{_WHO} needs a compiled model: call model.compile(optimizer, loss)")
    if not model.built:
        raise ValueError(
            f"{_WHO} restores the model's weights afterwards, so they must exist before it "
            "starts: build the model first (give it a keras.Input, or call "
            "model.build(input_shape))"
        )
    set_learning_rate(optimizer, read_learning_rate(optimizer), _WHO)
    if y is None:
        if isinstance(x, np.ndarray) or hasattr(x, "shape"):
            raise ValueError(
                "x is an array but y is None; pass the targets as y, or a dataset of (x, y) "
                "batches as x"
            )
        batches = _dataset_batches(x)
    else:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        batches = _array_batches(x, y, sample_weight, batch_size, shuffle, seed)

    rng = RngState.capture(x)
    try:
        first = next(batches)
    except BaseException:
        rng.restore()
        raise
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    snapshot = _Snapshot([*model.variables, *optimizer.variables, *model.metrics_variables])
    lrs = lr_sequence(start_lr, end_lr, steps, mode)
    losses: list[float] = []
    watch = LossWatch(smoothing, diverge)
    stop: StopReason = "completed"
    batch = first
    try:
        for i, lr in enumerate(lrs):
            if i > 0:
                batch = next(batches)
            set_learning_rate(optimizer, float(lr), _WHO)
            logs = model.train_on_batch(*batch, return_dict=True)
            loss = float(logs["loss"])
            losses.append(loss)
            reason = watch.add(loss)
            if reason != "nan" and progress is not None:
                progress(i + 1, steps, float(lr), loss)
            if reason is not None:
                stop = reason
                break
    except KeyboardInterrupt:
        stop = "interrupted"
    except BaseException as err:
        snapshot.restore()
        rng.restore()
        if losses and isinstance(err, Exception):
            try:
                partial = _result(lrs, losses, "error", start_lr, end_lr, mode, smoothing, diverge)
                setattr(err, "range_test_result", partial)  # noqa: B010
            except Exception:  # the partial result is a courtesy; never mask the error
                logger.debug("could not assemble a partial range-test result", exc_info=True)
        raise
    snapshot.restore()
    rng.restore()
    logger.info("keras range test: %d steps, stopped: %s", len(losses), stop)
    return _result(lrs, losses, stop, start_lr, end_lr, mode, smoothing, diverge)


def _result(
    lrs: np.ndarray,
    losses: list[float],
    stop: StopReason,
    start_lr: float,
    end_lr: float,
    mode: str,
    smoothing: float,
    diverge: float,
) -> RangeTestResult:
    return RangeTestResult.build(
        lrs=lrs[: len(losses)].copy(),
        losses=np.asarray(losses, dtype=np.float64),
        stop_reason=stop,
        smoothing=smoothing,
        diverge=diverge,
        start_lr=start_lr,
        end_lr=end_lr,
        mode=mode,
    )
