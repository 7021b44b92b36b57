"""The main job, ``lrkit demo``: lrkit's whole workflow against the default LR and a grid.

One cycle at the peak :func:`lrkit.tune_lr` chooses (a range test, then short probes: about
half a run of compute) and at the range test's suggestion (a fraction of a run), against one
cycle at each peak of a grid a third of a decade apart around the optimizer's usual learning
rate, which includes that usual LR. The grid's best is what a search of seven full runs finds;
the verdict says where lrkit's choices land between the usual LR and that best, with the
compute each costs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .. import schedules as S
from .._ray import Backend, ResourcesLike
from ..finder.range_test import ProgressFn
from .grid_figure import arm_peak
from .recipes import RANGE_COST, TUNE_COST, Context, Recipe, RecipeRun, execute
from .summary import Arm, best_arm, fmt_values, mean_std
from .sweep import Trial, TrialProgressFn

__all__ = [
    "DEMO",
    "DEMO_GRID",
    "DemoChoice",
    "demo_choices",
    "run_demo",
]

DEMO_GRID = tuple(10 ** (k / 3) for k in range(-3, 4))
"""The demo's grid of one-cycle peaks, as multiples of the optimizer's usual LR
(:meth:`Task.lr_for`): seven peaks a third of a decade apart, from a tenth to ten times it."""
TUNED = "tune_lr"
RANGE = "range test"
GRID = "grid"
USUAL = "(usual LR)"
"""Label words of the demo's arms: ``tune_lr peak=…``, ``range test peak=…`` and ``grid
peak=…``; the grid's arm at the usual LR ends with ``(usual LR)``."""


def _demo(ctx: Context) -> list[Trial]:
    opt = ctx.task.optimizer
    usual = ctx.task.lr_for(opt)
    base, peak = ctx.tuned(opt)
    _, suggested = ctx.bounds(opt, "one_cycle")
    n = ctx.steps
    trials = ctx.trials(f"{TUNED} peak={peak:.3g}", opt, S.one_cycle(peak, n, start=base))
    trials += ctx.trials(f"{RANGE} peak={suggested:.3g}", opt, S.one_cycle(suggested, n))
    for factor in DEMO_GRID:
        p = usual * factor
        tail = f" {USUAL}" if math.isclose(factor, 1.0) else ""
        trials += ctx.trials(f"{GRID} peak={p:.3g}{tail}", opt, S.one_cycle(p, n))
    return trials


@dataclass(frozen=True)
class DemoChoice:
    """Where one way of choosing the peak lands: its arm, the peak, the mean and standard
    deviation of the final metric over seeds, the shortfall from the grid's best and twice its
    standard error, the normalised regret ``(best − mean) / (best − the grid's median)`` (0: the
    grid's best; 1: its median) and the compute it costs in runs (the search's own share plus
    the run it chose)."""

    name: str
    arm: Arm
    peak: float
    mean: float
    std: float
    shortfall: float
    two_se: float
    regret: float
    runs: float


def _two_se(a: Arm, b: Arm) -> float:
    """Twice the standard error of the difference of two arms' mean final metrics."""
    var = 0.0
    for arm in (a, b):
        finite = [x for x in arm.final_metrics() if math.isfinite(x)]
        if len(finite) > 1:
            var += float(np.var(finite, ddof=1)) / len(finite)
    return 2.0 * math.sqrt(var)


def demo_choices(arms: Sequence[Arm], costs: dict[str, float]) -> list[DemoChoice] | None:
    """``tune_lr``, the range test, the usual LR and the grid's best as :class:`DemoChoice`
    (in that order), measured against the grid's best; ``costs`` gives the search's share of a
    run (:attr:`Context.costs`). ``None`` when an arm has no final metric."""
    grid = [a for a in arms if a.label.startswith(GRID)]
    best = best_arm(grid)
    picked = {
        TUNED: next((a for a in arms if a.label.startswith(TUNED)), None),
        RANGE: next((a for a in arms if a.label.startswith(RANGE)), None),
        "usual LR": next((a for a in grid if a.label.endswith(USUAL)), None),
        "grid's best": best,
    }
    if best is None or any(a is None or not a.histories for a in picked.values()):
        return None
    top = mean_std(best.final_metrics())[0]
    median = float(np.median([mean_std(a.final_metrics())[0] for a in grid]))
    spread = top - median
    extra = {TUNED: costs.get(TUNE_COST, math.nan), RANGE: costs.get(RANGE_COST, math.nan)}
    out = []
    for name, arm in picked.items():
        if arm is None:  # checked above; narrows the type
            continue
        mean, std = mean_std(arm.final_metrics())
        runs = float(len(grid)) if name == "grid's best" else 1.0
        out.append(
            DemoChoice(
                name,
                arm,
                arm_peak(arm),
                mean,
                std,
                top - mean,
                _two_se(arm, best),
                (top - mean) / spread if spread > 0 else 0.0,
                runs + extra.get(name, 0.0),
            )
        )
    return out


def _demo_findings(ctx: Context, arms: list[Arm]) -> list[str]:
    metric = ctx.task.metric_name
    choices = demo_choices(arms, ctx.costs)
    if choices is None:
        return [f"verdict: not judged: an arm has no final {metric}"]
    tuned, _, usual, best = choices
    grid = [a for a in arms if a.label.startswith(GRID)]
    peaks = [arm_peak(a) for a in grid]
    lines = [
        f"grid: one cycle at {len(grid)} peaks from {min(peaks):.3g} to {max(peaks):.3g}, a "
        f"third of a decade apart ({len(grid)} runs); best peak {best.peak:.3g}, final "
        f"{metric} {fmt_values(best.arm.final_metrics())}"
    ]
    if best.peak in (min(peaks), max(peaks)):
        lines.append("the grid's best peak sits at its end: a wider grid may find a better one")
    for c in choices[:3]:
        lines.append(
            f"{c.name}: peak {c.peak:.3g}, final {metric} {fmt_values(c.arm.final_metrics())}, "
            f"{c.shortfall:.3g} below the grid's best (2 SE {c.two_se:.2g}), normalised regret "
            f"{c.regret:.2f}; cost {c.runs:.2f} runs"
        )
    gain = tuned.mean - usual.mean
    noise = _two_se(tuned.arm, usual.arm)
    if tuned.shortfall <= tuned.two_se:
        lines.append(
            f"verdict: the claim held: one cycle at tune_lr's peak ends within the noise of the "
            f"grid's best ({tuned.shortfall:.3g} below, 2 SE {tuned.two_se:.2g}) at "
            f"{tuned.runs:.2f} runs of compute instead of {best.runs:.0f}"
        )
    elif gain >= -noise:
        lines.append(
            f"verdict: the claim held partly: one cycle at tune_lr's peak ends "
            f"{'above' if gain > noise else 'level with'} the usual LR ({gain:+.3g}, 2 SE "
            f"{noise:.2g}) but {tuned.shortfall:.3g} below the grid's best (2 SE "
            f"{tuned.two_se:.2g}), which cost {best.runs:.0f} runs"
        )
    else:
        lines.append(
            f"verdict: the claim did not hold: one cycle at tune_lr's peak ends {-gain:.3g} "
            f"below the usual LR (2 SE {noise:.2g})"
        )
    return lines


DEMO = Recipe(
    "demo",
    "One cycle at the peak lrkit tunes (a range test, then short probes: about 1.5 runs of "
    "compute with the run itself) ends within the noise of the best of a grid of seven peaks "
    "a third of a decade apart (seven runs), and at least as well as the optimizer's usual LR.",
    "Smith 2018, arXiv 1803.09820 (the range test and one cycle); Smith & Topin 2017, "
    "arXiv 1708.07120.",
    _demo,
    _demo_findings,
    evals_per_epoch=4,
    headline=(TUNED, GRID),
    peak_grid=GRID,
)
"""What ``lrkit demo`` runs: one cycle at ``tune_lr``'s peak, at the range test's suggestion
and at each peak of :data:`DEMO_GRID`; every arm is evaluated four times per epoch."""


def run_demo(
    task: str = "mnist1d-cnn-paper",
    *,
    out: str | os.PathLike[str] = "runs/demo",
    seeds: int = 3,
    epochs: float | None = None,
    workers: int | None = None,
    progress: TrialProgressFn | None = None,
    tune_progress: ProgressFn | None = None,
    log: Callable[[str], None] | None = None,
    backend: Backend = "local",
    address: str | None = None,
    resources: ResourcesLike | None = None,
) -> RecipeRun:
    """lrkit's workflow on ``task`` against the usual LR and a grid of peaks.

    Tunes the one-cycle peak (:func:`lrkit.tune_lr`: the range test, then short probes, half a
    run's budget) and takes the range test's suggestion (:func:`lrkit.finder.find_lr`), then
    trains one cycle for the task's epochs (or ``epochs``) at each, and at each peak of
    :data:`DEMO_GRID` times the optimizer's usual LR (:meth:`Task.lr_for`), every arm over
    ``seeds`` seeds, evaluated four times per epoch; the results are stored in ``out``
    (resumable).

    The findings give the grid's best peak and, for tune_lr, the range test and the usual LR,
    the final metric, the shortfall from the grid's best with twice its standard error, the
    normalised regret and the compute in runs; the verdict: held when tune_lr's peak ends
    within two standard errors of the grid's best, partly when it ends at least level with the
    usual LR (within two standard errors), and not otherwise. ``tune_progress`` follows the
    tuning as :func:`lrkit.range_test`'s ``progress``; ``progress`` the trials, as in
    :func:`run_trials`. ``backend``, ``address`` and ``resources`` as in :func:`run_recipe`."""
    return execute(
        DEMO,
        task,
        seeds=seeds,
        out=out,
        epochs=epochs,
        peak=None,
        workers=workers,
        progress=progress,
        tune_progress=tune_progress,
        log=log,
        backend=backend,
        address=address,
        resources=resources,
    )
