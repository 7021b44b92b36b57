"""Built-in offline tasks: a model, its data and how to score it, in one object.

A :class:`Task` bundles everything needed to train and judge a small model without touching the
network: a model builder (deterministic for a seed), whole-dataset tensors held in memory, a loss,
a metric where **higher is better**, and sensible defaults (batch size, epochs, optimizer, a
no-finder learning rate and a target metric for "steps to target").

Built-in tasks (see :func:`task_names`):

``mnist1d-mlp``
    MNIST-1D (Greydanus 2020): 4000 train / 1000 validation sequences of length 40, 10 classes,
    generated locally with ``mnist1d.data.make_dataset`` (never downloaded). MLP 40-100-100-10;
    the paper reports about 68% test accuracy for an MLP.
``mnist1d-cnn``
    The same data with a small 1-D CNN with BatchNorm (the paper reports 94% for its CNN).
``digits-cnn``
    scikit-learn's bundled digits (1797 8x8 images, 10 classes), standardized, stratified 80/20
    split with a fixed seed; small 2-D CNN with BatchNorm.
``friedman-mlp``
    Regression on ``make_friedman1`` (2500 samples, 10 features, noise 1.0, fixed seed),
    standardized inputs and targets; MLP 10-100-100-1 trained with AdamW by default, MSE loss,
    metric ``r2`` (coefficient of determination, higher is better, 1.0 is perfect).
``breast-cancer-mlp``
    scikit-learn's breast-cancer set (569 samples, 30 features, 2 classes), standardized; MLP.
``wine-mlp``
    scikit-learn's wine set (178 samples, 13 features, 3 classes), standardized; MLP trained with
    AdamW by default.

Units of the defaults: ``batch_size`` in samples, ``epochs`` in passes over the training set,
``default_lr`` in the optimizer's own units (0.1 for SGD with momentum 0.9, 1e-3 for AdamW),
``target`` in units of the task's metric (about 90% of what the task reaches when well trained).

Datasets are built on first use and cached per process; the cached tensors are shared, so treat
them as read-only. Building them leaves Python's ``random`` and NumPy's global RNG states as they
were.

Other tasks can be added with :func:`register_task`, or named as ``"module:function"`` (or
``"path/to/file.py:function"``) in :func:`get_task`; see there for what the function may return.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
import importlib.util
import math
import os
import random
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
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

__all__ = [
    "LossFn",
    "MetricFn",
    "Task",
    "TaskData",
    "TaskKind",
    "accuracy",
    "get_task",
    "r2_score",
    "register_task",
    "task_names",
]

LossFn = Callable[[Tensor, Tensor], Tensor]
"""``loss_fn(output, target) -> scalar tensor`` (mean over the batch)."""

MetricFn = Callable[[Tensor, Tensor], float]
"""``metric_fn(output, target) -> float``; higher is better."""

TaskKind = Literal["classification", "regression"]

VAL_BATCH_SIZE = 1000
"""Batch size of the validation loader (evaluation only; it does not change results)."""


class TaskData(NamedTuple):
    """Whole-dataset tensors of a task: inputs and targets for training and validation."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor


# -- metrics ----------------------------------------------------------------------------------


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


def _mse(output: Tensor, target: Tensor) -> Tensor:
    return F.mse_loss(output.reshape(target.shape), target)


def _cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(output, target)


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


# -- data builders (cached per process) -------------------------------------------------------


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
def _mnist1d_data() -> TaskData:
    import mnist1d.data

    with _PreserveGlobalRNG():
        ds = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    return TaskData(_f32(ds["x"]), _i64(ds["y"]), _f32(ds["x_test"]), _i64(ds["y_test"]))


def _standardize(x_train: np.ndarray, x_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x_train.mean(axis=0)
    sd = x_train.std(axis=0)
    sd = np.where(sd == 0, 1.0, sd)
    return (x_train - mu) / sd, (x_val - mu) / sd


def _split(
    x: np.ndarray, y: np.ndarray, *, stratify: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    parts = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y if stratify else None)
    return parts[0], parts[2], parts[1], parts[3]


@functools.cache
def _digits_data() -> TaskData:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    xtr, ytr, xva, yva = _split(x, y, stratify=True)
    mu, sd = xtr.mean(), xtr.std()
    return TaskData(
        _f32((xtr - mu) / sd).reshape(-1, 1, 8, 8),
        _i64(ytr),
        _f32((xva - mu) / sd).reshape(-1, 1, 8, 8),
        _i64(yva),
    )


def _table_data(x: np.ndarray, y: np.ndarray, *, classify: bool) -> TaskData:
    """A table as :class:`TaskData`: a fixed 80/20 split (stratified for classes), inputs
    standardized with the training statistics, and for regression the targets too."""
    xtr, ytr, xva, yva = _split(x, y, stratify=classify)
    xtr, xva = _standardize(xtr, xva)
    if classify:
        return TaskData(_f32(xtr), _i64(ytr), _f32(xva), _i64(yva))
    ym, ys = ytr.mean(), ytr.std()
    return TaskData(_f32(xtr), _f32((ytr - ym) / ys), _f32(xva), _f32((yva - ym) / ys))


@functools.cache
def _friedman_data() -> TaskData:
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=2500, n_features=10, noise=1.0, random_state=0)
    return _table_data(x, y, classify=False)


def _sklearn_table(loader_name: str) -> TaskData:
    from sklearn import datasets

    x, y = getattr(datasets, loader_name)(return_X_y=True)
    return _table_data(x, y, classify=True)


@functools.cache
def _breast_cancer_data() -> TaskData:
    return _sklearn_table("load_breast_cancer")


@functools.cache
def _wine_data() -> TaskData:
    return _sklearn_table("load_wine")


# -- models -----------------------------------------------------------------------------------


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(n_in, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_out),
    )


def _mnist1d_cnn() -> nn.Module:
    c = 32

    def block(c_in: int, stride: int, kernel: int) -> list[nn.Module]:
        return [
            nn.Conv1d(c_in, c, kernel, stride=stride, padding=kernel // 2),
            nn.BatchNorm1d(c),
            nn.ReLU(),
        ]

    return nn.Sequential(
        nn.Unflatten(1, (1, 40)),  # (N, 40) -> (N, 1, 40)
        *block(1, 1, 5),  # length 40
        *block(c, 2, 3),  # length 20
        *block(c, 2, 3),  # length 10
        *block(c, 1, 3),  # length 10
        nn.Flatten(),
        nn.Linear(c * 10, 10),
    )


def _digits_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),  # 8x8
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 4x4
        nn.Conv2d(32, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


# -- built-in task factories ------------------------------------------------------------------


def _classification(
    name: str,
    description: str,
    build_model: Callable[[], nn.Module],
    build_data: Callable[[], TaskData],
    *,
    batch_size: int,
    epochs: int,
    optimizer: str,
    default_lr: float,
    target: float,
) -> Task:
    return Task(
        name=name,
        description=description,
        kind="classification",
        build_model=build_model,
        build_data=build_data,
        loss_fn=_cross_entropy,
        metric_name="accuracy",
        metric_fn=accuracy,
        batch_size=batch_size,
        epochs=epochs,
        optimizer=optimizer,
        default_lr=default_lr,
        target=target,
    )


def _mnist1d_mlp_task() -> Task:
    return _classification(
        "mnist1d-mlp",
        "MNIST-1D (4000/1000, length 40, 10 classes), MLP 40-100-100-10",
        functools.partial(_mlp, 40, 100, 10),
        build_data=_mnist1d_data,
        batch_size=128,
        epochs=30,
        optimizer="sgd",
        default_lr=0.1,
        target=0.58,
    )


def _mnist1d_cnn_task() -> Task:
    return _classification(
        "mnist1d-cnn",
        "MNIST-1D (4000/1000, length 40, 10 classes), 4-layer 1-D CNN with BatchNorm",
        build_model=_mnist1d_cnn,
        build_data=_mnist1d_data,
        batch_size=128,
        epochs=15,
        optimizer="sgd",
        default_lr=0.1,
        target=0.87,
    )


def _digits_cnn_task() -> Task:
    return _classification(
        "digits-cnn",
        "scikit-learn digits (1437/360, 8x8, 10 classes), 3-layer 2-D CNN",
        build_model=_digits_cnn,
        build_data=_digits_data,
        batch_size=64,
        epochs=8,
        optimizer="sgd",
        default_lr=0.1,
        target=0.9,
    )


def _friedman_mlp_task() -> Task:
    return Task(
        name="friedman-mlp",
        description="Friedman #1 regression (2000/500, 10 features), MLP 10-100-100-1, metric r2",
        kind="regression",
        build_model=functools.partial(_mlp, 10, 100, 1),
        build_data=_friedman_data,
        loss_fn=_mse,
        metric_name="r2",
        metric_fn=r2_score,
        batch_size=64,
        epochs=20,
        optimizer="adamw",
        default_lr=1e-3,
        target=0.85,
    )


def _breast_cancer_mlp_task() -> Task:
    return _classification(
        "breast-cancer-mlp",
        "scikit-learn breast cancer (455/114, 30 features, 2 classes), MLP 30-32-32-2",
        build_model=functools.partial(_mlp, 30, 32, 2),
        build_data=_breast_cancer_data,
        batch_size=32,
        epochs=10,
        optimizer="sgd",
        default_lr=0.1,
        target=0.86,
    )


def _wine_mlp_task() -> Task:
    return _classification(
        "wine-mlp",
        "scikit-learn wine (142/36, 13 features, 3 classes), MLP 13-32-32-3, AdamW",
        build_model=functools.partial(_mlp, 13, 32, 3),
        build_data=_wine_data,
        batch_size=32,
        epochs=20,
        optimizer="adamw",
        default_lr=1e-3,
        target=0.9,
    )


TaskFactory = Callable[[], object]

_REGISTRY: dict[str, TaskFactory] = {
    "mnist1d-mlp": _mnist1d_mlp_task,
    "mnist1d-cnn": _mnist1d_cnn_task,
    "digits-cnn": _digits_cnn_task,
    "friedman-mlp": _friedman_mlp_task,
    "breast-cancer-mlp": _breast_cancer_mlp_task,
    "wine-mlp": _wine_mlp_task,
}


# -- registry ---------------------------------------------------------------------------------


def task_names() -> list[str]:
    """Names of the registered tasks, sorted."""
    return sorted(_REGISTRY)


def register_task(name: str, factory: TaskFactory, *, overwrite: bool = False) -> None:
    """Register ``factory`` under ``name`` so that ``get_task(name)`` calls it.

    ``factory`` takes no arguments and returns a :class:`Task` or a tuple as described in
    :func:`get_task`. Registering an existing name raises ``ValueError`` unless ``overwrite``.
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"task name must be a non-empty string without ':', got {name!r}")
    if not callable(factory):
        raise ValueError(f"factory for task {name!r} must be callable, got {factory!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"task {name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[name] = factory


def get_task(name_or_spec: str) -> Task:
    """Look up a task by registered name, or load one from ``"module:function"``.

    A spec ``"package.module:function"`` imports the module; ``"path/to/file.py:function"`` loads
    the file. The function is called with no arguments and returns either

    * a :class:`Task` (the fully supported form), or
    * a tuple ``(model, optimizer, data, loss_fn)`` where ``model`` is an ``nn.Module`` or a
      zero-argument callable returning one; ``optimizer`` is an optimizer name (``"sgd"``,
      ``"adamw"``, ...) or a ``torch.optim.Optimizer`` whose class and ``lr`` are reused;
      ``data`` is ``(x_train, y_train, x_val, y_val)`` or ``((x_train, y_train), (x_val,
      y_val))``; ``loss_fn(output, target)`` returns a scalar tensor. Floating-point targets make
      a regression task scored by :func:`r2_score`, integer targets a classification task scored
      by :func:`accuracy`. :meth:`Task.make_model` then builds a callable under the seed, or
      deep-copies a module instance and re-runs ``reset_parameters()`` of its layers under the
      seed. Batch size 64, 10 epochs and no target are assumed.

    Raises:
        ValueError: unknown name (the message lists the known names), a module that fails to
            import, a missing function, or a function returning something else.
    """
    if not isinstance(name_or_spec, str) or not name_or_spec:
        raise ValueError(f"task must be a task name or 'module:function', got {name_or_spec!r}")
    if name_or_spec in _REGISTRY:
        return _as_task(name_or_spec, _REGISTRY[name_or_spec]())
    if ":" not in name_or_spec:
        raise ValueError(
            f"unknown task {name_or_spec!r}; known tasks: {', '.join(task_names())} "
            "(or give 'module:function' returning a Task)"
        )
    module_name, _, attr = name_or_spec.rpartition(":")
    if not module_name or not attr:
        raise ValueError(f"task spec {name_or_spec!r} must look like 'module:function'")
    module = _import(module_name, name_or_spec)
    try:
        factory = getattr(module, attr)
    except AttributeError:
        raise ValueError(
            f"task spec {name_or_spec!r}: module {module_name!r} has no attribute {attr!r}"
        ) from None
    if not callable(factory):
        raise ValueError(f"task spec {name_or_spec!r}: {attr!r} is not callable")
    try:
        made = factory()
    except Exception as exc:
        raise ValueError(
            f"task spec {name_or_spec!r}: calling {attr}() failed: {_describe_error(exc)}"
        ) from exc
    return _as_task(name_or_spec, made)


def _import(module_name: str, spec: str) -> object:
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise ValueError(f"task spec {spec!r}: file {module_name!r} does not exist")
        _search_folder(path.resolve().parent)
        mod_name = f"_lrkit_task_{path.stem}"
        file_spec = importlib.util.spec_from_file_location(mod_name, path)
        if file_spec is None or file_spec.loader is None:
            raise ValueError(f"task spec {spec!r}: cannot load {module_name!r} as Python")
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[mod_name] = module
        try:
            file_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[mod_name]
            raise ValueError(
                f"task spec {spec!r}: loading {module_name!r} failed: {_describe_error(exc)}"
            ) from exc
        return module
    _search_folder(Path.cwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ValueError(
                f"task spec {spec!r}: no module named {missing!r} in the current folder "
                f"({Path.cwd()}) or on sys.path; check the name, or give the file instead, "
                f"e.g. 'path/to/{module_name.rsplit('.', 1)[-1]}.py:function'"
            ) from None
        raise ValueError(
            f"task spec {spec!r}: module {module_name!r} was found but importing it failed: "
            f"{_describe_error(exc)}"
        ) from exc
    except Exception as exc:
        raise ValueError(
            f"task spec {spec!r}: module {module_name!r} was found but importing it failed: "
            f"{_describe_error(exc)}"
        ) from exc


def _search_folder(folder: Path) -> None:
    """Make ``folder`` importable, first on ``sys.path``, as ``python -m`` does for the current
    folder and ``python file.py`` for the file's folder."""
    here = str(folder)
    if not any(os.path.abspath(p or ".") == here for p in sys.path):
        sys.path.insert(0, here)


def _describe_error(exc: BaseException) -> str:
    """``Type: message (file:line)``, pointing at the deepest frame of the user's code."""
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f" ({exc.filename}:{exc.lineno})"
    else:
        frames = [
            f
            for f in traceback.extract_tb(exc.__traceback__)
            if not f.filename.startswith("<frozen") and "importlib" not in f.filename
        ]
        if frames:
            where = f" ({frames[-1].filename}:{frames[-1].lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


def _as_task(name: str, obj: object) -> Task:
    if isinstance(obj, Task):
        return obj
    if isinstance(obj, tuple) and len(obj) == 4:
        return _task_from_tuple(name, obj)
    raise ValueError(
        f"task {name!r}: the factory returned {type(obj).__name__}; it must return a Task or "
        "a tuple (model, optimizer, data, loss_fn)"
    )


def _task_from_tuple(name: str, obj: tuple[object, object, object, object]) -> Task:
    model, opt, data, loss_fn = obj
    build_model = _model_builder(name, model)
    optimizer, lr = _optimizer_spec(name, opt)
    task_data = _task_data(name, data)
    if not callable(loss_fn):
        raise ValueError(f"task {name!r}: loss_fn (4th item) must be callable, got {loss_fn!r}")
    regression = task_data.y_train.is_floating_point()
    return Task(
        name=name,
        description=f"user task from {name}",
        kind="regression" if regression else "classification",
        build_model=build_model,
        build_data=lambda: task_data,
        loss_fn=loss_fn,
        metric_name="r2" if regression else "accuracy",
        metric_fn=r2_score if regression else accuracy,
        batch_size=64,
        epochs=10,
        optimizer=optimizer,
        default_lr=lr,
        target=None,
    )


def _model_builder(name: str, model: object) -> Callable[[], nn.Module]:
    if isinstance(model, nn.Module):
        template = model

        def rebuild() -> nn.Module:
            m = copy.deepcopy(template)
            for layer in m.modules():
                reset = getattr(layer, "reset_parameters", None)
                if callable(reset):
                    reset()
            return m

        return rebuild
    if callable(model):

        def build() -> nn.Module:
            m = model()
            if not isinstance(m, nn.Module):
                raise ValueError(
                    f"task {name!r}: the model builder returned {type(m).__name__}, "
                    "not an nn.Module"
                )
            return m

        return build
    raise ValueError(
        f"task {name!r}: model (1st item) must be an nn.Module or a callable returning one, "
        f"got {type(model).__name__}"
    )


def _optimizer_spec(name: str, opt: object) -> tuple[str, float]:
    from lrkit.train.optimizers import OPTIMIZERS, default_lr

    if isinstance(opt, str):
        key = opt.lower()
        if key not in OPTIMIZERS:
            raise ValueError(
                f"task {name!r}: unknown optimizer {opt!r}; known: {', '.join(OPTIMIZERS)}"
            )
        return key, default_lr(key)
    if isinstance(opt, torch.optim.Optimizer):
        key = type(opt).__name__.lower()
        if key not in OPTIMIZERS:
            raise ValueError(
                f"task {name!r}: optimizer class {type(opt).__name__} is not one of "
                f"{', '.join(OPTIMIZERS)}; return a Task instead"
            )
        lr = opt.defaults.get("lr")
        if not isinstance(lr, (int, float)):
            raise ValueError(f"task {name!r}: optimizer {type(opt).__name__} has no float lr")
        return key, float(lr)
    raise ValueError(
        f"task {name!r}: optimizer (2nd item) must be a name such as 'sgd' or a "
        f"torch.optim.Optimizer, got {type(opt).__name__}"
    )


def _task_data(name: str, data: object) -> TaskData:
    if isinstance(data, TaskData):
        items: tuple[object, ...] = tuple(data)
    elif isinstance(data, (tuple, list)) and len(data) == 4:
        items = tuple(data)
    elif (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in data)
    ):
        items = (data[0][0], data[0][1], data[1][0], data[1][1])
    else:
        raise ValueError(
            f"task {name!r}: data (3rd item) must be (x_train, y_train, x_val, y_val) or "
            "((x_train, y_train), (x_val, y_val)) of tensors"
        )
    tensors = [t for t in items if isinstance(t, Tensor)]
    if len(tensors) != 4:
        raise ValueError(f"task {name!r}: data items must all be torch tensors")
    x_train, y_train, x_val, y_val = tensors
    if len(x_train) != len(y_train) or len(x_val) != len(y_val):
        raise ValueError(
            f"task {name!r}: inputs and targets differ in length "
            f"(train {len(x_train)} vs {len(y_train)}, val {len(x_val)} vs {len(y_val)})"
        )
    return TaskData(x_train, y_train, x_val, y_val)
