"""The :class:`Task` type, its data tuple, and the losses and metrics the built-in tasks use."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
)

from lrkit._optimizers import default_lr
from lrkit.engine import LossFn, MetricFn

__all__ = [
    "SCORING",
    "VAL_BATCH_SIZE",
    "LossFn",
    "MetricFn",
    "Task",
    "TaskData",
    "TaskKind",
    "accuracy",
    "cross_entropy",
    "mse",
    "r2_score",
]

TaskKind = Literal["classification", "regression"]

VAL_BATCH_SIZE = 1000
"""Batch size of the validation loader (evaluation only; it does not change results)."""


class TaskData(NamedTuple):
    """Whole-dataset tensors of a task: inputs and targets for training and validation."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor


# -- metrics and losses -----------------------------------------------------------------------


def accuracy(output: Tensor, target: Tensor) -> float:
    """Fraction of correct predictions (0..1).

    ``output`` holds class scores of shape ``(N, C)``, or one logit per sample (``(N,)`` or
    ``(N, 1)``) for a binary task, where a logit above 0 means class 1.
    """
    if output.ndim == 2 and output.shape[1] > 1:
        pred = output.argmax(dim=1)
    else:
        pred = (output.reshape(-1) > 0).long()
    return float((pred == target.reshape(-1)).float().mean().item())


def r2_score(output: Tensor, target: Tensor) -> float:
    """Coefficient of determination ``1 - SSE/SST`` over all elements; higher is better.

    1.0 is a perfect fit, 0.0 is as good as predicting the mean of ``target``, and it is negative
    for anything worse. ``output`` is reshaped to ``target``'s shape.
    """
    out = output.detach().reshape(target.shape).double()
    tgt = target.detach().double()
    sse = float(((out - tgt) ** 2).sum().item())
    sst = float(((tgt - tgt.mean()) ** 2).sum().item())
    if sst == 0.0:
        return 1.0 if sse == 0.0 else 0.0
    return 1.0 - sse / sst


def mse(output: Tensor, target: Tensor) -> Tensor:
    """Mean squared error, with ``output`` reshaped to ``target``'s shape."""
    return F.mse_loss(output.reshape(target.shape), target)


def cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy of class scores ``(N, C)`` against class indices ``(N,)``."""
    return F.cross_entropy(output, target)


SCORING: dict[TaskKind, tuple[str, MetricFn, LossFn]] = {
    "classification": ("accuracy", accuracy, cross_entropy),
    "regression": ("r2", r2_score, mse),
}
"""Metric name, metric and loss of the built-in tasks by kind; tasks given as a tuple take the
metric from here too."""


# -- the Task object --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Task:
    """A model, its data and how to score it, with default training settings.

    Attributes:
        name: Registry name, e.g. ``"mnist1d-cnn"``.
        description: One line for humans.
        kind: ``"classification"`` or ``"regression"``.
        build_model: Zero-argument callable returning a fresh model. Call :meth:`make_model`
            instead, which seeds it.
        build_data: Zero-argument callable returning :class:`TaskData` (may be cached). Use
            :attr:`data`, :attr:`train_data` or :attr:`val_data`.
        loss_fn: ``loss_fn(output, target) -> scalar tensor``.
        metric_name: Name of the metric, e.g. ``"accuracy"`` or ``"r2"``.
        metric_fn: ``metric_fn(output, target) -> float``, **higher is better**; called on the
            whole validation set at once.
        batch_size: Default batch size (samples).
        epochs: Default training length (passes over the training set).
        optimizer: Default optimizer name for :func:`lrkit.train.fit` (``"sgd"`` means momentum
            0.9).
        default_lr: A sensible learning rate without a finder (0.1 for SGD, 1e-3 for AdamW).
        target: Metric value used for "steps to target" (about 90% of what the task reaches
            when well trained), or ``None`` if unknown.
    """

    name: str
    description: str
    kind: TaskKind
    build_model: Callable[[], nn.Module] = dataclasses.field(repr=False)
    build_data: Callable[[], TaskData] = dataclasses.field(repr=False)
    loss_fn: LossFn = dataclasses.field(repr=False)
    metric_name: str
    metric_fn: MetricFn = dataclasses.field(repr=False)
    batch_size: int
    epochs: int
    optimizer: str
    default_lr: float
    target: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("classification", "regression"):
            raise ValueError(
                f"Task {self.name!r}: kind must be 'classification' or 'regression', "
                f"got {self.kind!r}"
            )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(
                f"Task {self.name!r}: batch_size must be a positive int, got {self.batch_size!r}"
            )
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(
                f"Task {self.name!r}: epochs must be a positive int, got {self.epochs!r}"
            )
        if not (isinstance(self.default_lr, (int, float)) and self.default_lr > 0):
            raise ValueError(
                f"Task {self.name!r}: default_lr must be a positive number, got {self.default_lr!r}"
            )
        if not isinstance(self.optimizer, str) or not self.optimizer:
            raise ValueError(
                f"Task {self.name!r}: optimizer must be an optimizer name such as 'sgd' or "
                f"'adamw', got {self.optimizer!r}"
            )

    # -- model -----------------------------------------------------------------------------
    def make_model(self, seed: int = 0) -> nn.Module:
        """A freshly initialized model; the same ``seed`` gives identical parameters.

        The global torch RNG is left as it was.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.build_model()

    # -- data ------------------------------------------------------------------------------
    @property
    def data(self) -> TaskData:
        """All four tensors (built on first use, then cached)."""
        return self.build_data()

    @property
    def train_data(self) -> tuple[Tensor, Tensor]:
        """Training inputs and targets ``(x, y)``."""
        d = self.build_data()
        return d.x_train, d.y_train

    @property
    def val_data(self) -> tuple[Tensor, Tensor]:
        """Validation inputs and targets ``(x, y)``."""
        d = self.build_data()
        return d.x_val, d.y_val

    def loaders(
        self, batch_size: int | None = None, seed: int = 0
    ) -> tuple[DataLoader[tuple[Tensor, ...]], DataLoader[tuple[Tensor, ...]]]:
        """Training and validation loaders over in-memory tensors.

        The training loader shuffles with its own ``torch.Generator`` (``loader.generator``)
        seeded by ``seed``, so the order of batches is reproducible and independent of the global
        RNG; the last, smaller batch is kept. The validation loader does not shuffle. Both fetch a
        whole batch with one indexing operation (a ``BatchSampler`` as the sampler and
        ``batch_size=None`` on the loader) instead of collating samples one by one.

        Args:
            batch_size: Training batch size; defaults to :attr:`batch_size`.
            seed: Seed of the shuffling generator.
        """
        bs = self._batch_size(batch_size)
        d = self.build_data()
        gen = torch.Generator()
        gen.manual_seed(seed)
        train_set = TensorDataset(d.x_train, d.y_train)
        val_set = TensorDataset(d.x_val, d.y_val)
        train = DataLoader(
            train_set,
            sampler=BatchSampler(RandomSampler(train_set, generator=gen), bs, drop_last=False),
            batch_size=None,
            generator=gen,
        )
        val = DataLoader(
            val_set,
            sampler=BatchSampler(SequentialSampler(val_set), VAL_BATCH_SIZE, drop_last=False),
            batch_size=None,
        )
        return train, val

    def lr_for(self, optimizer: str) -> float:
        """The learning rate to use without a finder: the task's ``default_lr`` for its own
        optimizer, else the optimizer's usual default (:func:`lrkit.train.default_lr`)."""
        name = optimizer.lower()
        if name == self.optimizer.lower():
            return float(self.default_lr)
        return default_lr(name)

    def steps_per_epoch(self, batch_size: int | None = None) -> int:
        """Number of training batches in one epoch (the last, smaller batch counts)."""
        bs = self._batch_size(batch_size)
        return math.ceil(len(self.build_data().x_train) / bs)

    def _batch_size(self, batch_size: int | None) -> int:
        if batch_size is None:
            return self.batch_size
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        return batch_size
