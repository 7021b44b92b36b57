"""The search's probes as Ray tasks, for :func:`lrkit.finder.task.tune_task` with
``backend="ray"``.

The probes of one round are independent: each starts from the search's start state and reseeds.
So each runs on a worker as a function of picklable inputs: the task's spec (a built-in task's
name, or ``"module:function"``), the optimizer, the seed, the start state (the model's and the
optimizer's ``state_dict``) and the probe (:class:`~lrkit.finder.tune_result.ProbeJob`). The worker
rebuilds the task, loads the start state and trains with the same code as a local probe, so the
search chooses the same peak.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lrkit._extras import require
from lrkit._ray import Resources, collect, remote_task
from lrkit._threads import torch_threads
from lrkit.engine import Engine, RngState, TrainingSnapshot, distributed
from lrkit.finder.probes import Prober
from lrkit.finder.task_setup import task_setup
from lrkit.finder.tune_result import ProbeJob, ProbeOutcome, ProbeRunner
from lrkit.tasks import get_task

__all__ = ["ray_probe_runner"]


@dataclass(frozen=True)
class _Setup:
    spec: str
    optimizer: str
    seed: int
    batch_size: int | None
    weight_decay: float
    model_state: dict[str, Any]
    optimizer_state: dict[str, Any]
    threads: int


def _probe(setup: _Setup, job: ProbeJob) -> ProbeOutcome:
    """One probe on a Ray worker: the task rebuilt, the start state loaded, trained and scored
    as :func:`~lrkit.finder.search.tune_lr` trains a probe (:meth:`Prober.train_probe
    <lrkit.finder.probes.Prober.train_probe>`)."""
    with torch_threads(setup.threads):
        t = get_task(setup.spec)
        model, opt, train, val = task_setup(
            t, setup.optimizer, setup.seed, setup.batch_size, setup.weight_decay
        )
        model.load_state_dict(setup.model_state)
        opt.load_state_dict(setup.optimizer_state)
        snap = TrainingSnapshot.take(model, opt, None, "cpu", rng=RngState.capture(train, val))
        engine = Engine(model, opt, loss_fn=t.loss_fn)
        try:
            prober = Prober(
                engine, snap, train, val, lambda peak, steps: job.lr, t.metric_fn, True,
                job.seed, (train, val), None, 0.0,
            )  # fmt: skip
            return prober.train_probe(job)
        finally:
            engine.close()
            snap.close()


def ray_probe_runner(
    spec: str,
    optimizer: str,
    seed: int,
    batch_size: int | None,
    weight_decay: float,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    resources: Resources,
) -> ProbeRunner:
    """A :data:`~lrkit.finder.tune_result.ProbeRunner` that trains each round's probes as Ray
    tasks, all at once, from the state ``model`` and ``opt`` are in now (the search's start).
    Needs a Ray connection (:func:`lrkit._ray.ray_session`)."""
    if distributed.is_distributed():
        raise ValueError(
            "backend='ray' runs the probes as Ray tasks, not under torchrun; leave it out there"
        )
    ray = require("ray", "ray", "the Ray backend")
    setup = _Setup(
        spec,
        optimizer,
        seed,
        batch_size,
        weight_decay,
        copy.deepcopy(model.state_dict()),
        copy.deepcopy(opt.state_dict()),
        resources.threads,
    )
    setup_ref = ray.put(setup)
    remote = remote_task(ray, _probe, resources)

    def run(jobs: Sequence[ProbeJob]) -> list[ProbeOutcome]:
        refs = [remote.remote(setup_ref, job) for job in jobs]
        got: dict[Any, ProbeOutcome] = {}
        collect(ray, refs, lambda ref: got.__setitem__(ref, ray.get(ref)))
        return [got[ref] for ref in refs]

    return run
