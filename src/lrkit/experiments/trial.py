"""One trial of a sweep, described by a JSON-able config, and the range test of a task."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .._threads import torch_threads
from ..finder import HyperTestResult, RangeTestResult, momentum_test, range_test, weight_decay_test
from ..finder.range_test import ProgressFn
from ..schedules import Hyper, Schedule, from_dict
from ..tasks import Task, get_task
from ..train.loop import fit
from ..train.optimizers import build_optimizer, default_lr

__all__ = [
    "HyperName",
    "check_values",
    "decode_lr",
    "encode_lr",
    "find_lr",
    "hyper_test_task",
    "run_trial",
    "task_lr",
]


def encode_lr(value: float | Schedule | Hyper) -> Any:
    """A JSON-able form of an ``lr=`` argument of :func:`lrkit.train.fit`."""
    if isinstance(value, Hyper):
        return {"hyper": value.to_dict()}
    if isinstance(value, Schedule):
        return {"schedule": value.to_dict()}
    return float(value)


def decode_lr(value: Any) -> float | Schedule | Hyper:
    """Inverse of :func:`encode_lr`."""
    if isinstance(value, Mapping):
        if "hyper" in value:
            return Hyper.from_dict(dict(value["hyper"]))
        return from_dict(value["schedule"])
    return float(value)


log = logging.getLogger(__name__)


def check_values(value: float | Schedule | Hyper, steps: int, what: str = "lr") -> None:
    """Raise ``ValueError`` if ``value`` (a number, a schedule, or each schedule of a
    :class:`~lrkit.schedules.Hyper`) is NaN, infinite or negative at any of the steps
    ``0 .. steps - 1``; the message names ``what``, the first bad step and its value."""
    if isinstance(value, Hyper):
        check_values(value.lr, steps, what)
        if value.momentum is not None:
            check_values(value.momentum, steps, f"{what} momentum")
        return
    if isinstance(value, Schedule):
        values = np.asarray(value(np.arange(max(1, steps))), dtype=np.float64)
    else:
        values = np.asarray([value], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        i = int(bad[0])
        where = f" at step {i}" if isinstance(value, Schedule) else ""
        raise ValueError(
            f"{what} {value!r} gives {values[i]:g}{where}; a learning rate, momentum or weight "
            "decay must be a finite number >= 0 at every step: check the schedule's values"
        )


def task_lr(task: Task, optimizer: str) -> float:
    """The no-finder learning rate: the task's default for its own optimizer, else the
    optimizer's usual default."""
    return task.default_lr if optimizer == task.optimizer else default_lr(optimizer)


def run_trial(config: Mapping[str, Any]) -> dict[str, Any]:
    """Train one configuration with :func:`lrkit.train.fit` and return its history.

    Keys: ``task``, ``seed``, ``optimizer``, ``lr`` (see :func:`encode_lr`), ``steps`` and
    optionally ``momentum`` (float or schedule dict), ``weight_decay``, ``batch_size``,
    ``eval_every``, ``target``, ``threads`` (torch threads, default 1: the built-in tasks are
    small enough that more threads only add overhead, and sweeps run one trial per core).
    """
    momentum = config.get("momentum")
    if isinstance(momentum, Mapping):
        momentum = from_dict(momentum)
        if not isinstance(momentum, Schedule):
            raise ValueError(f"momentum must be a number or a schedule, got {momentum!r}")
    history = fit(
        str(config["task"]),
        optimizer=str(config["optimizer"]),
        lr=decode_lr(config["lr"]),
        momentum=momentum,
        weight_decay=float(config.get("weight_decay", 0.0)),
        steps=int(config["steps"]),
        batch_size=config.get("batch_size"),
        eval_every=config.get("eval_every"),
        target=config.get("target"),
        seed=int(config["seed"]),
        num_threads=int(config.get("threads", 1)),
    )
    return {"history": history.to_dict(), "diverged": history.diverged}


def find_lr(
    task: Task | str,
    optimizer: str | None = None,
    *,
    seed: int = 0,
    batch_size: int | None = None,
    steps: int = 100,
    repeats: int = 1,
    weight_decay: float = 0.0,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    cache: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
) -> RangeTestResult:
    """Run the LR range test on a task's model (seeded) with a named optimizer.

    With ``cache`` (a JSON path) an earlier result stored there is reused, and a new one is
    written there, so an interrupted experiment does not repeat its range test. A cache file
    that cannot be read back (corrupt, cut short) is logged and replaced by a fresh test; a test
    interrupted by Ctrl-C (``stop_reason == "interrupted"``) is returned but never cached.
    """
    t = get_task(task) if isinstance(task, str) else task
    opt_name = optimizer or t.optimizer
    if cache is not None and Path(cache).exists():
        try:
            return RangeTestResult.from_json(cache)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            log.warning(
                "range-test cache %s is corrupt (%s: %s); running the range test again",
                cache,
                type(err).__name__,
                err,
            )
    with torch_threads(1):  # small built-in models: one thread is fastest
        result = _range_test_task(
            t, opt_name, seed, batch_size, steps, repeats, weight_decay, start_lr, end_lr, progress
        )
    if cache is not None and result.stop_reason != "interrupted":
        result.to_json(cache)
    return result


def _task_setup(
    t: Task, opt_name: str, seed: int, batch_size: int | None, weight_decay: float
) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
    model = t.make_model(seed)
    opt = build_optimizer(opt_name, model.parameters(), lr=1e-7, weight_decay=weight_decay)
    train, _ = t.loaders(batch_size=batch_size, seed=seed)
    return model, opt, train


def _range_test_task(
    t: Task,
    opt_name: str,
    seed: int,
    batch_size: int | None,
    steps: int,
    repeats: int,
    weight_decay: float,
    start_lr: float,
    end_lr: float,
    progress: ProgressFn | None,
) -> RangeTestResult:
    model, opt, train = _task_setup(t, opt_name, seed, batch_size, weight_decay)
    return range_test(
        model,
        opt,
        train,
        t.loss_fn,
        start_lr=start_lr,
        end_lr=end_lr,
        steps=steps,
        repeats=repeats,
        seed=seed,
        progress=progress,
    )


HyperName = Literal["weight_decay", "momentum"]


def hyper_test_task(
    task: Task | str,
    name: HyperName,
    values: Sequence[float] | None = None,
    optimizer: str | None = None,
    *,
    seed: int = 0,
    batch_size: int | None = None,
    steps: int = 100,
    weight_decay: float = 0.0,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    progress: ProgressFn | None = None,
) -> HyperTestResult:
    """Smith's weight-decay or momentum test on a task's model (seeded) with a named optimizer.

    ``values`` default to Smith's grids (:func:`~lrkit.finder.weight_decay_test`,
    :func:`~lrkit.finder.momentum_test`). ``weight_decay`` applies to the momentum test. SGD is
    built with its default momentum 0.9, so its momentum can be tested.
    """
    t = get_task(task) if isinstance(task, str) else task
    opt_name = optimizer or t.optimizer
    if name not in ("weight_decay", "momentum"):
        raise ValueError(f"name must be 'weight_decay' or 'momentum', got {name!r}")
    kwargs: dict[str, Any] = {
        "start_lr": start_lr,
        "end_lr": end_lr,
        "steps": steps,
        "seed": seed,
        "progress": progress,
    }
    with torch_threads(1):  # small built-in models: one thread is fastest
        model, opt, train = _task_setup(t, opt_name, seed, batch_size, weight_decay)
        if name == "weight_decay":
            if values is not None:
                kwargs["weight_decays"] = values
            return weight_decay_test(model, opt, train, t.loss_fn, **kwargs)
        if values is not None:
            kwargs["momentums"] = values
        return momentum_test(model, opt, train, t.loss_fn, **kwargs)
