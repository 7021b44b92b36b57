"""What a recipe builds its trials from: the task, the budget, the run folder, and the peaks
from range tests and :func:`lrkit.tune_lr` searches (cached in the run folder)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._ray import Resources
from ..finder import RangeTestResult
from ..finder.range_test import ProgressFn
from ..finder.search import min_total_steps
from ..finder.smith import CYCLIC_DIVISOR, ONE_CYCLE_DIVISOR
from ..finder.task import find_lr, tune_task
from ..schedules import Policy, Schedule
from ..tasks import Task
from .sweep import Trial
from .trial import encode_lr

__all__ = ["RANGE_COST", "TUNE_BUDGET", "TUNE_COST", "Context"]


TUNE_BUDGET = 0.5
"""The budget of the recipes' :func:`lrkit.tune_lr` searches, a fraction of the run tuned for."""
TUNE_COST = "tune_lr"
RANGE_COST = "range test"
"""The keys of :attr:`Context.costs`."""


@dataclass
class Context:
    """What a recipe needs to build its trials."""

    task: Task
    seeds: int
    steps: int
    folder: Path
    peak: float | None = None
    steps_per_epoch: int = 1
    spec: str = ""
    notes: list[str] = field(default_factory=list)
    resources: Resources | None = None
    """The resources of one Ray task when the recipe runs on Ray (``None``: locally)."""
    variant: str = ""
    """A word for a variant of the task (``"pretrained"``) in the names of its cached range
    tests and in the notes, so that a recipe can range-test two variants of one task."""
    evals_per_epoch: int = 2
    """Evaluations per epoch of every trial: steps to a target are measured to this fraction
    of an epoch."""
    tune_progress: ProgressFn | None = None
    """Called as the range test and :func:`lrkit.tune_lr`'s probes train (steps done, steps in
    all, LR, loss), as :func:`lrkit.range_test`'s ``progress``."""
    costs: dict[str, float] = field(default_factory=dict)
    """What finding the peak cost, in fractions of the recipe's run: ``"tune_lr"`` (the
    search's :attr:`~lrkit.finder.TuneResult.spent`, its range test included) and ``"range
    test"`` (the plain range test's steps over the run's), once each has run."""

    @property
    def eval_every(self) -> int:
        """Steps between evaluations: :attr:`evals_per_epoch` times per epoch (twice by
        default, so steps to a target are measured to half an epoch)."""
        return max(1, self.steps_per_epoch // self.evals_per_epoch)

    def range_test(self, optimizer: str, batch_size: int | None = None) -> RangeTestResult:
        """The task's range test for ``optimizer`` (cached in the run directory). A test stopped
        by Ctrl-C stops the recipe (``KeyboardInterrupt``) instead of giving bounds."""
        bs = batch_size or self.task.batch_size
        name = f"{optimizer}-{self.variant}" if self.variant else optimizer
        cache = self.folder / "range_tests" / f"{name}-batch{bs}.json"
        result = find_lr(
            self.task, optimizer, batch_size=bs, cache=cache, progress=self.tune_progress
        )
        if result.stop_reason == "interrupted":
            raise KeyboardInterrupt
        return result

    def bounds(
        self, optimizer: str, kind: str = "one_cycle", batch_size: int | None = None
    ) -> tuple[float, float]:
        """``(base, peak)`` from the range test, or from ``--peak`` when given."""
        if self.peak is not None:
            divisor = ONE_CYCLE_DIVISOR if kind == "one_cycle" else CYCLIC_DIVISOR
            return self.peak / divisor, self.peak
        result = self.range_test(optimizer, batch_size)
        sug = result.suggest()
        if sug.lr is None:
            raise ValueError(
                f"the range test of {self.task.name} with {optimizer} found no clear descent "
                f"({sug.reason}); give the peak yourself with --peak"
            )
        base, peak = result.bounds(kind)  # type: ignore[arg-type]
        sweeps = len(result.lrs) * max(1, len(result.repeat_losses))
        self.costs[RANGE_COST] = (sweeps + (result.extended_from or 0)) / self.steps
        what = f"{optimizer}, {self.variant}" if self.variant else optimizer
        divisor = ONE_CYCLE_DIVISOR if kind == "one_cycle" else CYCLIC_DIVISOR
        schedule = "one cycle" if kind == "one_cycle" else "cyclical schedules"
        note = (
            f"range test ({what}, batch {batch_size or self.task.batch_size}): suggested "
            f"peak {peak:.3g} (band {sug.low:.3g}–{sug.high:.3g}); for {schedule} the base is "
            f"peak/{divisor:g} = {base:.3g}"
        )
        if note not in self.notes:
            self.notes.append(note)
        return base, peak

    def tuned(self, optimizer: str, steps: int | None = None) -> tuple[float, float]:
        """``(base, peak)`` of a one-cycle run of ``steps`` (default: the recipe's) with the peak
        from :func:`lrkit.tune_lr` at half a run's budget (cached in the run directory), or from
        ``--peak`` when given."""
        n = self.steps if steps is None else steps
        if self.peak is not None:
            return self.peak / ONE_CYCLE_DIVISOR, self.peak
        if n < min_total_steps(TUNE_BUDGET):
            self.notes.append(
                f"a one-cycle run of {n} steps is too short for tune_lr (at least "
                f"{min_total_steps(TUNE_BUDGET)} at a budget of {TUNE_BUDGET:g}): the peak is "
                "the range test's suggestion"
            )
            return self.bounds(optimizer, "one_cycle")
        cache = self.folder / "tune" / f"{optimizer}-{n}steps.json"
        on_ray = self.resources is not None  # the probes on the cluster this recipe is connected to
        result = tune_task(
            (self.spec or self.task) if on_ray else self.task, optimizer, budget=TUNE_BUDGET,
            total_steps=n, cache=cache, progress=self.tune_progress,
            backend="ray" if on_ray else "local", resources=self.resources,
        )  # fmt: skip
        self.costs[TUNE_COST] = result.spent
        self.notes.append(
            f"tune_lr ({optimizer}, {n} steps, {result.spent:.2f} of a run): peak "
            f"{result.peak:.3g} (range test suggestion {result.range_test.suggestion or 0:.3g})"
        )
        return result.peak / ONE_CYCLE_DIVISOR, result.peak

    def trials(
        self,
        arm: str,
        optimizer: str,
        lr: float | Policy,
        *,
        steps: int | None = None,
        momentum: float | Schedule | None = None,
        weight_decay: float = 0.0,
        batch_size: int | None = None,
    ) -> list[Trial]:
        """One trial per seed of one arm."""
        out = []
        for seed in range(self.seeds):
            cfg: dict[str, Any] = {
                "arm": arm,
                "task": self.spec or self.task.name,
                "seed": seed,
                "optimizer": optimizer,
                "lr": encode_lr(lr),
                "steps": steps or self.steps,
                "weight_decay": weight_decay,
                "eval_every": self.eval_every,
                "target": self.task.target,
            }
            if momentum is not None:
                cfg["momentum"] = (
                    momentum.to_dict() if isinstance(momentum, Schedule) else float(momentum)
                )
            if batch_size is not None:
                cfg["batch_size"] = batch_size
                cfg["eval_every"] = max(
                    1, self.task.steps_per_epoch(batch_size) // self.evals_per_epoch
                )
            out.append(Trial(f"{arm}/seed={seed}", cfg))
        return out

    def cycle_length(self, epochs: float = 2.0) -> int:
        """Half a cycle of ``epochs`` epochs (Smith 2015: 2-10 epochs per half cycle)."""
        return max(1, round(epochs * self.steps_per_epoch))

    def whole_cycles(self, half: int, steps: int | None = None) -> int:
        """The largest number of steps made of whole cycles (Smith: stop at a cycle's end)."""
        n = steps or self.steps
        return max(2 * half, (n // (2 * half)) * 2 * half)
