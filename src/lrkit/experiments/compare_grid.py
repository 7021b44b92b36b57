"""``compare``: an ad-hoc grid of optimizers and schedules on a task, run as a recipe."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from .. import schedules as S
from .._ray import Backend, ResourcesLike
from ..schedules import Policy
from ..train.optimizers import OPTIMIZERS, cycles_momentum
from .context import Context
from .recipe_run import Recipe, RecipeRun, execute
from .summary import ranking_findings
from .sweep import Trial, TrialProgressFn

__all__ = ["SCHEDULE_NAMES", "compare"]


def compare(
    task: str,
    optimizers: Sequence[str],
    schedules: Sequence[str],
    *,
    seeds: int = 3,
    out: str | os.PathLike[str] | None = None,
    epochs: float | None = None,
    peak: float | None = None,
    workers: int | None = None,
    progress: TrialProgressFn | None = None,
    log: Callable[[str], None] | None = None,
    backend: Backend = "local",
    address: str | None = None,
    resources: ResourcesLike | None = None,
) -> RecipeRun:
    """An ad-hoc grid: every optimizer × schedule × seed on a task.

    Schedule names: ``constant`` (the optimizer's default LR), ``one-cycle``, ``triangular``,
    ``triangular2``, ``cosine``, ``warmup-cosine``, ``step`` (x0.1 at 50% and 75%). Peaks come
    from a range test per optimizer (or ``peak``). ``backend``, ``address`` and ``resources``
    as in :func:`run_recipe`.
    """
    _check_names("optimizers", optimizers, tuple(OPTIMIZERS))
    _check_names("schedules", schedules, SCHEDULE_NAMES)

    def build(ctx: Context) -> list[Trial]:
        trials: list[Trial] = []
        for opt in optimizers:
            for name in schedules:
                lr, n = _named_schedule(ctx, opt, name)
                trials += ctx.trials(f"{opt} {name}", opt, lr, steps=n)
        return trials

    recipe = Recipe(
        "compare",
        "An ad-hoc grid of optimizers and schedules.",
        "",
        build,
        lambda ctx, arms: ranking_findings(arms, ctx.task.metric_name),
    )
    return execute(
        recipe,
        task,
        seeds=seeds,
        out=out,
        epochs=epochs,
        peak=peak,
        workers=workers,
        progress=progress,
        log=log,
        extra={"optimizers": list(optimizers), "schedules": list(schedules)},
        backend=backend,
        address=address,
        resources=resources,
    )


SCHEDULE_NAMES = (
    "constant",
    "one-cycle",
    "triangular",
    "triangular2",
    "cosine",
    "warmup-cosine",
    "step",
    "multistep",
)


def _check_names(what: str, names: Sequence[str], known: Sequence[str]) -> None:
    if isinstance(names, str):
        raise TypeError(f"{what} must be a list of names, not the string {names!r}")
    if not names:
        raise ValueError(f"{what} is empty; give one or more of: {', '.join(known)}")
    for name in names:
        if name not in known:
            raise ValueError(f"unknown {what[:-1]} {name!r}; known: {', '.join(known)}")
    twice = sorted({n for n in names if list(names).count(n) > 1})
    if twice:
        raise ValueError(f"{what} lists {', '.join(twice)} more than once")


def _named_schedule(ctx: Context, opt: str, name: str) -> tuple[Policy, int]:
    """A schedule of :func:`lrkit.schedules.named` for ``compare``: the no-finder LR for the
    constant and step decays, Smith's bounds from the range test for the others (cyclical
    momentum with one-cycle where the optimizer uses momentum), whole cycles for the waves."""
    n = ctx.steps
    if name in ("constant", "step", "multistep"):
        return S.named(name, peak=ctx.task.lr_for(opt), steps=n), n
    cyclic = name in ("triangular", "triangular2")
    base, peak = ctx.bounds(opt, "cyclic" if cyclic else "one_cycle")
    if not cyclic:
        momentum = (0.95, 0.85) if cycles_momentum(opt) else None
        return S.named(name, peak=peak, steps=n, base=base, momentum=momentum), n
    half = ctx.cycle_length()
    wave = S.named(name, peak=peak, steps=n, base=base, step_size=half, momentum=None)
    return wave, ctx.whole_cycles(half)
