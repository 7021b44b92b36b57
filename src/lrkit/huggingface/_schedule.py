"""The Trainer's schedule as lrkit schedules (:func:`trainer_schedule`) and the length of its run
in optimizer updates (:func:`total_steps`)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from lrkit._extras import require
from lrkit.finder.tune_result import ScheduleFn
from lrkit.huggingface._trainer import Untouched, check_trainer, train_loader
from lrkit.schedules import Schedule, constant, cosine, custom, linear, warmup

transformers = require("transformers", "huggingface", "lrkit.huggingface")

__all__ = ["count_steps", "total_steps", "trainer_schedule"]

_METRIC_DRIVEN = ("reduce_lr_on_plateau", "greedy")


def total_steps(trainer: Any) -> int:
    """The optimizer updates ``trainer.train()`` will make, counted as the Trainer counts them:
    ``args.max_steps`` when it is set (> 0), else ``ceil(num_train_epochs × updates per
    epoch)`` with ``ceil(len(train dataloader) / gradient_accumulation_steps)`` updates per
    epoch (at least 1).

    Raises:
        TypeError: ``trainer`` is not a ``transformers.Trainer``.
        ValueError: a training dataset without a length (an ``IterableDataset``) and no
            ``max_steps``, or no ``train_dataset``.
    """
    check_trainer(trainer)
    return count_steps(trainer)


def count_steps(trainer: Any) -> int:
    """:func:`total_steps` of a Trainer already checked."""
    args = trainer.args
    if args.max_steps > 0:
        return int(args.max_steps)
    untouched = Untouched(trainer)
    try:
        loader = train_loader(trainer)
        try:
            batches = len(loader)
        except TypeError:
            raise ValueError(
                "the training dataset has no length (an IterableDataset), so the number of "
                "updates of an epoch is unknown; set TrainingArguments(max_steps=...) to the "
                "run's length in optimizer updates"
            ) from None
    finally:
        untouched.restore()
    acc = int(args.gradient_accumulation_steps)
    per_epoch = max(batches // acc + int(batches % acc > 0), 1)
    return math.ceil(float(args.num_train_epochs) * per_epoch)


def _scheduler_type(args: Any) -> str:
    kind = args.lr_scheduler_type
    return str(getattr(kind, "value", kind))


def _warmup_ratio(args: Any) -> float | None:
    """The warmup as a fraction of the run, or ``None`` when it is a number of steps:
    ``warmup_steps`` of 1 or more are steps, below 1 a ratio (transformers 5); 0 defers to
    ``warmup_ratio`` where the version has it (transformers 4)."""
    steps = float(args.warmup_steps or 0)
    if steps >= 1:
        return None
    if steps > 0:
        return steps
    return float(getattr(args, "warmup_ratio", 0.0) or 0.0)


def trainer_schedule(trainer: Any, total_steps: int | None = None) -> ScheduleFn:
    """``schedule(peak, steps)``: the learning rate the Trainer would schedule
    (``args.lr_scheduler_type`` with its warmup and ``lr_scheduler_kwargs``) with ``peak`` as
    the learning rate, over a run of ``steps`` updates, as lrkit schedules.

    Over the run itself (``steps == total_steps``, default :func:`total_steps`) its value at
    update ``t`` is the learning rate the Trainer's scheduler gives update ``t``
    (``transformers.get_scheduler`` with ``args.get_warmup_steps(total_steps)``). Over shorter
    runs (the search's probes) the warmup keeps its share of the run: a warmup ratio gives
    ``ceil(steps × ratio)`` warmup steps, as the Trainer would for a run of ``steps``; a
    number of warmup steps ``w`` gives ``round(w × steps / total_steps)``.

    ``"linear"`` is :func:`~lrkit.schedules.linear` to 0, ``"cosine"`` (half a cosine)
    :func:`~lrkit.schedules.cosine` to 0, ``"constant"`` :func:`~lrkit.schedules.constant`
    (the Trainer gives it no warmup), ``"constant_with_warmup"`` a constant; each after a
    linear :func:`~lrkit.schedules.warmup` from 0. The other step-driven types
    (``"cosine_with_restarts"``, ``"polynomial"``, ``"inverse_sqrt"``,
    ``"cosine_with_min_lr"``, ``"warmup_stable_decay"``, ...) and ``"cosine"`` with other
    ``num_cycles`` are transformers' own function of the step wrapped in
    :func:`~lrkit.schedules.custom`.

    Args:
        trainer: a ``transformers.Trainer``, or its ``TrainingArguments`` (then
            ``total_steps`` is needed).
        total_steps: the run's length in optimizer updates.

    Raises:
        ValueError: a metric-driven type (``"reduce_lr_on_plateau"``), which is no function of
            the step; no ``total_steps`` with ``TrainingArguments``.
    """
    args = getattr(trainer, "args", trainer)
    if total_steps is None:
        if args is trainer:
            raise ValueError("trainer_schedule(args) needs total_steps (the run's updates)")
        total_steps = count_steps(trainer)
    total = int(total_steps)
    if total < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps!r}")
    kind = _scheduler_type(args)
    if kind in _METRIC_DRIVEN:
        raise ValueError(
            f"lr_scheduler_type={kind!r} follows a metric, not the step, so short runs of it "
            "cannot be probed; pass schedule=lambda peak, steps: ... (an lrkit schedule), or "
            "use a step-driven type such as 'linear' or 'cosine'"
        )
    kwargs = dict(args.lr_scheduler_kwargs or {})
    at_total = int(args.get_warmup_steps(total))
    ratio = _warmup_ratio(args)

    def warmup_steps(steps: int) -> int:
        if steps == total:
            return at_total
        if ratio is not None:
            return math.ceil(steps * ratio)
        return round(at_total * steps / total)

    def make(peak: float, steps: int) -> Schedule:
        w = warmup_steps(steps)
        main: Schedule
        if kind == "constant":
            return constant(peak)
        if kind == "constant_with_warmup":
            main = constant(peak)
        elif kind == "linear" and not kwargs:
            main = linear(peak, 0.0, max(1, steps - w))
        elif kind == "cosine" and kwargs in ({}, {"num_cycles": 0.5}):
            main = cosine(peak, max(1, steps - w))
        else:
            return _transformers_schedule(kind, kwargs, peak, steps, w)
        return warmup(main, w) if w > 0 else main

    return make


def _transformers_schedule(
    kind: str, kwargs: dict[str, Any], peak: float, steps: int, warmup_steps: int
) -> Schedule:
    """transformers' own schedule ``kind`` at ``peak`` over ``steps``, as a schedule: the factor
    its ``LambdaLR`` multiplies the learning rate with at each step, times ``peak``."""
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=peak)
    scheduler = transformers.get_scheduler(
        kind,
        optimizer=optimizer,
        num_warmup_steps=warmup_steps,
        num_training_steps=steps,
        scheduler_specific_kwargs=kwargs,
    )
    factors = getattr(scheduler, "lr_lambdas", None)
    if not factors:
        raise ValueError(
            f"lr_scheduler_type={kind!r} is not a function of the step; pass "
            "schedule=lambda peak, steps: ... (an lrkit schedule)"
        )
    factor = factors[0]
    return custom(lambda t: peak * float(factor(int(t))), steps=steps)
