"""The trials of `suggestion_regret.py`: each a plain-JSON config, dispatched by its ``kind``.

- ``train``: one one-cycle run at a given peak (:func:`lrkit.experiments.run_trial`);
- ``lr-free``: one run with an LR-free optimizer (:mod:`_lr_free`);
- ``range-test``: lrkit's range test (100 steps from 1e-7 to 10, as ``lrkit find``) on the task,
  model and data order seeded by the finder seed, and every rule's suggestion from it;
- ``torch-lr-finder``: pytorch-lr-finder's own suggestion (steepest gradient), same seeding;
- ``tune``: :func:`lrkit.finder.search.tune_lr` at ``budget`` for the task's full length, then
  one training run of the same task (one-cycle at the default LR) in the same process and thread
  count, both timed. What the search scores its probes on is ``tune_val`` (see
  :data:`TUNE_VALIDATION`).

Finder versions: a finder trial's key carries a hash of the source it runs, so that changing the
method reruns its own suggestions only (training runs are keyed by task, peak and seed, and a
suggestion that did not move reuses them).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
)

import lrkit.finder
from lrkit import schedules as S
from lrkit._threads import torch_threads
from lrkit.experiments import run_trial
from lrkit.finder import METHODS, range_test
from lrkit.finder.search import TuneResult, min_total_steps, tune_lr
from lrkit.tasks import Task, get_task
from lrkit.train import History, fit
from lrkit.train.optimizers import build_optimizer

from _lr_free import train_lr_free

BUDGET = 0.5
"""The budget of tune_lr, as a fraction of one training run."""

TUNE_VALIDATION = {
    "split": (
        "a tenth of the task's training set (drawn by the finder seed) held out as its "
        "validation data and scored on the task's metric, the other nine tenths its training "
        "data; the validation set that scores the runs is never shown to it"
    ),
    "task": (
        "the task's validation set and metric (as `lrkit.tasks.find.tune_task`): the set that "
        "scores the runs also chooses the peak"
    ),
    "default": (
        "tune_lr's defaults: the task's training loader, no validation data (it holds out "
        "training batches itself) and the validation loss"
    ),
}
"""What tune_lr scores its probes on, by the name ``--tune-val`` takes."""

WARM_UP_STEPS = 80
"""Length of the untimed search and run that precede the timed ones in a ``tune`` trial."""

_FINDER_DIR = Path(lrkit.finder.__file__).resolve().parent
_SEARCH = tuple(
    _FINDER_DIR / name for name in ("search.py", "peak_choice.py", "probes.py", "tune_result.py")
)
"""The search's modules: tune_lr, its decisions, its probe runner and its result types."""


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
    return h.hexdigest()[:10]


def range_test_version() -> str:
    """A hash of the range test and the rules: lrkit.finder's source, the search left out."""
    files = sorted(p for p in _FINDER_DIR.glob("*.py") if p not in _SEARCH)
    return _digest(*(p.read_bytes() for p in files))


def tune_version(tune_val: str) -> str:
    """A hash of tune_lr's source (the modules of :data:`_SEARCH`), the range test it starts
    from and the benchmark's call."""
    call = f"budget={BUDGET} tune_val={tune_val} warm-up={WARM_UP_STEPS}"
    return _digest(*(p.read_bytes() for p in _SEARCH), range_test_version(), call)


def torch_lr_finder_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch-lr-finder")
    except PackageNotFoundError:
        return "missing"


def total_steps(task_name: str) -> int:
    task = get_task(task_name)
    return task.epochs * task.steps_per_epoch()


def bench_trial(config: Mapping[str, Any]) -> dict[str, Any]:
    """Run one trial of the benchmark (see the module docstring for the kinds)."""
    kind = config["kind"]
    if kind == "train":
        return run_trial(config)
    if kind == "lr-free":
        with torch_threads(1):
            return train_lr_free(config)
    if kind == "range-test":
        return _range_test(config)
    if kind == "torch-lr-finder":
        with torch_threads(1):
            return {"peak": _torch_lr_finder(str(config["task"]), int(config["finder_seed"]))}
    if kind == "tune":
        with torch_threads(1):
            return _tune(config)
    raise ValueError(f"unknown trial kind {kind!r}")


def _range_test(config: Mapping[str, Any]) -> dict[str, Any]:
    task = get_task(str(config["task"]))
    seed = int(config["finder_seed"])
    model = task.make_model(seed)
    opt = build_optimizer(task.optimizer, model.parameters(), lr=1e-7)
    with torch_threads(1):
        return range_test_rules(task, model, opt, seed)


def range_test_rules(
    task: Task, model: torch.nn.Module, opt: torch.optim.Optimizer, seed: int
) -> dict[str, Any]:
    """lrkit's range test (100 steps, as ``lrkit find``) of ``model`` and ``opt`` on
    ``task``'s training loader of ``seed``, with the global RNGs seeded by ``seed`` too (dropout
    draws from them, so the result does not depend on what ran before in the process): every
    rule's suggestion, the stop reason, the steps and the seconds."""
    train, _ = task.loaders(seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        result = range_test(model, opt, train, task.loss_fn, steps=100, seed=seed)
        seconds = time.perf_counter() - t0
    return {
        "suggestions": {m: result.suggest(m).lr for m in METHODS},
        "stop_reason": result.stop_reason,
        "steps": len(result.lrs),
        "seconds": seconds,
    }


def _torch_lr_finder(task_name: str, seed: int) -> float | None:
    task = get_task(task_name)
    model = task.make_model(seed)
    return torch_lr_finder_peak(
        task, model, build_optimizer(task.optimizer, model.parameters(), lr=1e-7), seed
    )


def torch_lr_finder_peak(
    task: Task, model: torch.nn.Module, opt: torch.optim.Optimizer, seed: int
) -> float | None:
    """pytorch-lr-finder's own suggestion (steepest gradient) on ``task``'s training loader of
    ``seed``: 100 steps up to 10, as its README's example, for ``model`` and ``opt``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch_lr_finder import LRFinder

    train, _ = task.loaders(seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        finder = LRFinder(model, opt, task.loss_fn, device="cpu")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            finder.range_test(train, end_lr=10, num_iter=100)
            _, lr = finder.plot(suggest_lr=True)
        finder.reset()
    plt.close("all")
    return float(lr) if lr is not None and math.isfinite(lr) else None


def finder_data(task: Task, seed: int, tune_val: str) -> tuple[Any, Any, Any]:
    """The training data, validation data and metric tune_lr gets (see :data:`TUNE_VALIDATION`)."""
    if tune_val == "task":
        train, val = task.loaders(seed=seed)
        return train, val, task.metric_fn
    if tune_val == "default":
        train, _ = task.loaders(seed=seed)
        return train, None, None
    if tune_val != "split":
        raise ValueError(f"tune_val must be one of {', '.join(TUNE_VALIDATION)}, got {tune_val!r}")
    x, y = task.train_data
    order = torch.as_tensor(np.random.default_rng(seed).permutation(len(x)))
    k = max(1, len(x) // 10)
    train_set = TensorDataset(x[order[k:]], y[order[k:]])
    val_set = TensorDataset(x[order[:k]], y[order[:k]])
    gen = torch.Generator()
    gen.manual_seed(seed)
    sampler = BatchSampler(RandomSampler(train_set, generator=gen), task.batch_size, False)
    train = DataLoader(train_set, sampler=sampler, batch_size=None, generator=gen)
    val = DataLoader(
        val_set, sampler=BatchSampler(SequentialSampler(val_set), 1000, False), batch_size=None
    )
    return train, val, task.metric_fn


def _tune(config: Mapping[str, Any]) -> dict[str, Any]:

    task = get_task(str(config["task"]))
    seed = int(config["finder_seed"])
    steps = int(config["steps"])
    train, val, metric_fn = finder_data(task, seed, str(config["tune_val"]))

    def search(total: int) -> TuneResult:
        model = task.make_model(seed)
        opt = build_optimizer(task.optimizer, model.parameters(), lr=1e-7)
        return tune_lr(
            model,
            opt,
            train,
            task.loss_fn,
            total_steps=total,
            val_data=val,
            budget=float(config["budget"]),
            metric_fn=metric_fn,
            maximize=metric_fn is not None,
            seed=seed,
        )

    def run(total: int) -> History:
        lr = S.one_cycle(task.default_lr, total)
        return fit(task, lr=lr, steps=total, eval_every=total, seed=seed, num_threads=1)

    found, tune_seconds, history, train_seconds = timed_tune(
        search, run, steps, float(config["budget"])
    )
    return {
        "peak": float(found.peak),
        "spent": float(found.spent),
        "probes": len(found.probes),
        "reason": found.reason,
        "tune_seconds": tune_seconds,
        "train_seconds": train_seconds,
        "train_diverged": history.diverged,
    }


def timed_tune(
    search: Callable[[int], TuneResult], run: Callable[[int], History], steps: int, budget: float
) -> tuple[TuneResult, float, History, float]:
    """``search(steps)`` and ``run(steps)`` (a search and a training run of ``steps``
    updates), each timed, after both ran once briefly (the search as short as ``budget``
    allows), so that neither timing pays the process's start-up costs: the search's result and
    seconds, and the run's history and seconds. A ``ValueError`` of the timed search
    propagates."""
    with contextlib.suppress(ValueError):
        search(max(min(steps, WARM_UP_STEPS), min_total_steps(budget)))
    run(min(steps, WARM_UP_STEPS))
    t0 = time.perf_counter()
    found = search(steps)
    tune_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    history = run(steps)
    return found, tune_seconds, history, time.perf_counter() - t0
