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
``mnist1d-cnn-paper``
    The same data with the MNIST-1D paper's own CNN: three Conv1d layers of 25 channels, ReLU,
    no normalization, trained with SGD at batch 100 (the paper reports about 94% for it).
``mnist1d-0to4-paper``, ``mnist1d-5to9-paper``
    The paper's CNN on digits 0-4 only and on digits 5-9 only: the source and the target of the
    ``transfer`` experiment (pretrain on one half, fine-tune on the other).
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
were. The data needs ``mnist1d`` and scikit-learn, the ``lrkit[tasks]`` extra; without it
:func:`get_task` raises ``ImportError`` for a built-in task, saying what to install.

The package: :mod:`~lrkit.tasks._base` (the :class:`Task` type, metrics and losses),
:mod:`~lrkit.tasks.data` (datasets), :mod:`~lrkit.tasks.models` (model builders),
:mod:`~lrkit.tasks.builtin` (the built-in tasks as one table) and :mod:`~lrkit.tasks.registry`
(names, :func:`register_task`, :func:`get_task` and ``"module:function"`` specs).

Other tasks can be added with :func:`register_task`, or named as ``"module:function"`` (or
``"path/to/file.py:function"``) in :func:`get_task`; see there for what the function may return.
"""

from __future__ import annotations

from lrkit.tasks._base import (
    LossFn,
    MetricFn,
    Task,
    TaskData,
    TaskKind,
    accuracy,
    r2_score,
)
from lrkit.tasks.registry import get_task, register_task, task_names

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
