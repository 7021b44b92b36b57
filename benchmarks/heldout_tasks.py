"""Tasks outside lrkit's six built-in ones, for judging LR-finder rules on models they were not
designed on (`benchmarks/suggestion_heldout.py`).

They vary what changes where the best one-cycle peak sits: depth, normalization (none, BatchNorm,
LayerNorm), activation (ReLU, tanh), recurrent layers, SGD vs AdamW, classification vs
regression, batch size and data set size. All data is offline: mnist1d's generator and
scikit-learn's bundled sets and generators. Each is named ``"heldout_tasks:<function>"`` for
:func:`lrkit.tasks.get_task` (with this directory on ``sys.path``).

``DESIGN`` and ``TEST`` split them in two, fixed before any of them was trained: a rule may be
chosen by looking at the design half; the test half judges it.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

import numpy as np
from torch import Tensor, nn

from lrkit.tasks import Task, TaskData, accuracy, r2_score
from lrkit.tasks._base import cross_entropy
from lrkit.tasks._base import mse as _mse
from lrkit.tasks.data import mnist1d_data as _mnist1d_data
from lrkit.tasks.data import table_data as _table_data

__all__ = ["DESIGN", "TEST"]


# -- data --------------------------------------------------------------------------------------


@functools.cache
def _digits_flat() -> TaskData:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return _table_data(x, y, classify=True)


@functools.cache
def _moons() -> TaskData:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=3000, noise=0.3, random_state=1)
    return _table_data(x, y, classify=True)


@functools.cache
def _circles() -> TaskData:
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=3000, noise=0.15, factor=0.5, random_state=2)
    return _table_data(x, y, classify=True)


@functools.cache
def _classification() -> TaskData:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=5000,
        n_features=20,
        n_informative=12,
        n_redundant=4,
        n_classes=6,
        n_clusters_per_class=2,
        class_sep=1.0,
        random_state=3,
    )
    return _table_data(x, y, classify=True)


@functools.cache
def _hastie() -> TaskData:
    from sklearn.datasets import make_hastie_10_2

    x, y = make_hastie_10_2(n_samples=4000, random_state=4)
    return _table_data(x, (y > 0).astype(np.int64), classify=True)


@functools.cache
def _diabetes() -> TaskData:
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    return _table_data(x, y, classify=False)


@functools.cache
def _friedman3() -> TaskData:
    from sklearn.datasets import make_friedman3

    x, y = make_friedman3(n_samples=3000, noise=0.05, random_state=5)
    return _table_data(x, y, classify=False)


@functools.cache
def _regression() -> TaskData:
    from sklearn.datasets import make_regression

    x, y = make_regression(
        n_samples=3000, n_features=30, n_informative=15, noise=10.0, random_state=6
    )
    return _table_data(x, np.tanh(y / 100.0) * 100.0, classify=False)


# -- models ------------------------------------------------------------------------------------


def _mlp(sizes: list[int], act: type[nn.Module] = nn.ReLU, norm: str | None = None) -> nn.Module:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes[:-1]):
        layers.append(nn.Linear(a, b))
        if norm == "bn":
            layers.append(nn.BatchNorm1d(b))
        elif norm == "ln":
            layers.append(nn.LayerNorm(b))
        layers.append(act())
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class _ResidualMLP(nn.Module):
    def __init__(self, n_in: int, width: int, depth: int, n_out: int) -> None:
        super().__init__()
        self.inp = nn.Linear(n_in, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width)
            )
            for _ in range(depth)
        )
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, n_out))

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


class _GRU(nn.Module):
    def __init__(self, hidden: int = 48) -> None:
        super().__init__()
        self.gru = nn.GRU(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x: Tensor) -> Tensor:
        _, h = self.gru(x.unsqueeze(-1))
        return self.head(h[-1])


def _cnn_plain() -> nn.Module:
    c = 32
    return nn.Sequential(
        nn.Unflatten(1, (1, 40)),
        nn.Conv1d(1, c, 5, padding=2),
        nn.ReLU(),
        nn.Conv1d(c, c, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(c, c, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(c * 10, 10),
    )


# -- tasks -------------------------------------------------------------------------------------


def _task(
    name: str,
    model: Callable[[], nn.Module],
    data: Callable[[], TaskData],
    *,
    classify: bool,
    batch_size: int,
    epochs: int,
    optimizer: str,
) -> Task:
    return Task(
        name=name,
        description=name,
        kind="classification" if classify else "regression",
        build_model=model,
        build_data=data,
        loss_fn=cross_entropy if classify else _mse,
        metric_name="accuracy" if classify else "r2",
        metric_fn=accuracy if classify else r2_score,
        batch_size=batch_size,
        epochs=epochs,
        optimizer=optimizer,
        default_lr=0.1 if optimizer == "sgd" else 1e-3,
    )


def digits_mlp() -> Task:
    return _task(
        "digits-mlp",
        functools.partial(_mlp, [64, 128, 128, 10]),
        _digits_flat,
        classify=True,
        batch_size=64,
        epochs=8,
        optimizer="sgd",
    )


def mnist1d_deep_mlp() -> Task:
    return _task(
        "mnist1d-deep-mlp",
        functools.partial(_mlp, [40, 128, 128, 128, 128, 10]),
        _mnist1d_data,
        classify=True,
        batch_size=64,
        epochs=15,
        optimizer="sgd",
    )


def mnist1d_cnn_plain() -> Task:
    return _task(
        "mnist1d-cnn-plain",
        _cnn_plain,
        _mnist1d_data,
        classify=True,
        batch_size=128,
        epochs=15,
        optimizer="sgd",
    )


def mnist1d_mlp_adamw() -> Task:
    return _task(
        "mnist1d-mlp-adamw",
        functools.partial(_mlp, [40, 100, 100, 10]),
        _mnist1d_data,
        classify=True,
        batch_size=128,
        epochs=20,
        optimizer="adamw",
    )


def mnist1d_resmlp() -> Task:
    return _task(
        "mnist1d-resmlp",
        functools.partial(_ResidualMLP, 40, 128, 3, 10),
        _mnist1d_data,
        classify=True,
        batch_size=128,
        epochs=15,
        optimizer="adamw",
    )


def mnist1d_bn_mlp() -> Task:
    return _task(
        "mnist1d-bn-mlp",
        functools.partial(_mlp, [40, 128, 128, 10], nn.ReLU, "bn"),
        _mnist1d_data,
        classify=True,
        batch_size=128,
        epochs=15,
        optimizer="sgd",
    )


def mnist1d_gru() -> Task:
    return _task(
        "mnist1d-gru",
        _GRU,
        _mnist1d_data,
        classify=True,
        batch_size=128,
        epochs=10,
        optimizer="adamw",
    )


def moons_mlp() -> Task:
    return _task(
        "moons-mlp",
        functools.partial(_mlp, [2, 64, 64, 2]),
        _moons,
        classify=True,
        batch_size=32,
        epochs=6,
        optimizer="sgd",
    )


def circles_tanh() -> Task:
    return _task(
        "circles-tanh",
        functools.partial(_mlp, [2, 64, 64, 2], nn.Tanh),
        _circles,
        classify=True,
        batch_size=32,
        epochs=6,
        optimizer="sgd",
    )


def classification_mlp() -> Task:
    return _task(
        "classification-mlp",
        functools.partial(_mlp, [20, 128, 128, 6]),
        _classification,
        classify=True,
        batch_size=64,
        epochs=10,
        optimizer="sgd",
    )


def hastie_mlp() -> Task:
    return _task(
        "hastie-mlp",
        functools.partial(_mlp, [10, 64, 64, 2]),
        _hastie,
        classify=True,
        batch_size=64,
        epochs=10,
        optimizer="adamw",
    )


def diabetes_mlp() -> Task:
    return _task(
        "diabetes-mlp",
        functools.partial(_mlp, [10, 64, 64, 1]),
        _diabetes,
        classify=False,
        batch_size=32,
        epochs=30,
        optimizer="adamw",
    )


def friedman3_sgd() -> Task:
    return _task(
        "friedman3-mlp",
        functools.partial(_mlp, [4, 64, 64, 1]),
        _friedman3,
        classify=False,
        batch_size=64,
        epochs=15,
        optimizer="sgd",
    )


def regression_tanh() -> Task:
    return _task(
        "regression-tanh",
        functools.partial(_mlp, [30, 128, 128, 1], nn.Tanh),
        _regression,
        classify=False,
        batch_size=64,
        epochs=10,
        optimizer="sgd",
    )


DESIGN = [
    "heldout_tasks:digits_mlp",
    "heldout_tasks:mnist1d_cnn_plain",
    "heldout_tasks:mnist1d_resmlp",
    "heldout_tasks:moons_mlp",
    "heldout_tasks:hastie_mlp",
    "heldout_tasks:friedman3_sgd",
    "heldout_tasks:mnist1d_gru",
]
TEST = [
    "heldout_tasks:mnist1d_deep_mlp",
    "heldout_tasks:mnist1d_mlp_adamw",
    "heldout_tasks:mnist1d_bn_mlp",
    "heldout_tasks:circles_tanh",
    "heldout_tasks:classification_mlp",
    "heldout_tasks:diabetes_mlp",
    "heldout_tasks:regression_tanh",
]
