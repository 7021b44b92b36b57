"""The built-in tasks, one row each: data, model, default training settings and target.

A row's kind chooses the loss and the metric (cross-entropy and accuracy for classification, MSE
and r2 for regression; see :data:`lrkit.tasks._base.SCORING`). Units: ``batch_size`` in samples,
``epochs`` in passes over the training set, ``default_lr`` in the optimizer's own units,
``target`` in units of the metric. ``needs`` lists the modules (all from ``lrkit[tasks]``) that
build the data; :func:`builtin_task` checks they are installed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

from torch import nn

from lrkit._extras import require_installed
from lrkit.tasks import data, models
from lrkit.tasks._base import SCORING, Task, TaskData, TaskKind

__all__ = ["BUILTIN_TASKS", "BuiltinTask", "builtin_task"]


class BuiltinTask(NamedTuple):
    """One row of :data:`BUILTIN_TASKS`."""

    description: str
    kind: TaskKind
    data: Callable[[], TaskData]
    model: Callable[[], nn.Module]
    optimizer: str
    default_lr: float
    epochs: int
    batch_size: int
    target: float
    needs: tuple[str, ...]


_MNIST1D = ("mnist1d",)
_SKLEARN = ("sklearn",)

BUILTIN_TASKS: dict[str, BuiltinTask] = {
    "mnist1d-mlp": BuiltinTask(
        description="MNIST-1D (4000/1000, length 40, 10 classes), MLP 40-100-100-10",
        kind="classification",
        data=data.mnist1d_data,
        model=functools.partial(models.mlp, 40, 100, 10),
        optimizer="sgd",
        default_lr=0.1,
        epochs=30,
        batch_size=128,
        target=0.58,
        needs=_MNIST1D,
    ),
    "mnist1d-cnn": BuiltinTask(
        description="MNIST-1D (4000/1000, length 40, 10 classes), 4-layer 1-D CNN with BatchNorm",
        kind="classification",
        data=data.mnist1d_data,
        model=models.mnist1d_cnn,
        optimizer="sgd",
        default_lr=0.1,
        epochs=15,
        batch_size=128,
        target=0.87,
        needs=_MNIST1D,
    ),
    "mnist1d-cnn-paper": BuiltinTask(
        description="MNIST-1D (4000/1000, length 40, 10 classes), the MNIST-1D paper's CNN: "
        "3 Conv1d of 25 channels, ReLU, no normalization",
        kind="classification",
        data=data.mnist1d_data,
        model=models.mnist1d_cnn_plain,
        optimizer="sgd",
        default_lr=0.1,
        epochs=40,
        batch_size=100,
        target=0.9,
        needs=_MNIST1D,
    ),
    "mnist1d-0to4-paper": BuiltinTask(
        description="MNIST-1D digits 0-4 only (1993/507), the MNIST-1D paper's CNN: the source "
        "the transfer recipe pretrains its backbone on",
        kind="classification",
        data=functools.partial(data.mnist1d_digits_data, 0, 4),
        model=models.mnist1d_cnn_plain,
        optimizer="sgd",
        default_lr=0.1,
        epochs=40,
        batch_size=100,
        target=0.88,
        needs=_MNIST1D,
    ),
    "mnist1d-5to9-paper": BuiltinTask(
        description="MNIST-1D digits 5-9 only (2007/493, labels 5-9), the MNIST-1D paper's CNN: "
        "the transfer recipe's target",
        kind="classification",
        data=functools.partial(data.mnist1d_digits_data, 5, 9),
        model=models.mnist1d_cnn_plain,
        optimizer="sgd",
        default_lr=0.1,
        epochs=20,
        batch_size=100,
        target=0.85,
        needs=_MNIST1D,
    ),
    "digits-cnn": BuiltinTask(
        description="scikit-learn digits (1437/360, 8x8, 10 classes), 3-layer 2-D CNN",
        kind="classification",
        data=data.digits_data,
        model=models.digits_cnn,
        optimizer="sgd",
        default_lr=0.1,
        epochs=8,
        batch_size=64,
        target=0.9,
        needs=_SKLEARN,
    ),
    "friedman-mlp": BuiltinTask(
        description="Friedman #1 regression (2000/500, 10 features), MLP 10-100-100-1, metric r2",
        kind="regression",
        data=data.friedman_data,
        model=functools.partial(models.mlp, 10, 100, 1),
        optimizer="adamw",
        default_lr=1e-3,
        epochs=20,
        batch_size=64,
        target=0.85,
        needs=_SKLEARN,
    ),
    "breast-cancer-mlp": BuiltinTask(
        description="scikit-learn breast cancer (455/114, 30 features, 2 classes), MLP 30-32-32-2",
        kind="classification",
        data=data.breast_cancer_data,
        model=functools.partial(models.mlp, 30, 32, 2),
        optimizer="sgd",
        default_lr=0.1,
        epochs=10,
        batch_size=32,
        target=0.86,
        needs=_SKLEARN,
    ),
    "wine-mlp": BuiltinTask(
        description="scikit-learn wine (142/36, 13 features, 3 classes), MLP 13-32-32-3, AdamW",
        kind="classification",
        data=data.wine_data,
        model=functools.partial(models.mlp, 13, 32, 3),
        optimizer="adamw",
        default_lr=1e-3,
        epochs=20,
        batch_size=32,
        target=0.9,
        needs=_SKLEARN,
    ),
}
"""The built-in tasks by name."""


def builtin_task(name: str) -> Task:
    """The :class:`~lrkit.tasks.Task` of row ``name`` of :data:`BUILTIN_TASKS`.

    Raises:
        ImportError: a module that builds its data is not installed (``lrkit[tasks]``).
    """
    row = BUILTIN_TASKS[name]
    for module in row.needs:
        require_installed(module, "tasks", f"task {name!r}")
    metric_name, metric_fn, loss_fn = SCORING[row.kind]
    return Task(
        name=name,
        description=row.description,
        kind=row.kind,
        build_model=row.model,
        build_data=row.data,
        loss_fn=loss_fn,
        metric_name=metric_name,
        metric_fn=metric_fn,
        batch_size=row.batch_size,
        epochs=row.epochs,
        optimizer=row.optimizer,
        default_lr=row.default_lr,
        target=row.target,
    )
