"""How :func:`~lrkit.finder.tune_lr` decides: the plan of its budget, where its probes go, and
the peak it chooses from them.

- the plan: the range test's extension within the budget (:func:`range_plan`; its length is
  the plain range test's, never shortened) and how what it leaves is spent on probes
  (:func:`probe_plan`);
- the anchor and ceiling from the range test (or, without a basin, from the optimizer);
- probes at :data:`POSITIONS` around the suggestion and a repeat of the suggestion's own probe
  under another seed, which measures the probes' noise. The answer stays the range test's
  suggestion unless the best probe learned and beat the suggestion's probe by more than
  :data:`EVIDENCE` times that noise; then it is the best probe's peak (a parabola's vertex)
  carried to the run's length by the horizon model (:mod:`lrkit.finder.horizon`), and capped;
- a walk of probes when the range test found no basin.

:func:`probe_and_choose` does all of it after the range test; the probes themselves are trained
by a :class:`~lrkit.finder.probes.Prober`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lrkit.finder import horizon
from lrkit.finder.probes import Prober
from lrkit.finder.result import RangeTestResult
from lrkit.finder.suggest import analyze_curve
from lrkit.finder.tune_result import Probe, TuneResult

__all__ = [
    "EVIDENCE",
    "MIN_FRACTION",
    "MIN_PROBE",
    "POSITIONS",
    "ProbePlan",
    "decide",
    "probe_and_choose",
    "probe_plan",
    "range_plan",
]

MIN_PROBE = 8
"""The shortest probe, in updates."""
POSITIONS = (0.5, 1.0, 2.0, 4.0)
"""Where the probes go, as multiples of the range test's suggestion (one more repeats the
suggestion's own probe under another seed, to measure the probes' noise). Short runs prefer
higher peaks, hence more room above the suggestion than below."""
EVIDENCE = 4.0
"""How many times the probes' noise the best probe must beat the suggestion's probe by before
the search moves away from the range test's suggestion. Chosen on the design half of
``benchmarks/task_distribution.py`` (``benchmarks/distribution.py fit``, with the horizon
model's cross-validated shifts): of 0.5, 1, 1.5, 2, 3, 4 and never moving, 4 gave the lowest
mean regret of the searches with probes at budget 0.5 (0.255; 2: 0.270; never moving: 0.310)."""
MIN_FRACTION = 1 / 16
"""The shortest probes that count as evidence, as a fraction of the run. On the design half,
probes shorter than this (the only ones budget 0.25 buys) moved the answer the wrong way more
often than the right one (mean regret 0.28 when they could move it, 0.23 when they could not),
so the search does not buy them: it answers the range test's suggestion instead."""
_WALK_PROBES = 4
_WALK_FACTOR = 4.0
_LEARNED = 0.02


# -- the plan ----------------------------------------------------------------------------------


def range_plan(units: float, range_test_steps: int) -> int:
    """The range test's extension (``range_test(extend=...)``) when its first sweep finds no
    clear descent: the plain range test's (3) when the budget holds its worst case (four
    sweeps' length), else the largest that fits; 1 (none) when even two do not fit."""
    for extend in (3, 2):
        if range_test_steps * (1 + extend) <= units:
            return extend
    return 1


@dataclass(frozen=True)
class ProbePlan:
    """How the probes spend the budget: ``candidates`` probes (0: none) of ``steps`` updates
    each, and ``walk``: a walk of probes instead of probes around the range test's
    suggestion."""

    candidates: int
    steps: int
    walk: bool = False


def probe_plan(
    left: float, total_steps: int, eval_cost: float, *, bracketed: bool = True
) -> ProbePlan:
    """How to spend ``left`` (the budget the range test left, in updates; ``eval_cost``: one
    scoring of a probe). Around the range test's suggestion: the probes at :data:`POSITIONS`,
    one repeat and one evaluation of the start state, each probe as long as the budget allows
    (at most a quarter of the run); none when they would be shorter than :data:`MIN_PROBE` or
    than :data:`MIN_FRACTION` of the run.
    Without a bracket from the range test (no basin): a walk of four probes (and one
    evaluation of the start state)."""
    if not bracketed:
        n = _WALK_PROBES
        length = min(int((left - (n + 1) * eval_cost) // n), total_steps // 2)
        return ProbePlan(n, length, walk=True) if length >= MIN_PROBE else ProbePlan(0, 0)
    n = len(POSITIONS) + 1
    length = min(int((left - (n + 1) * eval_cost) // n), total_steps // 4)
    if length >= max(MIN_PROBE, total_steps * MIN_FRACTION):
        return ProbePlan(n, length)
    return ProbePlan(0, 0)


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
    traits: dict[str, float] | None = None,
) -> TuneResult:
    """The probes after the range test ``found``, as ``plan`` says, trained by ``prober``, and
    the peak for ``total_steps`` they choose, as a :class:`TuneResult` (``budget``: the
    fraction of a run allowed; ``units``: the same in updates; ``holdout``: how validation data
    was made, if it was; ``traits``: :func:`~lrkit.finder.horizon.model_traits`). Raises
    ``ValueError`` when no learning rate tried gave a finite loss."""
    anchor, ceiling, source = _anchor(found, prober.own_lr, prober.usual_lr)
    score_name = "metric" if prober.metric_fn is not None else "val_loss"

    def result(
        peak: float, probes: list[Probe], reason: str, evidence: dict[str, Any] | None = None
    ) -> TuneResult:
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
            schedule=prober.schedule,
            evidence=evidence,
        )

    if plan.candidates == 0:
        _check_finite(found, [])
        if found.suggestion is None:
            return result(anchor, [], f"{source}; the budget leaves no room for probes")
        shortest = math.ceil(total_steps * MIN_FRACTION)
        why = (
            f"{shortest} updates (1/{round(1 / MIN_FRACTION)} of the run), the shortest whose "
            "scores are evidence"
            if shortest > MIN_PROBE
            else f"{MIN_PROBE} updates, the shortest probe"
        )
        return result(anchor, [], f"{source}: the budget leaves no room for probes of {why}")
    if plan.walk:
        return _walked(found, anchor, source, plan, prober, result)
    traits = traits or {"adaptive": 0.0, "normalised": 0.0, "dropout": 0.0}
    choice = _evidence(found, anchor, ceiling, plan, prober, total_steps, traits)
    return result(choice.peak, choice.probes, choice.reason, choice.evidence)


@dataclass
class _Choice:
    peak: float
    probes: list[Probe]
    reason: str
    evidence: dict[str, Any]


def _evidence(
    found: RangeTestResult,
    anchor: float,
    ceiling: float | None,
    plan: ProbePlan,
    prober: Prober,
    total_steps: int,
    traits: dict[str, float],
) -> _Choice:
    """Probes around the range test's suggestion ``anchor``; the search moves away from it only
    when the best probe learned and beat the suggestion's probe by more than :data:`EVIDENCE`
    times the probes' noise, and then to the best probe's peak carried to the run's length by
    the horizon model (:mod:`lrkit.finder.horizon`), kept below the range test's ceiling and
    half the smallest peak whose probe diverged."""
    length = plan.steps
    peaks = [anchor * f for f in POSITIONS]
    if ceiling is not None:  # none above where the range test's loss turned up
        peaks = [p for p in peaks if p <= ceiling * 1.000001] or [anchor]
        while len(peaks) < len(POSITIONS):
            peaks.insert(0, peaks[0] / 2)
    start_loss = prober.start_loss("the probes")
    probes = prober.run_round(peaks, length, 1)
    repeat = prober.run_round([anchor], length, 1, seed_offset=1)[0]
    probes.append(repeat)
    _check_finite(found, probes)
    own = next(p for p in probes if math.isclose(p.peak, anchor, rel_tol=1e-9))
    best = min(probes[: len(peaks)], key=prober.key)
    noise = abs(prober.key(own) - prober.key(repeat))
    if math.isnan(noise):  # both diverged: no bound on how far they could differ
        noise = math.inf
    gap = prober.key(own) - prober.key(best)
    vertex = _vertex(probes[: len(peaks)], prober)
    x = horizon.features(
        traits, total_steps=total_steps, probe_steps=length, anchor=anchor, best_probe=vertex,
        ceiling=ceiling, peaks=[p.peak for p in probes[: len(peaks)]],
        keys=[prober.key(p) for p in probes[: len(peaks)]],
    )  # fmt: skip
    ev: dict[str, Any] = {
        "anchor": anchor, "ceiling": ceiling, "noise": noise, "gap": gap,
        "start_loss": start_loss, "vertex": vertex, "shift": horizon.load().predict(x),
        "features": x, "cap": _cap(probes, ceiling), "learned": _learned(best, start_loss),
    }  # fmt: skip
    peak, case = decide(ev)
    ev["moved"] = case in ("moved", "capped")
    stay = f"the range test's suggestion ({anchor:.3g})"
    reasons = {
        "not learned": f"{stay}: no probe of {length} updates learned",
        "noise unmeasured": (
            f"{stay}: the probes' noise could not be measured (the suggestion's probe scored "
            "the same under another seed), so no difference between probes is evidence"
        ),
        "within noise": (
            f"{stay}: no probe of {length} updates beat it by more than {EVIDENCE:g} times "
            f"the probes' noise ({_fmt(gap)} against noise {_fmt(noise)})"
        ),
    }
    if case in reasons:
        return _Choice(peak, probes, reasons[case], ev)
    how = (
        f"probes of {length} updates around the range test's suggestion ({anchor:.3g}): the "
        f"best ({vertex:.3g}) beat it by {_fmt(gap)} against noise {_fmt(noise)}; carried to "
        f"{total_steps} updates by the horizon model ({ev['shift']:+.2f} doublings)"
    )
    if case == "capped":
        how += f", capped at {peak:.3g}"
    return _Choice(peak, probes, how, ev)


def decide(evidence: Mapping[str, Any], factor: float = EVIDENCE) -> tuple[float, str]:
    """The search's answer from its evidence (:attr:`TuneResult.evidence
    <lrkit.finder.tune_result.TuneResult.evidence>` of probes around the suggestion) and which
    case gave it: the suggestion (``"not learned"``, ``"noise unmeasured"`` when the noise is 0,
    ``"within noise"`` when the gap is not above ``factor`` times the noise), else the vertex
    carried by the horizon shift (``"moved"``), or the cap when that is lower (``"capped"``)."""
    anchor = float(evidence["anchor"])
    if not evidence["learned"]:
        return anchor, "not learned"
    noise = evidence["noise"]
    if noise == 0:
        return anchor, "noise unmeasured"
    if not evidence["gap"] > factor * noise:
        return anchor, "within noise"
    peak = evidence["vertex"] * 2.0 ** evidence["shift"]
    cap = evidence["cap"]
    if cap is not None and peak > cap:
        return float(cap), "capped"
    return float(peak), "moved"


def _cap(probes: Sequence[Probe], ceiling: float | None) -> float | None:
    """The highest peak the search may answer: below the range test's ``ceiling`` and half the
    smallest peak whose probe diverged (``None``: neither)."""
    diverged = [p.peak for p in probes if p.diverged]
    caps = [c for c in (ceiling, min(diverged) / 2 if diverged else None) if c is not None]
    return min(caps, default=None)


def _fmt(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else str(x)


def _walked(
    found: RangeTestResult,
    anchor: float,
    source: str,
    plan: ProbePlan,
    prober: Prober,
    result: Any,
) -> TuneResult:
    """Without a basin: a walk of probes up from the anchor; the best that learned."""
    probes, learned = _walk(anchor / 2, plan, prober)
    where = f"a walk of probes up from {source} ({anchor:.3g})"
    if learned:
        peak = _vertex(probes, prober)
    else:  # too short to learn at any of them: the largest that did not diverge
        where += ", none of which learned: the largest that did not diverge"
        peak = max((p.peak for p in probes if not p.diverged), default=anchor)
    _check_finite(found, probes)
    cap = _cap(probes, None)
    if cap is not None and peak > cap:
        peak = cap
        where += f", capped at {peak:.3g}"
    return result(peak, probes, where)  # type: ignore[no-any-return]


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
