"""The demo: range test, then one-cycle at the suggested peak against a constant LR."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .. import schedules as S
from ..tasks import get_task
from .recipes import Context, RecipeRun, _speedup_findings
from .store import RunDir
from .summary import group_arms
from .sweep import ProgressFn, run_trials
from .trial import run_trial, task_lr

__all__ = ["run_demo"]


def run_demo(
    task: str = "mnist1d-cnn",
    *,
    out: str | os.PathLike[str] = "runs/demo",
    seeds: int = 2,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    log: Callable[[str], None] | None = None,
) -> RecipeRun:
    """Range test on ``task``, then train one-cycle at the suggested peak and the task's
    constant-LR baseline for the same number of steps over ``seeds`` seeds, stored in ``out``
    (resumable). Returns the run with findings: each arm's final metric and steps to the
    constant baseline's final metric."""
    t = get_task(task)
    spe = t.steps_per_epoch()
    steps = t.epochs * spe
    config = {
        "recipe": "demo",
        "title": f"lrkit demo on {t.name}",
        "claim": "The range test's suggestion, used as the one-cycle peak, trains at least as "
        "well as the usual constant learning rate, without a grid search.",
        "source": "Smith 2015 (arXiv 1506.01186); Smith & Topin 2017 (arXiv 1708.07120).",
        "task": t.name,
        "metric_name": t.metric_name,
        "seeds": seeds,
        "steps": steps,
        "target": t.target,
    }
    rd = RunDir(out, config)
    ctx = Context(t, seeds, steps, rd, None, spe, task)
    base, peak = ctx.bounds(t.optimizer, "one_cycle")
    if log is not None:
        for line in ctx.notes:
            log(line)
    lr0 = task_lr(t, t.optimizer)
    trials = ctx.trials(f"constant lr={lr0:g}", t.optimizer, lr0)
    trials += ctx.trials(
        f"one-cycle peak={peak:.3g}", t.optimizer, S.one_cycle(peak, steps, start=base)
    )
    records = run_trials(trials, run_trial, rd, workers=workers, progress=progress)
    arms = group_arms(records)
    findings = ctx.notes + _speedup_findings(arms, arms[0].label, t.metric_name)
    return RecipeRun("demo", Path(rd.path), records, arms, findings)
