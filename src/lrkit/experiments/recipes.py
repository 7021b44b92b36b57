"""The literature's experiments as recipes: each states the claim it tests and its source."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import schedules as S
from .._files import check_writable_dir
from .._ray import Backend, Resources, ResourcesLike, ray_session, worker_spec
from ..finder import RangeTestResult
from ..finder.range_test import ProgressFn as SearchProgressFn
from ..finder.search import min_total_steps
from ..finder.smith import CYCLIC_DIVISOR, ONE_CYCLE_DIVISOR
from ..finder.task import find_lr, tune_task
from ..schedules import Hyper, Schedule, check_values
from ..tasks import Task, get_task
from ..train.optimizers import OPTIMIZERS, cycles_momentum
from .report import write_findings
from .store import RunDir, TrialRecord, check_config, locked
from .summary import (
    Arm,
    group_arms,
    mean_std,
    ranking_findings,
    speedup_findings,
    steps_to,
)
from .sweep import ProgressFn, Trial, check_placement, run_trials
from .transfer import PRETRAINED, optimizer_spread, pretrain, pretrained_task, transfer_pair
from .trial import decode_lr, encode_lr, run_trial

__all__ = [
    "RECIPES",
    "Context",
    "Recipe",
    "RecipeRun",
    "RunInterrupted",
    "compare",
    "get_recipe",
    "run_recipe",
    "steps_to",
]


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
    tune_progress: SearchProgressFn | None = None
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
        lr: float | Schedule | Hyper,
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
    progress: ProgressFn | None,
    log: Callable[[str], None] | None = None,
    extra: dict[str, Any] | None = None,
    backend: Backend = "local",
    tune_progress: SearchProgressFn | None = None,
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
    config = {
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
        rd = RunDir(folder, config, extendable=EXTENDABLE)
        keys = {tr.key for tr in trials}
        rerun = sorted(rd.failed() & keys)
        if log is not None:
            for line in ctx.notes:
                log(line)
            if rerun:
                log(
                    f"running again {len(rerun)} trial(s) that failed in an earlier run: "
                    + ", ".join(rerun)
                )
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


def run_recipe(
    name: str,
    task: str,
    *,
    seeds: int = 3,
    out: str | os.PathLike[str] | None = None,
    epochs: float | None = None,
    peak: float | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
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
    progress: ProgressFn | None = None,
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


def _named_schedule(ctx: Context, opt: str, name: str) -> tuple[float | Schedule | Hyper, int]:
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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)
