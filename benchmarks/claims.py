"""The papers' claims, measured: one table of what the CLR and one-cycle literature claims, the
figure its source published, what lrkit measures on an offline task, and a verdict.

Each claim is tested by one of lrkit's recipes (:func:`lrkit.experiments.run_recipe`, local
process pool, 3 seeds) on the task of the paper's regime: the MNIST-1D paper's plain CNN with SGD
(``mnist1d-cnn-paper``, no normalization) for the CLR and one-cycle claims, the MNIST-1D MLP
(``mnist1d-mlp``) for the Keras tutorial's MLP, and MNIST-1D digits 5-9 (``mnist1d-5to9-paper``)
for transfer learning. Super-convergence and cyclical momentum are read from
``time_to_accuracy.py``'s cached trials (``runs/bench-tta``) when they hold every trial of
``mnist1d-cnn-paper``; otherwise the ``super-convergence`` recipe runs on that task here.

Every verdict is decided by a rule from the numbers (``NOISE`` = 2 standard errors of the
difference of two means over seeds):

- *better* ("A beats B"): holds when A's mean final accuracy exceeds B's by more than ``NOISE``
  standard errors; partly when it exceeds it by less; not here otherwise.
- *at least* ("A works as well as B"): holds when A's mean is at or above B's; partly when it is
  below by no more than ``NOISE`` standard errors; not here otherwise.
- *competitive* (SGD+CLR vs the adaptive optimizers): holds when SGD+CLR is *at least* as good
  as the best adaptive optimizer (partly included, i.e. not below it beyond the noise); partly
  when it is at or above half of them; not here otherwise.
- *speed-up* ("A reaches B's final accuracy in fewer steps"): the target is B's mean final
  accuracy; B's steps per seed are its first evaluation at the target (its last step when it
  never gets there). Holds when every seed of A reaches the target and B's mean steps over A's
  are at least the factor (``CLR_SPEEDUP`` for CLR, ``SC_SPEEDUP`` for super-convergence);
  partly when some seed reaches it and the ratio is above 1; not here otherwise.
- *error and time* (the Keras tutorial): holds when Adam+CLR at the 10x batch has both the lower
  mean error and the shorter mean training time; partly when one of the two; not here when
  neither.
- *spread* (transfer learning): holds when the pretrained optimizers' spread (best minus worst
  mean final accuracy) is at most ``SPREAD_SHRINK`` of the spread from scratch; partly when it
  is smaller but not that much; not here otherwise.
- over several budgets (cyclical momentum): holds when *better* holds at every budget, not here
  when it is not here at every budget, partly otherwise.

Runs are cached under ``runs/bench-claims/<recipe>-<task>`` (resumable). Run from benchmarks/:

    python claims.py [--seeds 3] [--epochs E] [--out DIR] [--workers N] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lrkit.experiments import RunDir, run_recipe
from lrkit.experiments.recipes import ADAPTIVE, RecipeRun
from lrkit.experiments.store import TrialRecord
from lrkit.experiments.summary import Arm, mean_std, steps_to
from lrkit.experiments.transfer import optimizer_spread
from lrkit.tasks import get_task
from lrkit.train.history import History

from _report import README, machine, write_section

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "runs" / "bench-claims"
SEEDS = 3
NOISE = 2.0  # standard errors a difference of means must exceed to count beyond the noise
CLR_SPEEDUP = 2.0  # "far fewer iterations": Smith 2015 reports 70k / 25k = 2.8x
SC_SPEEDUP = 3.0  # the time-to-accuracy target (Smith & Topin report about 8x)
SPREAD_SHRINK = 0.5  # transfer: the pretrained spread at most half the one from scratch
SC_TASK = "mnist1d-cnn-paper"

HOLDS, PARTLY, NOT_HERE = "holds", "partly", "not here"

TASKS: dict[str, str] = {
    "clr-vs-fixed": "mnist1d-cnn-paper",
    "policies": "mnist1d-cnn-paper",
    "optimizers": "mnist1d-cnn-paper",
    "weight-decay": "mnist1d-cnn-paper",
    "baseline-vs-clr": "mnist1d-mlp",
    "transfer": "mnist1d-5to9-paper",
}
"""The recipes this script runs, each on the task of its claim's regime."""


# -- verdict rules ------------------------------------------------------------------------------
def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def gap(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """``mean(a) - mean(b)`` and its standard error ``sqrt(var_a/n_a + var_b/n_b)`` (sample
    variances over seeds; NaN when a side has fewer than two finite values)."""
    xa, xb = _finite(a), _finite(b)
    if not xa or not xb:
        return math.nan, math.nan
    d = float(np.mean(xa) - np.mean(xb))
    if len(xa) < 2 or len(xb) < 2:
        return d, math.nan
    se = math.sqrt(float(np.var(xa, ddof=1)) / len(xa) + float(np.var(xb, ddof=1)) / len(xb))
    return d, se


def rule_better(d: float, se: float) -> str:
    """A beats B: ``d = mean(A) - mean(B)`` above ``NOISE`` standard errors holds, above 0
    partly (with one seed, no standard error: at most partly)."""
    if not math.isfinite(d) or d <= 0:
        return NOT_HERE
    if math.isfinite(se) and d > NOISE * se:
        return HOLDS
    return PARTLY


def rule_at_least(d: float, se: float) -> str:
    """A works as well as B: ``d >= 0`` holds, ``d`` within ``NOISE`` standard errors below 0
    partly."""
    if not math.isfinite(d):
        return NOT_HERE
    if d >= 0:
        return HOLDS
    if math.isfinite(se) and d >= -NOISE * se:
        return PARTLY
    return NOT_HERE


def rule_competitive(claimant: Sequence[float], rivals: Mapping[str, Sequence[float]]) -> str:
    """The claimant is not below the best rival beyond the noise (holds), or at or above half
    of the rivals' means (partly)."""
    means = {k: float(np.mean(_finite(v))) for k, v in rivals.items() if _finite(v)}
    if not _finite(claimant) or not means:
        return NOT_HERE
    best = max(means, key=lambda k: means[k])
    if rule_at_least(*gap(claimant, rivals[best])) != NOT_HERE:
        return HOLDS
    mine = float(np.mean(_finite(claimant)))
    if sum(mine >= m for m in means.values()) >= math.ceil(len(means) / 2):
        return PARTLY
    return NOT_HERE


def rule_speedup(ratio: float, reached: int, seeds: int, need: float) -> str:
    """Every seed reaches the target and the ratio is at least ``need`` (holds); some seed
    reaches it with a ratio above 1 (partly)."""
    if reached == 0 or not math.isfinite(ratio):
        return NOT_HERE
    if reached == seeds and ratio >= need:
        return HOLDS
    return PARTLY if ratio > 1.0 else NOT_HERE


def rule_error_and_time(lower_error: bool, less_time: bool) -> str:
    """Both (holds), one (partly), neither (not here)."""
    return {2: HOLDS, 1: PARTLY, 0: NOT_HERE}[int(lower_error) + int(less_time)]


def rule_spread(pretrained: float, scratch: float) -> str:
    """The pretrained spread is at most ``SPREAD_SHRINK`` of the one from scratch (holds), or
    smaller (partly)."""
    if not (math.isfinite(pretrained) and math.isfinite(scratch)) or pretrained >= scratch:
        return NOT_HERE
    return HOLDS if pretrained <= SPREAD_SHRINK * scratch else PARTLY


def rule_all(words: Sequence[str]) -> str:
    """Holds everywhere (holds), not here everywhere (not here), else partly."""
    if words and all(w == HOLDS for w in words):
        return HOLDS
    if not words or all(w == NOT_HERE for w in words):
        return NOT_HERE
    return PARTLY


# -- measurements -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    """One row of the table."""

    claim: str
    source: str
    measured: str
    verdict: str
    reason: str


@dataclass(frozen=True)
class Speedup:
    """Steps to a baseline's mean final accuracy: the baseline's per seed (its last step where
    it never got there) and the claimant's for the seeds that reached it."""

    target: float
    base_steps: list[float]
    steps: list[float]
    seeds: int

    @property
    def reached(self) -> int:
        """Claimant seeds that reached the target."""
        return len(self.steps)

    @property
    def ratio(self) -> float:
        """Baseline's mean steps over the claimant's (NaN when no seed reached the target)."""
        if not self.steps or not self.base_steps:
            return math.nan
        return float(np.mean(self.base_steps) / np.mean(self.steps))


def speedup(base: Arm, claimant: Arm) -> Speedup:
    """How fast ``claimant`` reaches ``base``'s mean final metric, against ``base`` itself."""
    target = float(np.mean(_finite(base.final_metrics()) or [math.nan]))
    base_steps = [
        float(steps_to(h, target) or h.eval_step[-1]) for h in base.histories if h.eval_step
    ]
    hs = claimant.histories
    steps = [float(s) for s in (steps_to(h, target) for h in hs) if s is not None]
    return Speedup(target, base_steps, steps, len(hs))


def pct(values: Sequence[float]) -> str:
    """Accuracies as ``mean ± std`` in percent (one value: ``(n=1)``; none: ``–``)."""
    xs = _finite(values)
    if not xs:
        return "–"
    m, s = mean_std(xs)
    if len(xs) == 1:
        return f"{100 * m:.1f}% (n=1)"
    return f"{100 * m:.1f} ± {100 * s:.1f}%"


def steps_text(values: Sequence[float]) -> str:
    """Steps as ``mean ± std`` (one value: the value)."""
    m, s = mean_std(values)
    return f"{m:.0f}" if len(values) < 2 else f"{m:.0f} ± {s:.0f}"


def _arm(arms: Sequence[Arm], label: str) -> Arm:
    for a in arms:
        if a.label == label:
            return a
    raise ValueError(f"no arm {label!r} among {', '.join(a.label for a in arms)}")


def _steps(arm: Arm) -> int:
    return max((h.total_steps for h in arm.histories), default=0)


def _pp(d: float, se: float) -> str:
    noise = f"{NOISE:g} SE = {100 * NOISE * se:.1f}" if math.isfinite(se) else "one seed, no SE"
    return f"{100 * d:+.1f} points ({noise})"


def _speedup_text(sp: Speedup, claimant: str, base: str) -> str:
    if not sp.reached:
        return f"{claimant} never reaches {100 * sp.target:.1f}% ({sp.seeds} seeds)"
    return (
        f"{claimant} reaches {100 * sp.target:.1f}% after {steps_text(sp.steps)} steps "
        f"({sp.reached}/{sp.seeds} seeds) vs {np.mean(sp.base_steps):.0f} for {base}: "
        f"{sp.ratio:.2f}× fewer"
    )


def _speedup_reason(word: str, sp: Speedup, need: float) -> str:
    if word == HOLDS:
        return f"{sp.ratio:.2f}× ≥ {need:g}× on every seed"
    if sp.reached == 0:
        return "never reaches the baseline's accuracy"
    seeds = f"reaches it on {sp.reached} of {sp.seeds} seeds"
    if word == NOT_HERE:
        return f"not faster ({sp.ratio:.2f}×)" + (f"; {seeds}" if sp.reached < sp.seeds else "")
    if sp.reached < sp.seeds:
        return f"faster, but {seeds}"
    return f"faster, but {sp.ratio:.2f}× < {need:g}×"


def _better_reason(word: str, what: str, negation: str) -> str:
    return {
        HOLDS: f"{what}, beyond {NOISE:g} SE",
        PARTLY: f"{what}, within the noise",
        NOT_HERE: negation,
    }[word]


def claim_clr(run: RecipeRun, task: str) -> Claim:
    """Triangular CLR against the fixed LR (``clr-vs-fixed``)."""
    fixed, tri = _arm(run.arms, "fixed"), _arm(run.arms, "triangular")
    sp = speedup(fixed, tri)
    word = rule_speedup(sp.ratio, sp.reached, sp.seeds, CLR_SPEEDUP)
    lr = fixed.records[0].config.get("lr")
    measured = (
        f"{task}, {_steps(fixed)} steps: fixed LR {lr:g} ends at {pct(fixed.final_metrics())}; "
        f"{_speedup_text(sp, 'triangular (range-test bounds)', 'the fixed LR')}; triangular "
        f"ends at {pct(tri.final_metrics())}"
    )
    return Claim(
        "A triangular cyclical LR reaches the fixed LR's accuracy in far fewer iterations",
        "Smith 2015 (arXiv 1506.01186), CIFAR-10: fixed LR 81.4% at 70k iterations, "
        "triangular2 81.4% at 25k (2.8×)",
        measured,
        word,
        _speedup_reason(word, sp, CLR_SPEEDUP),
    )


def claim_decrease_only(run: RecipeRun, task: str) -> Claim:
    """triangular2 against the decrease-only ablation (``policies``)."""
    tri2, dec = _arm(run.arms, "triangular2"), _arm(run.arms, "decrease-only")
    d, se = gap(tri2.final_metrics(), dec.final_metrics())
    word = rule_better(d, se)
    measured = (
        f"{task}, {_steps(tri2)} steps: triangular2 {pct(tri2.final_metrics())}, decrease-only "
        f"{pct(dec.final_metrics())}; difference {_pp(d, se)}"
    )
    return Claim(
        "The decrease-only ablation is worse than the cyclical policy",
        "Smith 2015, Table 1: decrease-only 78.5% vs triangular2 81.4% at 25k iterations",
        measured,
        word,
        _better_reason(word, "decrease-only is worse", "decrease-only is not worse"),
    )


def claim_exp_range(run: RecipeRun, task: str) -> Claim:
    """exp_range against the fixed LR at the same number of steps (``policies``)."""
    exp, fixed = _arm(run.arms, "exp_range"), _arm(run.arms, "fixed")
    d, se = gap(exp.final_metrics(), fixed.final_metrics())
    word = rule_at_least(d, se)
    measured = (
        f"{task}, {_steps(exp)} steps: exp_range {pct(exp.final_metrics())}, fixed LR "
        f"{pct(fixed.final_metrics())}; difference {_pp(d, se)}"
    )
    reason = {
        HOLDS: "at or above the fixed LR",
        PARTLY: "below the fixed LR, within the noise",
        NOT_HERE: "below the fixed LR beyond the noise",
    }[word]
    return Claim(
        "exp_range (an amplitude decaying by gamma^iteration) works as well as the fixed LR",
        "Smith 2015, Table 1: exp_range 82.2% at 42k iterations vs fixed 81.4% at 70k",
        measured,
        word,
        reason,
    )


def claim_optimizers(run: RecipeRun, task: str) -> Claim:
    """SGD+CLR against the adaptive optimizers at their default LRs (``optimizers``)."""
    sgd = _arm(run.arms, "sgd+clr")
    rivals = {opt: _arm(run.arms, opt).final_metrics() for opt in ADAPTIVE}
    word = rule_competitive(sgd.final_metrics(), rivals)
    best = max(rivals, key=lambda k: mean_std(rivals[k])[0])
    d, se = gap(sgd.final_metrics(), rivals[best])
    others = ", ".join(f"{k} {pct(v)}" for k, v in rivals.items())
    beaten = sum(mean_std(sgd.final_metrics())[0] >= mean_std(v)[0] for v in rivals.values())
    measured = (
        f"{task}, {_steps(sgd)} steps: SGD+CLR {pct(sgd.final_metrics())}; {others}; SGD+CLR "
        f"vs the best ({best}) {_pp(d, se)}"
    )
    reason = {
        HOLDS: f"not below the best adaptive ({best}) beyond the noise",
        PARTLY: f"at or above {beaten} of {len(rivals)}, below {best} beyond the noise",
        NOT_HERE: f"above only {beaten} of {len(rivals)}",
    }[word]
    return Claim(
        "SGD with a cyclical LR is competitive with the adaptive optimizers at their defaults",
        "Smith 2015, Table 3 (CIFAR-10, fixed LR: Nesterov 82.1%, Adam 81.4%, RMSprop 75.2%, "
        "AdaGrad 74.6%, AdaDelta 67.3%); the PyTorch comparison: SGD+CLR, Adam and Adadelta "
        "all near 83%",
        measured,
        word,
        reason,
    )


def claim_weight_decay(run: RecipeRun, task: str) -> Claim:
    """Weight decay 1e-3 against the best of the smaller ones (``weight-decay``)."""
    finals = {a.label: a.final_metrics() for a in run.arms}
    strong = finals["wd=0.001"]
    others = {k: v for k, v in finals.items() if k != "wd=0.001"}
    best = max(others, key=lambda k: mean_std(others[k])[0])
    d, se = gap(others[best], strong)
    word = rule_better(d, se)
    listed = ", ".join(f"{k} {pct(v)}" for k, v in finals.items())
    measured = (
        f"{task}, one cycle at tune_lr's peak, {_steps(run.arms[0])} steps: {listed}; best "
        f"({best}) minus 1e-3 {_pp(d, se)}"
    )
    return Claim(
        "Weight decay 1e-3 is too strong for a small network and a short run",
        "Smith 2018 (arXiv 1803.09820): search 1e-3, 1e-4, 1e-5, 0 and keep it constant "
        "(ResNet-56 on CIFAR-10 used 1e-4)",
        measured,
        word,
        _better_reason(word, f"1e-3 ends below {best}", "1e-3 is not below the others"),
    )


def claim_keras(run: RecipeRun, task: str) -> Claim:
    """Adam at a fixed LR against Adam with a triangular CLR and a 10x batch
    (``baseline-vs-clr``): error and training time."""
    base, clr = run.arms[0], run.arms[1]
    err_b = [1.0 - m for m in base.final_metrics()]
    err_c = [1.0 - m for m in clr.final_metrics()]
    sec_b, sec_c = base.train_seconds(), clr.train_seconds()
    lower = mean_std(err_c)[0] < mean_std(err_b)[0]
    faster = mean_std(sec_c)[0] < mean_std(sec_b)[0]
    word = rule_error_and_time(lower, faster)

    def secs(v: Sequence[float]) -> str:
        m, s = mean_std(v)
        return f"{m:.2f} s" if len(v) < 2 else f"{m:.2f} ± {s:.2f} s"

    measured = (
        f"{task}: {base.label}: error {pct(err_b)}, {secs(sec_b)}; {clr.label}: error "
        f"{pct(err_c)}, {secs(sec_c)} of training"
    )
    reason = {
        HOLDS: "lower error in less time",
        PARTLY: "lower error, but not less time" if lower else "less time, but higher error",
        NOT_HERE: "higher error and more time",
    }[word]
    return Claim(
        "Adam with a triangular CLR and a 10× batch reaches a lower error in less time than "
        "Adam at a fixed LR",
        "The Keras CyclicLR tutorial (MNIST, 784-784-10 MLP): Adam, batch 200: 1.91% error in "
        "86 s; + triangular CLR, batch 2000: 1.64% in 43 s",
        measured,
        word,
        reason,
    )


def claim_transfer(run: RecipeRun, task: str) -> Claim:
    """The optimizers' spread fine-tuned from a backbone pretrained here against from scratch
    (``transfer``, which also runs the ``optimizers`` arms from scratch on the same task)."""
    spread = {
        v: optimizer_spread([a for a in run.arms if a.label.endswith(f"({v})")])
        for v in ("pretrained", "from scratch")
    }
    fine, scratch = spread["pretrained"]["range"], spread["from scratch"]["range"]
    word = rule_spread(fine, scratch)
    measured = (
        f"{task} (backbone pretrained here on mnist1d-0to4-paper, first two convolutions "
        f"frozen), SGD+CLR and 5 adaptive optimizers: best minus worst mean final accuracy "
        f"{100 * fine:.1f} points pretrained vs {100 * scratch:.1f} from scratch (std across "
        f"optimizers {100 * spread['pretrained']['std']:.1f} vs "
        f"{100 * spread['from scratch']['std']:.1f})"
    )
    ratio = fine / scratch if scratch > 0 else math.nan
    reason = {
        HOLDS: f"spread shrinks to {ratio:.2f} of scratch",
        PARTLY: f"spread shrinks only to {ratio:.2f} of scratch",
        NOT_HERE: "spread does not shrink",
    }[word]
    return Claim(
        "With a pretrained network the optimizers' differences shrink",
        "The PyTorch comparison of adaptive optimizers vs CLR, 2nd experiment (pretrained "
        "ResNet34; from scratch SGD+CLR, Adam, Adadelta near 83%); no spread figure given",
        measured,
        word,
        reason,
    )


SC_CLAIM = (
    "One cycle (super-convergence) reaches a tuned baseline's accuracy in a fraction of the "
    "iterations"
)
SC_SOURCE = (
    "Smith & Topin 2017 (arXiv 1708.07120), ResNet-56 on CIFAR-10: one cycle 92.4% after 10k "
    "iterations vs 91.2% after ~80k (about 8×)"
)
MOM_CLAIM = "Cyclical momentum (0.95→0.85→0.95) beats a constant momentum in one cycle"
MOM_SOURCE = (
    "Smith 2018 (arXiv 1803.09820): decrease momentum as the LR rises; no single figure quoted"
)


def claims_super_convergence_recipe(run: RecipeRun, task: str) -> list[Claim]:
    """Super-convergence and cyclical momentum from the ``super-convergence`` recipe."""
    const, oc = _arm(run.arms, "constant"), _arm(run.arms, "one-cycle")
    fixed_mom = _arm(run.arms, "one-cycle, constant momentum")
    sp = speedup(const, oc)
    word = rule_speedup(sp.ratio, sp.reached, sp.seeds, SC_SPEEDUP)
    measured = (
        f"{task} (super-convergence recipe): constant LR, {_steps(const)} steps, ends at "
        f"{pct(const.final_metrics())}; "
        f"{_speedup_text(sp, f'one cycle at tune_lr peak, {_steps(oc)} steps,', 'constant')}; "
        f"ends at {pct(oc.final_metrics())}"
    )
    sc = Claim(SC_CLAIM, SC_SOURCE, measured, word, _speedup_reason(word, sp, SC_SPEEDUP))
    d, se = gap(oc.final_metrics(), fixed_mom.final_metrics())
    mword = rule_better(d, se)
    mom = Claim(
        MOM_CLAIM,
        MOM_SOURCE,
        f"{task}, one cycle of {_steps(oc)} steps at the same peak: cyclical "
        f"{pct(oc.final_metrics())}, constant {pct(fixed_mom.final_metrics())}; "
        f"difference {_pp(d, se)}",
        mword,
        _better_reason(mword, "cyclical ends higher", "cyclical does not end higher"),
    )
    return [sc, mom]


def _tune_cache(tta_cache: Path, task: str, steps: int, seed: int) -> Path:
    # where time_to_accuracy.tuned() keeps a tuned peak
    return tta_cache / "tune" / f"{task}-steps={steps}-seed={seed}.json"


def tta_done(task: str, seeds: int) -> dict[str, TrialRecord] | None:
    """The finished trials of ``time_to_accuracy.py`` when its cache holds every trial of
    ``task`` that the super-convergence and momentum rows read (tuned peaks included) at
    ``seeds`` seeds; ``None`` otherwise."""
    import time_to_accuracy as tta

    if not (tta.CACHE / "config.json").exists():
        return None
    rd = RunDir(tta.CACHE)
    if int(rd.config.get("seeds", 0)) < seeds:
        return None
    done = {r.key: r for r in rd.records() if r.status != "failed"}
    t = get_task(task)
    keys = [
        tta.base_key(task, opt, lr, s)
        for opt in tta.BASE_OPTIMIZERS
        for lr in tta.base_grid(task, opt, seeds, done)
        for s in range(seeds)
    ]
    keys += [
        tta.oc_key(task, n, s, m)
        for n in tta.oc_budgets(t)
        for s in range(seeds)
        for m in ("cyclical", "constant")
    ]
    tunes = [_tune_cache(tta.CACHE, task, n, s) for n in tta.oc_budgets(t) for s in range(seeds)]
    if any(k not in done for k in keys) or not all(p.exists() for p in tunes):
        return None
    return done


def claims_super_convergence_tta(
    task: str, seeds: int, done: dict[str, TrialRecord]
) -> list[Claim]:
    """Super-convergence and cyclical momentum from ``time_to_accuracy.py``'s trials, against
    its longest baseline (the best constant LR of SGD and Adam grids, 4× the default epochs)."""
    import time_to_accuracy as tta

    cyc = tta.analyse(task, seeds, done)
    const = tta.analyse(task, seeds, done, "constant")
    longest = max(r.base_steps_budget for r in cyc)
    pairs = [(a, b) for a, b in zip(cyc, const, strict=True) if a.base_steps_budget == longest]
    best = max(
        (a for a, _ in pairs),
        key=lambda r: (r.ratio if math.isfinite(r.ratio) else -1.0, r.reached, r.oc_final),
    )

    def hs(n: int, momentum: str = "cyclical") -> list[History | None]:
        return [tta.history(done[tta.oc_key(task, n, s, momentum)]) for s in range(seeds)]

    steps = [
        float(s)
        for s in (tta.first_reach(h, best.target, best.oc_budget) for h in hs(best.oc_budget))
        if s is not None
    ]
    sp = Speedup(best.target, [best.base_steps], steps, seeds)
    word = rule_speedup(sp.ratio, sp.reached, sp.seeds, SC_SPEEDUP)
    finals = [tta.metric_at(h, best.oc_budget) for h in hs(best.oc_budget)]
    who = f"one cycle at tune_lr peak, {best.oc_budget} steps,"
    measured = (
        f"{task} (time_to_accuracy.py's trials): best constant LR of SGD and Adam grids "
        f"({best.best}), {longest} steps, ends at {100 * best.target:.1f}% (mean); "
        f"{_speedup_text(sp, who, 'the constant')}"
        f" (best of {len(pairs)} one-cycle budgets); ends at {pct(finals)}. Read as training "
        f"budgets (the paper's reading, not the rule's): {tta.budget_reading(task, cyc)}"
    )
    sc = Claim(SC_CLAIM, SC_SOURCE, measured, word, _speedup_reason(word, sp, SC_SPEEDUP))
    words, parts = [], []
    for a, _ in pairs:
        fc = [tta.metric_at(h, a.oc_budget) for h in hs(a.oc_budget)]
        fk = [tta.metric_at(h, a.oc_budget) for h in hs(a.oc_budget, "constant")]
        d, se = gap(fc, fk)
        words.append(rule_better(d, se))
        parts.append(f"{a.oc_budget} steps: {pct(fc)} vs {pct(fk)}, {_pp(d, se)}")
    mword = rule_all(words)
    mreason = {
        HOLDS: "cyclical ends higher at every budget, beyond the noise",
        PARTLY: f"higher beyond the noise at {words.count(HOLDS)} of {len(words)} budgets",
        NOT_HERE: "cyclical does not end higher",
    }[mword]
    mom = Claim(
        MOM_CLAIM,
        MOM_SOURCE,
        f"{task}, one cycle at tune_lr's peaks, final accuracy cyclical vs constant 0.9: "
        + "; ".join(parts),
        mword,
        mreason,
    )
    return [sc, mom]


# -- running ------------------------------------------------------------------------------------
@dataclass
class Timing:
    """What one recipe cost: the wall seconds of the invocation that last trained any of its
    trials (kept in ``timings.json`` beside the runs, so a rerun from the cache reports them)
    and the training seconds summed over its trials."""

    recipe: str
    task: str
    wall: float
    trial_seconds: float


TIMINGS = "timings.json"


def _done(folder: Path) -> set[str]:
    return RunDir(folder).done() if (folder / "config.json").exists() else set()


def measure(
    recipe: str,
    task: str,
    *,
    seeds: int,
    root: Path,
    epochs: float | None = None,
    workers: int | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[RecipeRun, Timing]:
    """Run (or resume) ``recipe`` on ``task`` under ``root/<recipe>-<task>``."""
    folder = root / f"{recipe}-{task}"
    before = _done(folder)
    t0 = time.perf_counter()
    run = run_recipe(
        recipe, task, seeds=seeds, out=folder, epochs=epochs, workers=workers, log=log
    )  # fmt: skip
    wall = time.perf_counter() - t0
    path = root / TIMINGS
    walls: dict[str, float] = json.loads(path.read_text()) if path.exists() else {}
    if _done(folder) - before or folder.name not in walls:
        walls[folder.name] = wall
        path.write_text(json.dumps(walls, indent=2, sort_keys=True))
    seconds = sum(r.seconds for r in run.records)
    return run, Timing(recipe, task, walls[folder.name], seconds)


BUILDERS: dict[str, Callable[[RecipeRun, str], list[Claim]]] = {
    "clr-vs-fixed": lambda r, t: [claim_clr(r, t)],
    "policies": lambda r, t: [claim_decrease_only(r, t), claim_exp_range(r, t)],
    "optimizers": lambda r, t: [claim_optimizers(r, t)],
    "weight-decay": lambda r, t: [claim_weight_decay(r, t)],
    "baseline-vs-clr": lambda r, t: [claim_keras(r, t)],
    "transfer": lambda r, t: [claim_transfer(r, t)],
}
"""The rows each recipe's run gives."""

ORDER = (
    "clr-vs-fixed",
    "policies",
    "optimizers",
    "super-convergence",
    "weight-decay",
    "baseline-vs-clr",
    "transfer",
)


def collect(
    seeds: int,
    root: Path,
    epochs: float | None,
    workers: int | None,
    log: Callable[[str], None] = print,
) -> tuple[list[Claim], list[Timing], str]:
    """Every row of the table in order, the recipes' timings, and where the super-convergence
    rows came from."""
    rows: dict[str, list[Claim]] = {}
    timings: list[Timing] = []
    done = tta_done(SC_TASK, seeds) if epochs is None else None
    for recipe in ORDER:
        if recipe == "super-convergence" and done is not None:
            log(f"== super-convergence: read from {ROOT / 'runs' / 'bench-tta'}")
            rows[recipe] = claims_super_convergence_tta(SC_TASK, seeds, done)
            continue
        task = SC_TASK if recipe == "super-convergence" else TASKS[recipe]
        log(f"== {recipe} on {task}")
        run, timing = measure(
            recipe, task, seeds=seeds, root=root, epochs=epochs, workers=workers, log=log
        )
        log(f"   {timing.wall:.0f} s wall, {timing.trial_seconds:.0f} s of trials")
        timings.append(timing)
        if recipe == "super-convergence":
            rows[recipe] = claims_super_convergence_recipe(run, task)
        else:
            rows[recipe] = BUILDERS[recipe](run, task)
    origin = "time_to_accuracy.py" if done is not None else "the super-convergence recipe"
    return [c for r in ORDER for c in rows[r]], timings, origin


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(claims: Sequence[Claim]) -> str:
    """The claims as one Markdown table."""
    lines = [
        "| claim | source and its published figure | lrkit's measurement (mean ± std over "
        "seeds) | verdict |",
        "|---|---|---|---|",
    ]
    for c in claims:
        lines.append(
            f"| {_cell(c.claim)} | {_cell(c.source)} | {_cell(c.measured)} | "
            f"**{c.verdict}**: {_cell(c.reason)} |"
        )
    return "\n".join(lines)


RULES = (
    f"Verdicts are decided by rule from the numbers (SE: the standard error of a difference of "
    f"two means over seeds). *A beats B*: holds when the difference of mean final accuracies "
    f"exceeds {NOISE:g} SE, partly when it is positive but within that, not here otherwise. "
    f"*A works as well as B* (exp_range): holds at or above B, partly below within {NOISE:g} SE. "
    f"*Competitive* (SGD+CLR): holds when not below the best adaptive optimizer beyond "
    f"{NOISE:g} SE, partly when at or above half of them. *Fewer iterations*: the target is the "
    f"baseline's mean final accuracy; holds when every seed reaches it and the baseline's mean "
    f"steps over the claimant's are at least {CLR_SPEEDUP:g}× (CLR; Smith reports 2.8×) or "
    f"{SC_SPEEDUP:g}× (one cycle; the time-to-accuracy target), partly when some seed reaches "
    f"it faster. *Keras tutorial*: holds with both lower mean error and less mean training "
    f"time, partly with one. *Transfer*: holds when the optimizers' spread (best minus worst "
    f"mean final accuracy) pretrained is at most {SPREAD_SHRINK:g} of the spread from scratch, "
    f"partly when smaller. *Cyclical momentum*: *A beats B* at each one-cycle budget; holds at "
    f"every budget, not here at none, partly otherwise."
)


def sections(
    claims: Sequence[Claim],
    timings: Sequence[Timing],
    origin: str,
    seeds: int,
    epochs: float | None,
) -> tuple[str, str]:
    """The BENCHMARKS.md section (rules, settings, table, timings) and the README.md one (the
    table and where the rest is)."""
    length = (
        "each task's default length"
        if epochs is None
        else f"cut to {epochs:g} epochs (shorter than the tasks' defaults)"
    )
    tasks = sorted({*TASKS.values(), SC_TASK})
    setup = "; ".join(
        f"{t}: batch {get_task(t).batch_size}, {get_task(t).epochs} epochs" for t in tasks
    )
    sc_from = (
        "read from `time_to_accuracy.py`'s cached trials (runs/bench-tta): its longest "
        "baseline and the best of its one-cycle budgets"
        if origin == "time_to_accuracy.py"
        else f"measured by the `super-convergence` recipe on {SC_TASK} (time_to_accuracy.py's "
        "cache did not hold every trial of that task)"
    )
    times = "; ".join(
        f"{t.recipe} on {t.task} {t.wall:.0f} s ({t.trial_seconds:.0f} s of trials)"
        for t in timings
    )
    total = sum(t.wall for t in timings)
    plural = "s" if seeds > 1 else ""
    intro = (
        f"The claims of the CLR and one-cycle literature, each tested by an lrkit recipe "
        f"(`lrkit run <recipe>`) at {seeds} seed{plural}, {length}, on the task of the paper's "
        f"regime "
        f"(the MNIST-1D paper's plain CNN with SGD for the CLR and one-cycle claims, the MLP "
        f"for the Keras tutorial's, digits 5-9 for transfer learning)."
    )
    bench = (
        "## The papers' claims, measured (`benchmarks/claims.py`)\n\n"
        + intro
        + f" Super-convergence and cyclical momentum are {sc_from}. "
        + RULES
        + f"\n\nTasks: {setup}. Machine: {machine()}; trials run one per process at 1 torch "
        "thread.\n\n"
        + table(claims)
        + f"\n\nTime per recipe on this machine (wall time of the run that trained it, one "
        f"trial per core; in brackets the training time summed over its trials): {times}; "
        f"{total:.0f} s in all.\n"
    )
    readme = (
        intro + " Verdicts follow rules stated in code and in [BENCHMARKS.md](BENCHMARKS.md) "
        '("The papers\' claims, measured"), which also gives the settings and times.\n\n'
        + table(claims)
        + f"\n\nMachine: {machine()}.\n"
    )
    return bench, readme


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=SEEDS)
    ap.add_argument("--epochs", type=float, default=None, help="cut every recipe's length")
    ap.add_argument("--out", type=Path, default=CACHE, help="where the recipes' runs are kept")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--no-write", action="store_true", help="print only; leave the Markdown")
    args = ap.parse_args()
    t0 = time.perf_counter()
    claims, timings, origin = collect(args.seeds, args.out, args.epochs, args.workers)
    bench, readme = sections(claims, timings, origin, args.seeds, args.epochs)
    print(bench, flush=True)
    print(f"wall {time.perf_counter() - t0:.0f} s")
    if not args.no_write:
        write_section("claims", bench)
        write_section("claims", readme, target=README)


if __name__ == "__main__":
    main()
