"""The literature's experiments as recipes: each states the claim it tests and its source.

A recipe builds its trials from a :class:`~lrkit.experiments.context.Context` and runs with
:func:`~lrkit.experiments.recipe_run.execute`; :func:`compare` runs an ad-hoc grid the same way
(:mod:`lrkit.experiments.compare_grid`)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from .. import schedules as S
from .._ray import Backend, ResourcesLike
from .compare_grid import SCHEDULE_NAMES, compare
from .context import RANGE_COST, TUNE_BUDGET, TUNE_COST, Context
from .recipe_run import (
    EXTENDABLE,
    Build,
    Findings,
    Recipe,
    RecipeRun,
    RunInterrupted,
    execute,
)
from .summary import Arm, mean_std, ranking_findings, speedup_findings, steps_to
from .sweep import Trial, TrialProgressFn
from .transfer import PRETRAINED, optimizer_spread, pretrain, pretrained_task, transfer_pair

__all__ = [
    "EXTENDABLE",
    "RANGE_COST",
    "RECIPES",
    "SCHEDULE_NAMES",
    "TUNE_BUDGET",
    "TUNE_COST",
    "Build",
    "Context",
    "Findings",
    "Recipe",
    "RecipeRun",
    "RunInterrupted",
    "compare",
    "execute",
    "get_recipe",
    "run_recipe",
    "steps_to",
]


def _final(arm: Arm) -> float:
    return mean_std(arm.final_metrics())[0]


# -- 1. clr-vs-fixed ------------------------------------------------------------------------------
def _clr_vs_fixed(ctx: Context) -> list[Trial]:
    opt = ctx.task.optimizer
    base, peak = ctx.bounds(opt, "cyclic")
    half = ctx.cycle_length()
    clr = S.triangular(base, peak, half)
    return ctx.trials("fixed", opt, ctx.task.lr_for(opt)) + ctx.trials(
        "triangular", opt, clr, steps=ctx.whole_cycles(half)
    )


# -- 2. policies ----------------------------------------------------------------------------------
def _policies(ctx: Context) -> list[Trial]:
    opt = ctx.task.optimizer
    base, peak = ctx.bounds(opt, "cyclic")
    half = ctx.cycle_length()
    n = ctx.whole_cycles(half)
    gamma = 0.1 ** (1.0 / n)  # exp_range: the amplitude shrinks to a tenth over the run
    decrease = S.linear(peak, base, half)  # Smith's "decay": down once, then held at base
    trials = ctx.trials("fixed", opt, ctx.task.lr_for(opt), steps=n)
    trials += ctx.trials("triangular", opt, S.triangular(base, peak, half), steps=n)
    trials += ctx.trials("triangular2", opt, S.triangular2(base, peak, half), steps=n)
    trials += ctx.trials("exp_range", opt, S.exp_range(base, peak, half, gamma), steps=n)
    trials += ctx.trials("decrease-only", opt, decrease, steps=n)
    return trials


# -- 3. optimizers --------------------------------------------------------------------------------
ADAPTIVE = ("adagrad", "adadelta", "rmsprop", "adam", "adamax")


def _optimizers(ctx: Context) -> list[Trial]:
    trials: list[Trial] = []
    for opt in ADAPTIVE:
        trials += ctx.trials(opt, opt, ctx.task.lr_for(opt))
    base, peak = ctx.bounds("sgd", "cyclic")
    half = ctx.cycle_length()
    trials += ctx.trials(
        "sgd+clr", "sgd", S.triangular(base, peak, half), steps=ctx.whole_cycles(half)
    )
    return trials


# -- 4. super-convergence -------------------------------------------------------------------------
def _super_convergence(ctx: Context) -> list[Trial]:
    opt = ctx.task.optimizer
    lr0 = ctx.task.lr_for(opt)
    n = ctx.steps
    short = max(10, n // 4)
    base, peak = ctx.tuned(opt, short)
    trials = ctx.trials("constant", opt, lr0)
    trials += ctx.trials("step-decay", opt, S.multistep(lr0, (n // 2, n * 3 // 4)))
    trials += ctx.trials("one-cycle", opt, S.one_cycle(peak, short, start=base), steps=short)
    if opt in ("sgd", "rmsprop", "adam", "adamw", "adamax"):
        fixed_mom = S.one_cycle(peak, short, start=base, momentum=None)
        trials += ctx.trials("one-cycle, constant momentum", opt, fixed_mom, steps=short)
    return trials


# -- 5. weight decay ------------------------------------------------------------------------------
WEIGHT_DECAYS = (1e-3, 1e-4, 1e-5, 0.0)


def _weight_decay(ctx: Context) -> list[Trial]:
    opt = ctx.task.optimizer
    base, peak = ctx.tuned(opt)
    trials: list[Trial] = []
    for wd in WEIGHT_DECAYS:
        sched = S.one_cycle(peak, ctx.steps, start=base)
        trials += ctx.trials(f"wd={wd:g}", opt, sched, weight_decay=wd)
    return trials


# -- 6. baseline-vs-clr ---------------------------------------------------------------------------
def _baseline_vs_clr(ctx: Context) -> list[Trial]:
    bs = ctx.task.batch_size
    big = bs * 10
    spe_big = ctx.task.steps_per_epoch(big)
    epochs = max(1, round(ctx.steps / ctx.steps_per_epoch))
    steps_big = max(2, epochs * spe_big)
    base, peak = ctx.bounds("adam", "cyclic", batch_size=big)
    half = max(1, min(steps_big // 2, 4 * spe_big))
    clr = S.triangular(base, peak, half)
    trials = ctx.trials(f"adam lr=1e-3, batch {bs}", "adam", 1e-3, batch_size=bs)
    trials += ctx.trials(
        f"adam + triangular CLR, batch {big}", "adam", clr, steps=steps_big, batch_size=big
    )
    return trials


def _baseline_findings(ctx: Context, arms: list[Arm]) -> list[str]:
    lines = []
    for a in arms:
        err = 1.0 - _final(a)
        secs = mean_std(a.train_seconds())[0]
        lines.append(f"{a.label}: error {100 * err:.2f}%, {secs:.1f} s training (mean of seeds)")
    return lines


# -- 7. transfer ----------------------------------------------------------------------------------
def _transfer(ctx: Context) -> list[Trial]:
    pair = transfer_pair(ctx.task.name)
    backbone = pretrain(pair.source, ctx.folder / PRETRAINED)
    ctx.notes.append(backbone.describe())
    spec = backbone.spec(pair)
    fine_ctx = dataclasses.replace(ctx, task=pretrained_task(ctx.task, spec), variant="pretrained")
    trials: list[Trial] = []
    for fine, scratch in zip(_optimizers(fine_ctx), _optimizers(ctx), strict=True):
        trials.append(_variant(fine, "pretrained", {"pretrained": spec}))
        trials.append(_variant(scratch, "from scratch", {}))
    return trials


def _variant(trial: Trial, variant: str, extra: dict[str, Any]) -> Trial:
    arm = f"{trial.config['arm']} ({variant})"
    return Trial(f"{arm}/seed={trial.config['seed']}", {**trial.config, "arm": arm, **extra})


def _transfer_findings(ctx: Context, arms: list[Arm]) -> list[str]:
    metric = ctx.task.metric_name
    lines = ranking_findings(arms, metric)
    spread = {
        v: optimizer_spread([a for a in arms if a.label.endswith(f"({v})")])
        for v in ("pretrained", "from scratch")
    }
    for v, s in spread.items():
        lines.append(
            f"spread between the optimizers, {v}: their mean final {metric} spans "
            f"{s['range']:.3g} (best minus worst), std {s['std']:.2g} across the {s['n']:g}"
        )
    if ctx.seeds < 2:
        lines.append("(one seed per arm: no spread over seeds to tell a difference from noise)")
    fine, scratch = spread["pretrained"]["range"], spread["from scratch"]["range"]
    n = len(ADAPTIVE) + 1
    if spread["pretrained"]["n"] < n or spread["from scratch"]["n"] < n:
        lines.append(f"verdict: not judged: not every optimizer has a final {metric} both ways")
    elif fine < scratch:
        lines.append(
            f"verdict: the claim held: the optimizers' spread in final {metric} shrinks from "
            f"{scratch:.3g} from scratch to {fine:.3g} with the pretrained backbone"
        )
    else:
        lines.append(
            f"verdict: the claim did not hold: the optimizers' spread in final {metric} is "
            f"{fine:.3g} with the pretrained backbone and {scratch:.3g} from scratch"
        )
    return lines


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe(
            "clr-vs-fixed",
            "A triangular cyclical LR reaches the fixed LR's final accuracy in far fewer "
            "iterations.",
            "Smith 2015, Cyclical Learning Rates for Training Neural Networks, arXiv 1506.01186 "
            "(CIFAR-10: fixed 81.4% at 70k iterations, triangular2 81.4% at 25k).",
            _clr_vs_fixed,
            lambda ctx, arms: speedup_findings(
                arms, "fixed", ctx.task.metric_name, claimant="triangular"
            ),
        ),
        Recipe(
            "policies",
            "Triangular, triangular2 and exp_range all work; the decrease-only ablation is worse, "
            "so both the increase and the decrease matter.",
            "Smith 2015, Table 1 (decrease-only 78.5% vs triangular2 81.4% at 25k iterations).",
            _policies,
            lambda ctx, arms: ranking_findings(
                arms,
                ctx.task.metric_name,
                claimant=("triangular", "triangular2", "exp_range"),
                rivals=("decrease-only",),
            ),
        ),
        Recipe(
            "optimizers",
            "SGD with a cyclical LR is competitive with adaptive optimizers (Adagrad, Adadelta, "
            "RMSprop, Adam, Adamax) at their default LRs.",
            "Smith 2015, Table 3; the PyTorch comparison of adaptive optimizers vs CLR (SGD+CLR, "
            "Adam and Adadelta all near 83% over 3 runs).",
            _optimizers,
            lambda ctx, arms: ranking_findings(
                arms, ctx.task.metric_name, claimant=("sgd+clr",), rivals=ADAPTIVE, share=0.5
            ),
        ),
        Recipe(
            "super-convergence",
            "One cycle (peak from tune_lr) reaches the baselines' final accuracy in a "
            "fraction of the iterations; cyclical momentum helps.",
            "Smith & Topin 2017, Super-Convergence, arXiv 1708.07120 (ResNet-56 on CIFAR-10: "
            "92.4% after 10k iterations vs 91.2% after 80k); Smith 2018, arXiv 1803.09820.",
            _super_convergence,
            lambda ctx, arms: speedup_findings(
                arms, "constant", ctx.task.metric_name, claimant="one-cycle"
            ),
        ),
        Recipe(
            "weight-decay",
            "Weight decay matters with one cycle; search 1e-3, 1e-4, 1e-5 and 0 and keep it "
            "constant.",
            "Smith 2018, A disciplined approach to neural network hyper-parameters, arXiv "
            "1803.09820.",
            _weight_decay,
            lambda ctx, arms: ranking_findings(arms, ctx.task.metric_name, differ=True),
        ),
        Recipe(
            "baseline-vs-clr",
            "Adam with a triangular CLR and a 10x larger batch reaches a lower error in less "
            "time than Adam at a fixed LR.",
            "The Keras CyclicLR tutorial on MNIST: 784-784-10 MLP, Adam, batch 200: 1.91% error "
            "in 86 s; with triangular CLR and batch 2000: 1.64% in 43 s.",
            _baseline_vs_clr,
            _baseline_findings,
        ),
        Recipe(
            "transfer",
            "With a pretrained network the optimizers' differences shrink: fine-tuned, SGD with "
            "a cyclical LR and the adaptive optimizers end closer together than from scratch.",
            "The PyTorch comparison of adaptive optimizers vs CLR, second experiment (a "
            "pretrained ResNet34). Offline here: a backbone pretrained here on MNIST-1D digits "
            "0-4, fine-tuned on digits 5-9 with its first two convolutions frozen, against the "
            "optimizers recipe from scratch on the same target.",
            _transfer,
            _transfer_findings,
        ),
    ]
}


def get_recipe(name: str) -> Recipe:
    """A recipe by name; an unknown name lists the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}") from None


def run_recipe(
    name: str,
    task: str,
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
    """Run a recipe on a task: the range test (when needed), every arm over ``seeds`` seeds on
    a process pool, stored durably in ``out`` (restart with the same arguments to resume).

    ``epochs`` scales the baseline budget (default: the task's epochs); ``peak`` skips the range
    test and uses this LR as the peak; ``log`` receives the range test's findings before the
    training starts.

    ``backend="ray"`` runs the trials, and the probes of a tuned peak, as Ray tasks on the
    cluster at ``address`` (``None``: ``RAY_ADDRESS``, else a Ray instance started on this
    machine), each reserving ``resources`` (:class:`~lrkit.experiments.Resources` or a dict;
    default one CPU); the results store behaves as with the local pool (see
    :func:`~lrkit.experiments.run_trials`). The task must then be a built-in task or a
    ``"module:function"`` spec importable on the cluster's nodes.
    """
    return execute(
        get_recipe(name),
        task,
        seeds=seeds,
        out=out,
        epochs=epochs,
        peak=peak,
        workers=workers,
        progress=progress,
        log=log,
        backend=backend,
        address=address,
        resources=resources,
    )
