"""Running a recipe: its trials built (range tests and searches first), run over seeds into a
resumable run folder, and its findings computed."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import schedules as S
from .._files import check_writable_dir
from .._ray import Backend, ResourcesLike, ray_session, worker_spec
from ..finder.range_test import ProgressFn
from ..schedules import check_values
from ..tasks import Task, get_task
from .context import Context
from .report import write_findings
from .store import RunDir, TrialRecord, check_config, locked
from .summary import Arm, group_arms
from .sweep import Trial, TrialProgressFn, check_placement, run_trials
from .trial import decode_lr, run_trial

__all__ = [
    "EXTENDABLE",
    "Build",
    "Findings",
    "Recipe",
    "RecipeRun",
    "RunInterrupted",
    "execute",
]


Build = Callable[[Context], list[Trial]]
Findings = Callable[[Context, list[Arm]], list[str]]


@dataclass(frozen=True)
class Recipe:
    """An experiment from the literature."""

    name: str
    claim: str
    source: str
    build: Build
    findings: Findings
    evals_per_epoch: int = 2
    """Evaluations per epoch of every trial (:attr:`Context.evals_per_epoch`)."""
    headline: tuple[str, str] | None = None
    """``(claimant, rivals)``: label prefixes of the arm whose speed-up the report's headline
    figure shows and of the arms it is measured against (the best of them by mean final
    metric; :func:`~lrkit.experiments.summary.speedup`). ``None``: no headline figure."""
    peak_grid: str | None = None
    """Label prefix of arms that form a grid of peak LRs: the report then opens with their final
    metric against the peak, every other arm marked at its own peak
    (:func:`~lrkit.experiments.grid_figure.peak_grid_figure`). ``None``: no such figure."""


@dataclass
class RecipeRun:
    """What a finished recipe produced. ``rerun`` names the trials that had failed in an
    earlier run of the same folder and ran again; ``failed`` those that failed this time."""

    recipe: str
    run_dir: Path
    records: list[TrialRecord]
    arms: list[Arm]
    findings: list[str]
    rerun: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[TrialRecord]:
        """Records of the trials that failed."""
        return [r for r in self.records if r.status == "failed"]


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a recipe; what finished is stored in ``run_dir`` (``done`` of ``total``
    trials; ``total`` is ``None`` when the trials were not built yet, as during a range test),
    and the same call resumes it."""

    def __init__(self, run_dir: Path, done: int, total: int | None) -> None:
        if total is None:
            text = f"stopped before the trials started; {run_dir} keeps what finished"
        else:
            text = f"{done} of {total} trials are done and stored in {run_dir}"
        super().__init__(text)
        self.run_dir = run_dir
        self.done = done
        self.total = total


EXTENDABLE = ("seeds", "optimizers", "schedules")
"""Configuration keys that may grow between runs of one folder: the finished trials are reused
and only the new ones run."""


def _check_number(name: str, value: float | None, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def execute(
    recipe: Recipe,
    task: str,
    *,
    seeds: int,
    out: str | os.PathLike[str] | None,
    epochs: float | None,
    peak: float | None,
    workers: int | None,
    progress: TrialProgressFn | None,
    log: Callable[[str], None] | None = None,
    extra: dict[str, Any] | None = None,
    backend: Backend = "local",
    tune_progress: ProgressFn | None = None,
    address: str | None = None,
    resources: ResourcesLike | None = None,
) -> RecipeRun:
    """Run ``recipe`` on ``task``: build its trials (range tests and searches first), run them
    over ``seeds`` seeds into the run folder ``out`` (resumable), and compute its findings. The
    arguments are those of :func:`run_recipe`; ``extra`` joins the run's configuration."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a whole number >= 1, got {seeds!r}")
    _check_number("epochs", epochs, optional=True)
    _check_number("peak", peak, optional=True)
    res = check_placement(workers, backend, address, resources)
    t = get_task(task)
    spec = worker_spec(task) if res is not None else task
    spe = t.steps_per_epoch()
    ep = t.epochs if epochs is None else float(epochs)
    steps = max(10, round(ep * spe))
    folder = Path(out) if out is not None else Path("runs") / f"{recipe.name}-{_slug(t.name)}"
    check_writable_dir(folder)
    config = _run_config(recipe, t, seeds=seeds, steps=steps, peak=peak, extra=extra)
    session = ray_session(address, res) if res is not None else nullcontext()
    with session, locked(folder):
        check_config(folder, config, extendable=EXTENDABLE)
        ctx = Context(
            t, seeds, steps, folder, peak, spe, spec, resources=res,
            evals_per_epoch=recipe.evals_per_epoch, tune_progress=tune_progress,
        )  # fmt: skip
        try:
            trials = recipe.build(ctx)
        except KeyboardInterrupt:
            raise RunInterrupted(folder, 0, None) from None
        _check_trials(trials)
        rd = RunDir(folder, config, extendable=EXTENDABLE)
        keys = {tr.key for tr in trials}
        rerun = sorted(rd.failed() & keys)
        if log is not None:
            _log_start(log, ctx.notes, rerun)
        try:
            records = run_trials(
                trials, run_trial, rd, workers=workers, progress=progress,
                backend=backend, resources=res,
            )  # fmt: skip
        except KeyboardInterrupt:
            done = len(rd.done() & keys)
            raise RunInterrupted(rd.path, done, len(trials)) from None
        arms = group_arms(records)
        findings = ctx.notes + recipe.findings(ctx, arms)
        write_findings(rd.path, findings)
    return RecipeRun(recipe.name, rd.path, records, arms, findings, rerun)


def _run_config(
    recipe: Recipe,
    t: Task,
    *,
    seeds: int,
    steps: int,
    peak: float | None,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    """The configuration of a run of ``recipe`` on ``t``, as its run folder stores it."""
    config: dict[str, Any] = {
        "recipe": recipe.name,
        "title": f"{recipe.name} on {t.name}",
        "claim": recipe.claim,
        "source": recipe.source,
        "task": t.name,
        "metric_name": t.metric_name,
        "seeds": seeds,
        "steps": steps,
        "peak": peak,
        "target": t.target,
        **(extra or {}),
    }
    if recipe.headline is not None:
        config["headline"] = dict(zip(("claimant", "rivals"), recipe.headline, strict=True))
    if recipe.peak_grid is not None:
        config["peak_grid"] = recipe.peak_grid
    return config


def _check_trials(trials: list[Trial]) -> None:
    """``ValueError`` naming the first trial whose LR, or momentum schedule, is NaN, infinite or
    negative (a momentum also at 1 or above) at one of its steps."""
    for trial in trials:
        n = int(trial.config["steps"])
        check_values(decode_lr(trial.config["lr"]), n, f"trial {trial.key}: lr")
        if isinstance(trial.config.get("momentum"), dict):
            check_values(
                S.from_dict(trial.config["momentum"]),
                n,
                f"trial {trial.key}: momentum",
                upper=1.0,
            )


def _log_start(log: Callable[[str], None], notes: list[str], rerun: list[str]) -> None:
    """The notes of the range tests and searches, and the failed trials that run again."""
    for line in notes:
        log(line)
    if rerun:
        log(
            f"running again {len(rerun)} trial(s) that failed in an earlier run: "
            + ", ".join(rerun)
        )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)
