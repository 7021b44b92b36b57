"""How :func:`~lrkit.finder.tune_lr` decides: the plan of its budget, where its probes go, and
the peak it chooses from them.

- the plan: how long the range test is (:func:`range_plan`, :func:`sweep_range`) and how what
  it leaves is spent on probes (:func:`probe_plan`);
- the probes' anchor and ceiling from the range test (or, without a basin, from the optimizer),
  a first round centred on the anchor moved up by the prior drift, or a walk of probes when the
  range test found no basin, and the best peak of a round (a parabola's vertex);
- the correction for the horizon: the best peak of a run falls as the run gets longer, so the
  probes' best is extrapolated to the run's length (:data:`PRIOR_DRIFT`), and capped.

:func:`probe_and_choose` does all of it after the range test; the probes themselves are trained
by a :class:`~lrkit.finder.probes.Prober`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lrkit.finder.probes import Prober
from lrkit.finder.result import RangeTestResult
from lrkit.finder.suggest import analyze_curve
from lrkit.finder.tune_result import Probe, TuneResult

__all__ = [
    "MIN_PROBE",
    "MIN_RANGE_TEST",
    "PRIOR_DRIFT",
    "ProbePlan",
    "probe_and_choose",
    "probe_plan",
    "range_plan",
    "sweep_range",
]

PRIOR_DRIFT = 0.4
"""Prior drift of the best peak per doubling of the horizon (log2 units). On one-cycle grids at
1/16, 1/8 and the full length of the built-in tasks and the held-out design half, short runs'
best peaks sat 0 to 1.1 doublings per doubling of the horizon above the full run's; the median
is near 0, but a peak too high costs far more than one too low (a run that collapses), and of
the drifts tried (0, 0.2, 0.4, 0.6) 0.4 gave the lowest mean regret in
``benchmarks/suggestion_regret.py`` on the built-in suite and the design half (0.22, against
0.23 to 0.42)."""

MIN_PROBE = 8
"""The shortest probe, in updates."""
MIN_RANGE_TEST = 10
"""The shortest range test the search runs, in updates."""
_WALK_PROBES = 4
_WALK_FACTOR = 4.0
_LEARNED = 0.02


# -- the plan ----------------------------------------------------------------------------------


def range_plan(units: float, range_test_steps: int) -> tuple[int, int]:
    """The range test's length and extension: a fifth of the budget, at least a third of
    ``range_test_steps`` when the budget allows, and an extension (``range_test(extend=...)``)
    only while the worst case leaves 70% of the budget for the probes."""
    floor = min(max(MIN_RANGE_TEST, range_test_steps // 3), int(units * 0.5))
    r = min(range_test_steps, max(MIN_RANGE_TEST, floor, int(units * 0.2)))
    for extend in (3, 2):
        if r * (1 + extend) <= 0.3 * units:
            return r, extend
    return r, 1


def sweep_range(start_lr: float, end_lr: float, steps: int, full_steps: int) -> tuple[float, float]:
    """The LR range of a range test shortened by the budget: its top six decades (where
    learning rates that train are), so that each step still moves the LR by a small factor."""
    if steps >= full_steps:
        return start_lr, end_lr
    return max(start_lr, end_lr * 1e-6), end_lr


@dataclass(frozen=True)
class ProbePlan:
    """How the probes spend the budget: ``rounds`` (0: none, 1, or 2, the second of probes
    twice as long), ``candidates`` (probes in the first round, or in the walk), ``steps`` (the
    first round's probe length in updates) and ``walk`` (a walk of probes instead of a round
    around the anchor)."""

    rounds: int
    candidates: int
    steps: int
    walk: bool = False


def probe_plan(
    left: float, total_steps: int, eval_cost: float, *, bracketed: bool = True
) -> ProbePlan:
    """How to spend ``left`` (the budget the range test left, in updates; ``eval_cost``: one
    scoring of a probe). Without a bracket from the range test (no basin), a walk of four probes
    (and one evaluation of the start state) as long as the budget allows. Otherwise: probes
    shorter than an eighth of the run mislead (their best peaks drift far from the full run's),
    so two rounds (four probes of ``L`` updates, three of ``2L``) when ``L`` reaches an eighth
    of the run, which takes more than one run's budget; else one round of three probes as long
    as the budget allows; else none."""
    if not bracketed:
        n = _WALK_PROBES
        length = min(int((left - (n + 1) * eval_cost) // n), total_steps // 2)
        if length >= MIN_PROBE:
            return ProbePlan(1, n, length, walk=True)
    length = min(int((left - 7 * eval_cost) // 10), total_steps // 4)
    if length >= max(MIN_PROBE, total_steps / 8):
        return ProbePlan(2, 4, length)
    length = min(int((left - 3 * eval_cost) // 3), total_steps // 2)
    if length >= MIN_PROBE:
        return ProbePlan(1, 3, length)
    return ProbePlan(0, 0, 0)


# -- the choice ------------------------------------------------------------------------------


def _anchor(
    result: RangeTestResult, own_lr: float, usual_lr: float
) -> tuple[float, float | None, str]:
    """The anchor of the probes, the ceiling, and where the anchor came from: the range test's
    suggestion; else, when the range test found no basin, the optimizer's own learning rate when
    it is one that trains (in the top six decades of the sweep, not a finder's placeholder such
    as 1e-7), else the conventional learning rate of the optimizer's kind."""
    analysis = analyze_curve(result.lrs, result.scored_losses)
    ceiling = analysis.lr_up
    if result.suggestion is not None:
        return result.suggestion, ceiling, "the range test's suggestion"
    if result.end_lr * 1e-6 <= own_lr <= result.end_lr:
        return own_lr, ceiling, "the optimizer's own learning rate (the range test found no basin)"
    return (
        usual_lr,
        ceiling,
        "the usual learning rate of the optimizer (the range test found no basin)",
    )


def probe_and_choose(
    found: RangeTestResult,
    plan: ProbePlan,
    prober: Prober,
    total_steps: int,
    budget: float,
    units: float,
    holdout: str | None,
) -> TuneResult:
    """The probes after the range test ``found``, as ``plan`` says, trained by ``prober``, and
    the peak for ``total_steps`` they choose, as a :class:`TuneResult` (``budget``: the
    fraction of a run allowed; ``units``: the same in updates; ``holdout``: how validation data
    was made, if it was). Raises ``ValueError`` when no learning rate tried gave a finite loss."""
    anchor, ceiling, source = _anchor(found, prober.own_lr, prober.usual_lr)
    score_name = "metric" if prober.metric_fn is not None else "val_loss"

    def result(peak: float, probes: list[Probe], reason: str, drift: float | None) -> TuneResult:
        spent = prober.spent / total_steps
        if spent > budget and math.isclose(spent, budget, rel_tol=1e-9):
            spent = budget  # the plan fits the budget; its costs' sum may round one ulp over
        return TuneResult(
            peak=float(peak),
            total_steps=total_steps,
            probes=probes,
            range_test=found,
            budget=float(budget),
            spent=spent,
            score_name=score_name,
            maximize=prober.maximize,
            reason=reason,
            holdout=holdout,
            drift=drift,
            schedule=prober.schedule,
        )

    if plan.rounds == 0:
        _check_finite(found, [])
        return result(anchor, [], f"{source}; the budget leaves no room for probes", None)
    length = plan.steps
    # short runs prefer higher peaks: centre the first round where the prior puts the anchor
    shift = 2.0 ** (PRIOR_DRIFT * math.log2(total_steps / length))
    where = f"probes around {source} ({anchor:.3g})"
    if plan.walk:
        probes, learned = _walk(anchor * shift / 2, plan, prober)
        where = f"a walk of probes up from {source} ({anchor:.3g})"
        if learned:
            p1 = _vertex(probes, prober)
        else:  # too short to learn at any of them: the largest that did not diverge
            where += ", none of which learned: from the largest that did not diverge"
            p1 = max((p.peak for p in probes if not p.diverged), default=anchor)
    else:
        first = _below(_around(anchor * shift, plan.candidates), ceiling)
        probes = prober.run_round(first, length, 1)
        p1 = _vertex(probes, prober)
    p2: float | None = None
    if plan.rounds == 2:
        second = _below(_around(p1 * 2.0**-PRIOR_DRIFT, 3), ceiling)
        probes += prober.run_round(second, 2 * length, 2)
        p2 = _vertex(probes[plan.candidates :], prober)
    _check_finite(found, probes)
    diverged = [p.peak for p in probes if p.diverged]
    cap = ceiling
    if diverged:
        cap = min(min(diverged) / 2, cap) if cap is not None else min(diverged) / 2
    peak, drift, how = _extrapolate(p1, p2, length, total_steps, cap)
    return result(peak, probes, f"{where}; {how}", drift)


def _walk(start: float, plan: ProbePlan, prober: Prober) -> tuple[list[Probe], bool]:
    """Find learning rates that learn in a probe's length when the range test could not: from
    ``start`` up by :data:`_WALK_FACTOR` while the probes learn nothing (down instead while
    they diverge), then the slots left bracket the best at half a step either side (towards its
    better neighbour first, never at or above a peak that diverged). The walk stops at the first
    probe that learns rather than climbing on while short runs improve: a short run's best peak
    lies above the full run's, and a peak too high costs more than one too low (climbing on
    chose 0.03 for a small tabular AdamW model whose full run is best at 5e-4). Returns the
    probes and whether any of them learned."""
    start_loss = prober.start_loss()
    probes: list[Probe] = []
    peak = start
    while len(probes) < plan.candidates:
        p = prober.run_round([peak], plan.steps, 1)[0]
        probes.append(p)
        if all(q.diverged for q in probes):
            peak = min(q.peak for q in probes) / _WALK_FACTOR
            continue
        if p.diverged or any(q.diverged for q in probes[:-1]):
            break  # past the top, or the first that did not diverge on the way down
        if _learned(p, start_loss):
            break
        peak = p.peak * _WALK_FACTOR
    learned_any = any(_learned(q, start_loss) for q in probes)
    left = plan.candidates - len(probes)
    ok = [q for q in probes if not q.diverged]
    if left <= 0 or not ok or not learned_any:
        return probes, learned_any
    best = min(ok, key=prober.key)
    limit = min((q.peak for q in probes if q.diverged), default=math.inf)

    def neighbour_key(peak: float) -> float:
        near = [q for q in probes if math.isclose(q.peak, peak, rel_tol=1e-9)]
        return prober.key(near[0]) if near else -math.inf  # untried: the unexplored side

    step = math.sqrt(_WALK_FACTOR)
    sides = sorted(
        (best.peak * step, best.peak / step),
        key=lambda x: neighbour_key(x * step if x > best.peak else x / step),
    )
    # half steps lie between the walk's own peaks (a factor of four apart): never tried yet
    refine = [x for x in sides if x < limit][:left]
    if refine:
        probes += prober.run_round(refine, plan.steps, 2)
    return probes, learned_any


def _learned(p: Probe, start_loss: float) -> bool:
    """Whether a probe's validation loss fell clearly (by :data:`_LEARNED` of it) below the start
    state's: a probe at a learning rate too small for its length learns nothing."""
    if p.diverged:
        return False
    if not math.isfinite(start_loss):
        return True
    return p.val_loss < start_loss - _LEARNED * abs(start_loss)


def _vertex(probes: Sequence[Probe], prober: Prober) -> float:
    """The best peak of one round: the vertex of a parabola through the scores of the best
    probe and its neighbours in log2(peak), kept between those neighbours; the best probe's
    peak when it lies at an edge of the round."""
    ok = sorted((p for p in probes if not p.diverged), key=lambda p: p.peak)
    if not ok:
        return min(p.peak for p in probes) / 2
    best = min(range(len(ok)), key=lambda i: prober.key(ok[i]))
    if best == 0 or best == len(ok) - 1:
        return ok[best].peak
    x = np.log2([ok[best - 1].peak, ok[best].peak, ok[best + 1].peak])
    y = np.array([prober.key(p) for p in ok[best - 1 : best + 2]])
    a, b, _ = np.polyfit(x, y, 2)
    if a <= 0:
        return ok[best].peak
    return float(2.0 ** np.clip(-b / (2 * a), x[0], x[2]))


def _around(centre: float, k: int) -> list[float]:
    """``k`` peaks a factor of two apart centred on ``centre``."""
    return [centre * 2.0 ** (i - (k - 1) / 2) for i in range(k)]


def _below(peaks: list[float], ceiling: float | None) -> list[float]:
    """``peaks`` shifted down, keeping their spacing, so that none is above ``ceiling``."""
    if ceiling is None or peaks[-1] <= ceiling:
        return peaks
    return [p * ceiling / peaks[-1] for p in peaks]


def _check_finite(found: RangeTestResult, probes: Sequence[Probe]) -> None:
    """``ValueError`` when the loss was not finite at any learning rate the search tried: no
    finite loss in the range test, and every probe diverged."""
    if any(not p.diverged for p in probes) or np.isfinite(found.scored_losses).any():
        return
    tried = f"the range test from {found.lrs[0]:.3g}" if found.lrs.size else "the range test"
    if probes:
        peaks = [p.peak for p in probes]
        tried += f" and {len(probes)} probes with peaks from {min(peaks):.3g} to {max(peaks):.3g}"
    raise ValueError(
        f"the loss was not finite (NaN or inf) at any learning rate tried ({tried}), so there is "
        "no learning rate to choose; check the loss function, the data (NaN or inf in the "
        "inputs or targets) and the model's initialisation: the loss of the untrained model "
        "must be finite"
    )


def _extrapolate(
    p1: float, p2: float | None, length: int, total_steps: int, cap: float | None
) -> tuple[float, float | None, str]:
    """The peak for ``total_steps`` from the best peaks at ``length`` and ``2 length``."""
    if p2 is None:
        n = math.log2(total_steps / length)
        shrunk, base, drift = PRIOR_DRIFT, p1, None
        how = f"prior drift {PRIOR_DRIFT:.2f} per doubling"
    else:
        drift = math.log2(p1 / p2)
        shrunk = float(np.clip(0.5 * drift + 0.5 * PRIOR_DRIFT, -0.5, 1.5))
        n = math.log2(total_steps / (2 * length))
        base = p2
        how = f"measured drift {drift:+.2f} per doubling of the run, shrunk to {shrunk:+.2f}"
    peak = float(np.clip(base * 2.0 ** (-shrunk * n), base / 16, base * 2))
    if cap is not None and peak > cap:
        peak = cap
        how += f"; capped at {cap:.3g}"
    return peak, drift, f"{how}, over {n:.1f} doublings to {total_steps} steps"
