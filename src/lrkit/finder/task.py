"""The finder on a task: the range test, Smith's weight-decay and momentum tests, and the budgeted
search, each on a task's model (seeded), data and named optimizer. The ``find`` command and the
recipes call these."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal, TypeVar

from lrkit._ray import Backend, ResourcesLike, check_backend, ray_session, worker_spec
from lrkit._threads import torch_threads
from lrkit.engine import distributed
from lrkit.finder._ray_probes import ray_probe_runner
from lrkit.finder.hyper import HyperTestResult, momentum_test, weight_decay_test
from lrkit.finder.range_test import ProgressFn, range_test
from lrkit.finder.result import RangeTestResult
from lrkit.finder.search import TuneResult, tune_lr
from lrkit.finder.task_setup import task_setup
from lrkit.tasks import Task, get_task

__all__ = ["HyperName", "find_lr", "hyper_test_task", "task_setup", "tune_task"]

log = logging.getLogger(__name__)

_R = TypeVar("_R")


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

    Under ``torchrun`` the model is wrapped in ``DistributedDataParallel`` and each rank trains
    on its part of the training loader (:func:`lrkit.engine.distributed.shard`); rank 0 reads
    and writes the cache and hands what it read to the other ranks.
    """
    t = get_task(task) if isinstance(task, str) else task
    opt_name = optimizer or t.optimizer
    cached = distributed.broadcast(_read_cache(cache, RangeTestResult.from_json, "range-test"))
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    with torch_threads(1):  # small built-in models: one thread is fastest
        result = _range_test_task(
            t, opt_name, seed, batch_size, steps, repeats, weight_decay, start_lr, end_lr, progress
        )
    if cache is not None and result.stop_reason != "interrupted":
        result.to_json(cache)
    return result


def _read_cache(
    cache: str | os.PathLike[str] | None, read: Callable[[Path], _R], what: str
) -> _R | None:
    """The result stored in ``cache`` (read on rank 0 only), or ``None`` when there is none or
    it cannot be read back (logged)."""
    if cache is None or not distributed.is_writer() or not Path(cache).exists():
        return None
    try:
        return read(Path(cache))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        log.warning(
            "%s cache %s is corrupt (%s: %s); running it again",
            what,
            cache,
            type(err).__name__,
            err,
        )
        return None


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
    model, opt, train, _ = task_setup(t, opt_name, seed, batch_size, weight_decay)
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
        model, opt, train, _ = task_setup(t, opt_name, seed, batch_size, weight_decay)
        if name == "weight_decay":
            if values is not None:
                kwargs["weight_decays"] = values
            return weight_decay_test(model, opt, train, t.loss_fn, **kwargs)
        if values is not None:
            kwargs["momentums"] = values
        return momentum_test(model, opt, train, t.loss_fn, **kwargs)


def tune_task(
    task: Task | str,
    optimizer: str | None = None,
    *,
    budget: float = 0.5,
    seed: int = 0,
    batch_size: int | None = None,
    total_steps: int | None = None,
    weight_decay: float = 0.0,
    cache: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
    backend: Backend = "local",
    address: str | None = None,
    resources: ResourcesLike | None = None,
) -> TuneResult:
    """:func:`~lrkit.finder.search.tune_lr` on a task: its model (seeded), training loader,
    validation loader and metric (maximized), for a one-cycle run of ``total_steps`` (default:
    the task's epochs). ``cache`` and ``torchrun`` work as with :func:`find_lr`.

    ``backend="ray"`` trains the probes of each round at once, as Ray tasks on the cluster at
    ``address`` reserving ``resources`` each (as in :func:`lrkit.experiments.run_trials`), and
    gives the same result as the local search for the same seed; the range test runs here.
    The workers load the task themselves, so it must be a built-in task or a
    ``"module:function"`` spec importable on them."""
    res = check_backend(backend, address, resources)
    t = get_task(task) if isinstance(task, str) else task
    spec = worker_spec(task) if res is not None else ""
    opt_name = optimizer or t.optimizer
    cached = distributed.broadcast(_read_cache(cache, TuneResult.from_json, "tune"))
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    session = ray_session(address, res) if res is not None else nullcontext()
    with torch_threads(1), session:  # small built-in models: one thread is fastest
        model, opt, train, val = task_setup(t, opt_name, seed, batch_size, weight_decay)
        steps = total_steps if total_steps is not None else t.epochs * len(train)
        runner = None
        if res is not None:
            runner = ray_probe_runner(
                spec, opt_name, seed, batch_size, weight_decay, model, opt, res
            )
        result = tune_lr(
            model,
            opt,
            train,
            t.loss_fn,
            val_data=val,
            total_steps=steps,
            budget=budget,
            metric_fn=t.metric_fn,
            maximize=True,
            seed=seed,
            progress=progress,
            runner=runner,
        )
    if cache is not None:
        result.to_json(cache)
    return result
