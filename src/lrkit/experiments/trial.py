"""One trial of a sweep, described by a JSON-able config."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..schedules import Hyper, Policy, Schedule, from_dict
from ..tasks import Task, get_task
from ..train.loop import fit
from .transfer import pretrained_task

__all__ = ["decode_lr", "encode_lr", "run_trial"]


def encode_lr(value: float | Policy) -> Any:
    """A JSON-able form of an ``lr=`` argument of :func:`lrkit.train.fit`."""
    if isinstance(value, Hyper):
        return {"hyper": value.to_dict()}
    if isinstance(value, Schedule):
        return {"schedule": value.to_dict()}
    return float(value)


def decode_lr(value: Any) -> float | Policy:
    """Inverse of :func:`encode_lr`."""
    if isinstance(value, Mapping):
        if "hyper" in value:
            return Hyper.from_dict(dict(value["hyper"]))
        return from_dict(value["schedule"])
    return float(value)


log = logging.getLogger(__name__)


def run_trial(config: Mapping[str, Any]) -> dict[str, Any]:
    """Train one configuration with :func:`lrkit.train.fit` and return its history.

    Keys: ``task``, ``seed``, ``optimizer``, ``lr`` (see :func:`encode_lr`), ``steps`` and
    optionally ``momentum`` (float or schedule dict), ``weight_decay``, ``batch_size``,
    ``eval_every``, ``target``, ``threads`` (torch threads, default 1: the built-in tasks are
    small enough that more threads only add overhead, and sweeps run one trial per core), and
    ``pretrained`` (:meth:`lrkit.experiments.transfer.Pretrained.spec`: the model starts from
    that backbone, part of it frozen).
    """
    momentum = config.get("momentum")
    if isinstance(momentum, Mapping):
        momentum = from_dict(momentum)
        if not isinstance(momentum, Schedule):
            raise ValueError(f"momentum must be a number or a schedule, got {momentum!r}")
    name = str(config["task"])
    task: Task | str = name
    if config.get("pretrained") is not None:
        task = pretrained_task(get_task(name), config["pretrained"])
    history = fit(
        task,
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
