"""The trials of `distribution.py` on the tasks of `task_distribution.py`: each a plain-JSON
config dispatched by its ``kind`` (importing this module registers the tasks, in the workers
too).

- ``train``: one one-cycle run at a given peak, with the task's optimizer and weight decay
  (:func:`lrkit.experiments.run_trial`);
- ``lr-free``: one run with an LR-free optimizer (:mod:`_lr_free`);
- ``range-test``: lrkit's range test (100 updates from 1e-7 to 10, as ``lrkit find``) with the
  task's optimizer and weight decay, on the model and data order of the finder seed; every
  rule's suggestion, and pytorch-lr-finder's own (steepest gradient) from its own sweep;
- ``tune``: :func:`lrkit.finder.tune_lr` at ``budget`` for the task's length, scored on a tenth
  of the training set held out by the finder seed (the validation set that scores the runs is
  never shown to it), then one training run of the task in the same process and thread count,
  both timed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

import task_distribution
from lrkit import schedules as S
from lrkit._threads import torch_threads
from lrkit.experiments import run_trial
from lrkit.tasks import get_task
from lrkit.train import History, fit
from lrkit.train.optimizers import build_optimizer

from _lr_free import train_lr_free
from _regret_trials import finder_data, range_test_rules, timed_tune, torch_lr_finder_peak

FIRST_MOMENTUM = 0.95
"""The momentum (SGD, RMSprop) or beta1 (Adam, AdamW) at the start of lrkit's one cycle."""


def trial(config: Mapping[str, Any]) -> dict[str, Any]:
    """Run one trial (see the module docstring for the kinds)."""
    kind = config["kind"]
    if kind == "train":
        return run_trial(config)
    with torch_threads(1):
        if kind == "lr-free":
            return train_lr_free(config)
        if kind == "range-test":
            return _range_test(config)
        if kind == "tune":
            return _tune(config)
    raise ValueError(f"unknown trial kind {kind!r}")


def _optimizer(name: str, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The task's optimizer as its runs build it: ``fit`` with a one-cycle ``Hyper`` starts
    every optimizer that has momentum at the cycle's first momentum (0.95), RMSprop included,
    so the finders see the optimizer the runs train with."""
    spec = task_distribution.spec_of(name)
    return build_optimizer(
        spec.optimizer, model.parameters(), lr=1e-7, weight_decay=spec.weight_decay,
        momentum=FIRST_MOMENTUM,
    )  # fmt: skip


def _range_test(config: Mapping[str, Any]) -> dict[str, Any]:
    name = str(config["task"])
    task = get_task(name)
    seed = int(config["finder_seed"])
    model, fresh = task.make_model(seed), task.make_model(seed)
    return {
        **range_test_rules(task, model, _optimizer(name, model), seed),
        "torch-lr-finder": torch_lr_finder_peak(task, fresh, _optimizer(name, fresh), seed),
    }


def _tune(config: Mapping[str, Any]) -> dict[str, Any]:
    from lrkit.finder import TuneResult, tune_lr

    name = str(config["task"])
    task = get_task(name)
    spec = task_distribution.spec_of(name)
    seed = int(config["finder_seed"])
    steps = int(config["steps"])
    train, val, metric_fn = finder_data(task, seed, "split")

    def search(total: int) -> TuneResult:
        model = task.make_model(seed)
        return tune_lr(
            model, _optimizer(name, model), train, task.loss_fn, total_steps=total,
            val_data=val, budget=float(config["budget"]), metric_fn=metric_fn,
            maximize=True, seed=seed,
        )  # fmt: skip

    def run(total: int) -> History:
        return fit(
            task, lr=S.one_cycle(task.default_lr, total), steps=total, eval_every=total,
            weight_decay=spec.weight_decay, seed=seed, num_threads=1,
        )  # fmt: skip

    try:
        found, tune_seconds, _, train_seconds = timed_tune(
            search, run, steps, float(config["budget"])
        )
    except ValueError as err:  # refused: the run is too short for the budget
        return {"error": str(err), "peak": None}
    return {
        "peak": float(found.peak),
        "range_test_peak": found.range_test.suggestion,
        "spent": float(found.spent),
        "result": found.to_dict(),
        "reason": found.reason,
        "tune_seconds": tune_seconds,
        "train_seconds": train_seconds,
    }
