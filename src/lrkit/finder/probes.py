"""The search's probes: short runs of the user's schedule from the search's start state, each
scored on validation data.

:class:`Prober` trains the probes of :func:`~lrkit.finder.tune_lr` (here, one after another, or
a round at once through a :data:`~lrkit.finder.tune_result.ProbeRunner`) and keeps the search's
account of what they cost. A runner elsewhere (``lrkit.finder._ray_probes``, a Ray worker)
rebuilds the same start state and trains each probe with :meth:`Prober.train_probe`, so the
search chooses the same peak wherever its probes ran.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from lrkit._optimizers import SPECS
from lrkit.driver import Scheduler, read_value
from lrkit.engine import (
    BatchStream,
    Engine,
    MetricFn,
    NoHooks,
    TrainingSnapshot,
    Update,
    count_batches,
    data_generators,
    drive,
)
from lrkit.finder.range_test import ProgressFn
from lrkit.finder.tune_result import Probe, ProbeJob, ProbeOutcome, ProbeRunner, ScheduleFn

__all__ = ["Prober", "reseed", "usual_lr"]

logger = logging.getLogger(__name__)

_EVAL_COST = 1.0 / 3.0  # an evaluation batch costs a third of an update: a forward pass only


class Prober:
    """Short runs of the schedule from one snapshot, scored on validation data.

    Args:
        engine: the training core over the model and optimizer (its loss or step function,
            accumulation and scaler).
        snap: the search's start state; every probe starts from it.
        train: the training batches; val: the batches every probe is scored on.
        schedule: ``schedule(peak, steps)``, the user's policy (:meth:`run_round` makes each
            probe's schedule with it).
        metric_fn: the score of a probe, averaged over ``val``; without it the validation loss.
        maximize: ``metric_fn`` is better when higher.
        seed: each probe is reseeded with it (global RNGs and the ``sources``' generators).
        sources: the data whose own generators (a DataLoader's) are reseeded too.
        progress: ``progress(done, total, lr, loss)`` after every update, in the search's units.
        total_units: the search's budget in those units, the ``total`` passed to ``progress``.
        runner: trains the probes of a round elsewhere, all at once; default: here.

    ``spent`` counts the cost of the probes (updates tried, and :attr:`eval_cost` per
    scoring); ``own_lr`` and ``usual_lr`` are the optimizer's learning rate at the start and
    the usual one of its kind, where the search starts when the range test finds no basin.
    """

    def __init__(
        self,
        engine: Engine,
        snap: TrainingSnapshot,
        train: Iterable[Any],
        val: Iterable[Any],
        schedule: ScheduleFn,
        metric_fn: MetricFn | None,
        maximize: bool,
        seed: int,
        sources: Sequence[object],
        progress: ProgressFn | None,
        total_units: float,
        runner: ProbeRunner | None = None,
    ) -> None:
        self.engine, self.snap, self.train, self.val = engine, snap, train, val
        self.schedule, self.metric_fn, self.maximize, self.seed = (
            schedule,
            metric_fn,
            maximize,
            seed,
        )
        self.sources = sources
        self.progress = progress
        self.total_units = total_units
        self.runner = runner
        self.spent = 0.0
        self.val_batches = count_batches(val)
        self.own_lr = max(read_value(g, "lr") for g in engine.optimizer.param_groups)
        self.usual_lr = usual_lr(engine.optimizer)
        self.eval_cost = self.val_batches * _EVAL_COST / engine.accumulation_steps
        self._doing = "before the first probe"
        self._job: ProbeJob | None = None
        self._applied = 0

    def position(self) -> str:
        """Where the probes are, in words: what
        :class:`~lrkit.finder.tune_result.TuneInterrupted` says after Ctrl-C."""
        job = self._job
        if job is None:
            return f"in the probes of the search, {self._doing}"
        what = f"{self._doing} (peak {job.peak:.3g})"
        if self._applied < job.steps:
            done = f"after {self._applied} of its {job.steps} steps"
            return f"in the probes of the search: {what}, {done}"
        return f"in the probes of the search: validating {what}"

    def reseed(self, seed: int | None = None) -> None:
        """The same start for every run: the snapshot's state, then ``seed`` (default: the
        search's)."""
        self.snap.restore()
        reseed(self.seed if seed is None else seed, self.sources, self.engine.device)

    def run_round(
        self, peaks: Sequence[float], steps: int, round_: int, seed_offset: int = 0
    ) -> list[Probe]:
        """One round: ``schedule(peak, steps)`` for each of ``peaks``, each from the start
        state; here one after another, or all at once by the runner. ``seed_offset`` moves the
        seed the probes are reseeded with (another data order and dropout: a repeat)."""
        seed = self.seed + seed_offset
        jobs = [ProbeJob(p, steps, round_, self.schedule(p, steps), seed) for p in peaks]
        outcomes: list[ProbeOutcome] = []
        if self.runner is None:
            for k, job in enumerate(jobs):
                self._doing = (
                    f"probe {k + 1} of {len(jobs)} of round {round_}"
                    if len(jobs) > 1
                    else f"the probe of round {round_}"
                )
                outcomes.append(self.train_probe(job, self.spent))
                self.charge(outcomes[-1])
            return [o.probe for o in outcomes]
        self._job = None
        self._doing = f"while the runner trained the {len(jobs)} probes of round {round_}"
        outcomes = list(self.runner(jobs))
        if len(outcomes) != len(jobs):
            raise RuntimeError(f"the probe runner gave {len(outcomes)} outcomes for {len(jobs)}")
        for job, out in zip(jobs, outcomes, strict=True):
            self.charge(out)
            if self.progress is not None:
                self.progress(int(self.spent), int(self.total_units), job.peak, out.loss)
        return [o.probe for o in outcomes]

    def charge(self, out: ProbeOutcome) -> None:
        """Add a probe's cost to what the search spent."""
        self.spent += out.updates + (self.eval_cost if out.evaluated else 0.0)

    def train_probe(self, job: ProbeJob, spent: float = 0.0) -> ProbeOutcome:
        """Train ``job.lr`` from the start state and score it (``spent``: the search's cost so
        far, for the progress callback)."""
        self._job, self._applied = job, 0
        self.reseed(job.seed)
        driver = Scheduler(self.engine.optimizer, lr=job.lr)
        self.engine.model.train()
        hooks = _ProbeHooks(self, driver, spent)
        done = drive(self.engine, BatchStream(self._order(job)), job.steps, hooks, scheduler=driver)
        diverged = done.stop in ("nonfinite", "skipped")
        updates, loss, steps = done.updates, hooks.loss, job.steps
        score = val_loss = math.nan
        evaluated = not diverged
        if evaluated:
            self._applied = steps
            found = self.engine.evaluate(self.val, self.metric_fn)
            score = found.metric if self.metric_fn is not None else found.loss
            val_loss = found.loss
            diverged = not math.isfinite(score)
        logger.info("probe peak=%.4g, %d steps: score %.5g", job.peak, steps, score)
        probe = Probe(
            job.peak,
            steps,
            math.nan if diverged else score,
            diverged,
            job.round,
            math.nan if diverged else val_loss,
        )
        return ProbeOutcome(probe, updates, evaluated, loss)

    def _order(self, job: ProbeJob) -> Iterable[Any]:
        """The training batches of ``job``: a list of batches in its own order when the job's
        seed is not the search's (a repeat; a loader reshuffles by its reseeded generator)."""
        if job.seed == self.seed or not isinstance(self.train, Sequence):
            return self.train
        order = np.random.default_rng(job.seed).permutation(len(self.train))
        return [self.train[int(i)] for i in order]

    def start_loss(self, before: str = "the walk of probes") -> float:
        """The validation loss of the start state, before any probe trains (charged as one
        evaluation): what a probe must improve on to count as having learned."""
        self._job = None
        self._doing = f"evaluating the start state, before {before}"
        self.reseed()
        self.spent += self.eval_cost
        return self.engine.evaluate(self.val).loss

    def key(self, p: Probe) -> float:
        """Sort key, best first."""
        if p.diverged:
            return math.inf
        return -p.score if self.maximize else p.score


class _ProbeHooks(NoHooks):
    """A probe's hooks on the update loop: the last training loss, where the probe is (for
    :meth:`Prober.position`) and the search's progress, in its units."""

    def __init__(self, prober: Prober, driver: Scheduler, spent: float) -> None:
        self.prober, self.driver, self.spent = prober, driver, spent
        self.loss = math.nan
        self.updates = 0

    def before(self, step: int) -> None:
        self.updates += 1

    def after(self, step: int, update: Update) -> bool:
        if update.status != "applied":
            return True
        prober = self.prober
        prober._applied = step + 1
        self.loss = update.loss
        if prober.progress is not None:
            lr = self.driver.values()["lr"][0]
            units = int(self.spent + self.updates)
            prober.progress(units, int(prober.total_units), lr, update.loss)
        return False


def reseed(seed: int, sources: Sequence[object], device: torch.device) -> None:
    """Seed Python's, numpy's and torch's global RNGs and the own generators of ``sources``
    (a DataLoader's) with ``seed``, so that a run on ``device`` from here is repeatable."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if device.type == "cpu":
        # torch.manual_seed also queues a seeding of every accelerator backend, which costs
        # about a millisecond a call: as much as tens of updates of a small model
        torch.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)
    for g in data_generators(*sources):
        g.manual_seed(seed)


def usual_lr(optimizer: torch.optim.Optimizer) -> float:
    """The conventional learning rate of the optimizer's kind: lrkit's default for a named
    optimizer class (0.1 for SGD, 1e-3 for Adam and AdamW, ...), else 1e-3 for one with betas
    and 0.1 for the rest."""
    for spec in SPECS.values():
        if type(optimizer) is spec.cls:
            return spec.lr
    return 1e-3 if "betas" in optimizer.param_groups[0] else 0.1
