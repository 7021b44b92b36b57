"""The built-in tasks' datasets, as :class:`~lrkit.tasks.TaskData` built offline.

MNIST-1D comes from its local generator ``mnist1d.data.make_dataset`` (never downloaded); the
others from scikit-learn's bundled sets and generators. Both are the ``lrkit[tasks]`` extra and are
imported only when a dataset is built.

Each dataset is built on first use and cached per process; the cached tensors are shared, so
treat them as read-only. Building one leaves Python's ``random`` and NumPy's global RNG states as
they were.
"""

from __future__ import annotations

import functools
import random

import numpy as np
import torch
from torch import Tensor

from lrkit._extras import require
from lrkit.tasks._base import TaskData

__all__ = [
    "breast_cancer_data",
    "digits_data",
    "friedman_data",
    "mnist1d_data",
    "mnist1d_digits_data",
    "table_data",
    "wine_data",
]

_WHAT = "the built-in tasks' data"


class _PreserveGlobalRNG:
    """Restore Python's ``random`` and NumPy's global RNG states on exit."""

    def __enter__(self) -> None:
        self._py = random.getstate()
        self._np = np.random.get_state()

    def __exit__(self, *exc: object) -> None:
        random.setstate(self._py)
        np.random.set_state(self._np)


def _f32(a: np.ndarray) -> Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float32))


def _i64(a: np.ndarray) -> Tensor:
    return torch.tensor(np.asarray(a, dtype=np.int64))


@functools.cache
def mnist1d_data() -> TaskData:
    """MNIST-1D (Greydanus 2020) with the generator's default arguments: 4000 training and 1000
    validation sequences of length 40, 10 classes."""
    mnist1d = require("mnist1d.data", "tasks", _WHAT)
    with _PreserveGlobalRNG():
        ds = mnist1d.make_dataset(mnist1d.get_dataset_args())
    return TaskData(_f32(ds["x"]), _i64(ds["y"]), _f32(ds["x_test"]), _i64(ds["y_test"]))


@functools.cache
def mnist1d_digits_data(first: int, last: int) -> TaskData:
    """:func:`mnist1d_data` restricted to the digits ``first`` to ``last`` (inclusive), in
    training and validation, with their labels unchanged (digits 5-9 keep the labels 5-9), so
    that one model with 10 outputs fits both halves: the source and the target of the
    ``transfer`` recipe."""
    if not 0 <= first <= last <= 9:
        raise ValueError(f"digits must satisfy 0 <= first <= last <= 9, got {first} and {last}")
    d = mnist1d_data()
    train = (d.y_train >= first) & (d.y_train <= last)
    val = (d.y_val >= first) & (d.y_val <= last)
    return TaskData(d.x_train[train], d.y_train[train], d.x_val[val], d.y_val[val])


def _standardize(x_train: np.ndarray, x_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x_train.mean(axis=0)
    sd = x_train.std(axis=0)
    sd = np.where(sd == 0, 1.0, sd)
    return (x_train - mu) / sd, (x_val - mu) / sd


def _split(
    x: np.ndarray, y: np.ndarray, *, stratify: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    model_selection = require("sklearn.model_selection", "tasks", _WHAT)
    parts = model_selection.train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=y if stratify else None
    )
    return parts[0], parts[2], parts[1], parts[3]


@functools.cache
def digits_data() -> TaskData:
    """scikit-learn's digits as ``(N, 1, 8, 8)`` images, standardized with one mean and standard
    deviation over all training pixels, in a stratified 80/20 split."""
    x, y = require("sklearn.datasets", "tasks", _WHAT).load_digits(return_X_y=True)
    xtr, ytr, xva, yva = _split(x, y, stratify=True)
    mu, sd = xtr.mean(), xtr.std()
    return TaskData(
        _f32((xtr - mu) / sd).reshape(-1, 1, 8, 8),
        _i64(ytr),
        _f32((xva - mu) / sd).reshape(-1, 1, 8, 8),
        _i64(yva),
    )


def table_data(x: np.ndarray, y: np.ndarray, *, classify: bool) -> TaskData:
    """A table as :class:`~lrkit.tasks.TaskData`: a fixed 80/20 split (stratified for classes),
    inputs standardized with the training statistics, and for regression the targets too."""
    xtr, ytr, xva, yva = _split(x, y, stratify=classify)
    xtr, xva = _standardize(xtr, xva)
    if classify:
        return TaskData(_f32(xtr), _i64(ytr), _f32(xva), _i64(yva))
    ym, ys = ytr.mean(), ytr.std()
    return TaskData(_f32(xtr), _f32((ytr - ym) / ys), _f32(xva), _f32((yva - ym) / ys))


@functools.cache
def friedman_data() -> TaskData:
    """Regression on ``make_friedman1`` (2500 samples, 10 features, noise 1.0, fixed seed)."""
    datasets = require("sklearn.datasets", "tasks", _WHAT)
    x, y = datasets.make_friedman1(n_samples=2500, n_features=10, noise=1.0, random_state=0)
    return table_data(x, y, classify=False)


def _sklearn_table(loader_name: str) -> TaskData:
    datasets = require("sklearn.datasets", "tasks", _WHAT)
    x, y = getattr(datasets, loader_name)(return_X_y=True)
    return table_data(x, y, classify=True)


@functools.cache
def breast_cancer_data() -> TaskData:
    """scikit-learn's breast-cancer set (569 samples, 30 features, 2 classes)."""
    return _sklearn_table("load_breast_cancer")


@functools.cache
def wine_data() -> TaskData:
    """scikit-learn's wine set (178 samples, 13 features, 3 classes)."""
    return _sklearn_table("load_wine")
