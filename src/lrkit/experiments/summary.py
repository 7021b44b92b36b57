"""Group finished trials by arm (configuration without the seed), summarise across seeds, and
say in words what the arms show and whether a recipe's claim held.

The words follow three rules: a spread is shown only when there are two or more seeds (one
seed shows its value and ``n=1``); a ratio of steps reads "fewer" or "more" as it is (``×1.27
more steps``, never ``×0.79 fewer``); and every target is named where it is used (the task's
target in the summary table, the baseline's final metric in the findings)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ..train.history import History
from .store import TrialRecord

__all__ = [
    "Arm",
    "Speedup",
    "best_arm",
    "fmt_pair",
    "fmt_values",
    "group_arms",
    "mean_std",
    "ranking_findings",
    "speedup",
    "speedup_findings",
    "steps_ratio",
    "steps_to",
]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value; NaN for none)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return math.nan, math.nan
    if len(xs) == 1:
        return xs[0], 0.0
    return float(np.mean(xs)), float(np.std(xs, ddof=1))


def fmt_pair(pair: tuple[float, float], digits: int = 4, n: int | None = None) -> str:
    """``mean ± std`` from :func:`mean_std` output with ``digits`` significant figures, or ``–``
    when there was no value. With ``n=1`` (one seed) there is no spread to show: the value and
    ``(n=1)``."""
    m, s = pair
    if math.isnan(m):
        return "–"
    if n == 1:
        return f"{m:.{digits}g} (n=1)"
    return f"{m:.{digits}g} ± {s:.2g}"


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def fmt_values(values: Sequence[float], digits: int = 4) -> str:
    """The finite ``values`` as ``mean ± std`` (two or more), ``value (n=1)`` (one) or ``–``
    (none)."""
    return fmt_pair(mean_std(values), digits, n=len(_finite(values)))


def steps_to(history: History, threshold: float) -> int | None:
    """Optimizer steps at the first evaluation whose metric reaches ``threshold``."""
    for step, m in zip(history.eval_step, history.metric, strict=False):
        if math.isfinite(m) and m >= threshold:
            return int(step)
    return None


def steps_ratio(steps: float, baseline_steps: float, baseline: str, *, short: bool = False) -> str:
    """How ``steps`` compare with ``baseline_steps``, in words that read the right way round:
    ``×2.5 fewer steps than constant`` or ``×1.27 more steps than constant``; with ``short``,
    for a table whose header names the baseline: ``×2.50 fewer``, ``×1.27 more``, ``as many``
    or ``–``."""
    if (
        not (math.isfinite(steps) and math.isfinite(baseline_steps))
        or min(steps, baseline_steps) <= 0
    ):
        return "–" if short else f"no step count to compare with {baseline}"
    ratio = baseline_steps / steps
    tail = "" if short else f" steps than {baseline}"
    if round(ratio, 2) == 1.0:
        return "as many" if short else f"as many steps as {baseline}"
    if ratio > 1.0:
        return f"×{ratio:.2f} fewer{tail}"
    return f"×{1.0 / ratio:.2f} more{tail}"


@dataclass(frozen=True)
class Arm:
    """All seeds of one configuration."""

    label: str
    records: tuple[TrialRecord, ...]

    @cached_property
    def histories(self) -> list[History]:
        """Histories of the trials that ran (ok or diverged), decoded once."""
        return [
            History.from_dict(r.result["history"])
            for r in self.records
            if r.result.get("history") is not None
        ]

    @property
    def statuses(self) -> dict[str, int]:
        """Count of trials by status."""
        out: dict[str, int] = {}
        for r in self.records:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def final_metrics(self) -> list[float]:
        """Final metric of every trial that ran (NaN for diverged ones without one)."""
        return [h.final_metric if h.final_metric is not None else math.nan for h in self.histories]

    def steps_to_target(self) -> list[float]:
        """Steps to the target per trial (NaN where the target was never reached)."""
        return [
            float(h.steps_to_target) if h.steps_to_target is not None else math.nan
            for h in self.histories
        ]

    def steps_to(self, threshold: float, *, budget: bool = False) -> list[float]:
        """Steps to ``threshold`` per trial that ran, by :func:`steps_to` (the first evaluation
        whose metric reaches it). A trial that never reaches it gives NaN, or with ``budget`` its
        whole budget of steps (``History.total_steps``), a lower bound on what it would need."""
        out = []
        for h in self.histories:
            s = steps_to(h, threshold)
            if s is not None:
                out.append(float(s))
            else:
                out.append(float(h.total_steps or len(h.lr)) if budget else math.nan)
        return out

    def reached(self, threshold: float) -> int:
        """How many trials reached ``threshold`` at some evaluation."""
        return sum(math.isfinite(s) for s in self.steps_to(threshold))

    def seconds_to_target(self) -> list[float]:
        """Training seconds to the target per trial (NaN where never reached)."""
        return [
            h.seconds_to_target if h.seconds_to_target is not None else math.nan
            for h in self.histories
        ]

    def train_seconds(self) -> list[float]:
        """Training seconds per trial."""
        return [h.seconds for h in self.histories]

    def summary_row(self) -> dict[str, Any]:
        """The numbers a summary table shows for this arm."""
        reached = [s for s in self.steps_to_target() if math.isfinite(s)]
        return {
            "arm": self.label,
            "trials": len(self.records),
            "statuses": self.statuses,
            "final_metric": mean_std(self.final_metrics()),
            "steps_to_target": mean_std(reached),
            "reached_target": f"{len(reached)}/{len(self.histories)}",
            "seconds_to_target": mean_std(
                [s for s in self.seconds_to_target() if math.isfinite(s)]
            ),
            "train_seconds": mean_std(self.train_seconds()),
        }


def group_arms(records: Iterable[TrialRecord]) -> list[Arm]:
    """Group records by ``config["arm"]`` (falling back to the key without its seed), in order."""
    by_label: dict[str, list[TrialRecord]] = {}
    for r in records:
        label = str(r.config.get("arm") or r.key.rsplit("/seed=", 1)[0])
        by_label.setdefault(label, []).append(r)
    return [Arm(label, tuple(recs)) for label, recs in by_label.items()]


def _seeds(n: int) -> str:
    return "one seed" if n == 1 else f"mean of {n} seeds"


def best_arm(arms: Sequence[Arm], prefix: str = "") -> Arm | None:
    """The arm with the highest mean final metric among those whose label starts with
    ``prefix`` (the first one on a tie); ``None`` when none has a finite final metric."""
    best: Arm | None = None
    best_mean = -math.inf
    for arm in arms:
        if not arm.label.startswith(prefix):
            continue
        m = mean_std(arm.final_metrics())[0]
        if math.isfinite(m) and m > best_mean:
            best, best_mean = arm, m
    return best


@dataclass(frozen=True)
class Speedup:
    """How many fewer steps ``claimant`` needs than ``baseline`` to reach ``target``, the
    baseline's mean final metric: per trial, the steps of :meth:`Arm.steps_to` with ``budget``
    (a trial that never reaches the target counts its whole budget)."""

    claimant: Arm
    baseline: Arm
    target: float
    claimant_steps: tuple[float, ...]
    baseline_steps: tuple[float, ...]

    @property
    def ratio(self) -> float:
        """The baseline's mean steps over the claimant's (above 1: the claimant is faster)."""
        return float(np.mean(self.baseline_steps) / np.mean(self.claimant_steps))

    @property
    def reached(self) -> int:
        """How many of the claimant's trials reached the target."""
        return self.claimant.reached(self.target)

    def words(self, metric: str = "metric") -> str:
        """The ratio in words that read the right way round (:func:`steps_ratio`), or that the
        claimant never reached the target (the baseline's final ``metric``)."""
        if self.reached == 0:
            return f"never reached {self.baseline.label}'s final {metric}"
        return steps_ratio(
            float(np.mean(self.claimant_steps)),
            float(np.mean(self.baseline_steps)),
            self.baseline.label,
        )

    def describe(self, metric: str) -> str:
        """The speed-up in a sentence: ``speed-up ×3.10: ...`` with both arms' mean steps, ``at
        most`` when some of the claimant's seeds never reached the target, or ``none`` when no
        seed did."""
        one, best = self.claimant.label, self.baseline.label
        goal = f"{best}'s final {metric} ({self.target:.4g})"
        n = len(self.claimant_steps)
        if self.reached == 0:
            seeds = "its one seed" if n == 1 else f"any of its {n} seeds"
            return f"speed-up: none: {one} never reached {goal} on {seeds}"
        bound = "" if self.reached == n else f" at most ({one} reached it on {self.reached}/{n})"
        return (
            f"speed-up ×{self.ratio:.2f}{bound}: {best} reached its own final {metric} "
            f"({self.target:.4g}) after {np.mean(self.baseline_steps):.0f} steps, {one} after "
            f"{np.mean(self.claimant_steps):.0f} ({_seeds(n)}; a seed that never reaches it "
            "counts its whole budget)"
        )


def speedup(arms: Sequence[Arm], claimant: str, rivals: str) -> Speedup | None:
    """The first arm whose label starts with ``claimant`` against the best (:func:`best_arm`)
    of the arms whose label starts with ``rivals``; ``None`` when either is missing or has no
    finished trials."""
    claim = next((a for a in arms if a.label.startswith(claimant) and a.histories), None)
    base = best_arm([a for a in arms if a is not claim], rivals)
    if claim is None or base is None:
        return None
    target = _target(base)
    return Speedup(
        claim,
        base,
        target,
        tuple(claim.steps_to(target, budget=True)),
        tuple(base.steps_to(target, budget=True)),
    )


def _target(baseline: Arm) -> float:
    return float(np.mean(_finite(baseline.final_metrics())))


def speedup_findings(
    arms: Sequence[Arm],
    baseline: str,
    metric: str,
    claimant: str | None = None,
    *,
    budget: bool = False,
) -> list[str]:
    """Steps each arm needs to reach the baseline's final metric, and the verdict.

    The target is the ``baseline`` arm's mean final ``metric`` (named in the first line; it is
    not the task's target of the summary table). Each arm gets its mean steps to the target over
    the seeds that reached it, or with ``budget`` over all its seeds, a seed that never reached
    it counting its whole budget (:meth:`Arm.steps_to`; the ratios are then those of
    :class:`Speedup`), and how that compares with the baseline (:func:`steps_ratio`). The last
    line says whether the claim held: ``claimant`` (default: every arm but the baseline)
    reached the target on every seed in fewer steps than the baseline. Empty when the baseline
    has no finite final metric.
    """
    base = next((a for a in arms if a.label == baseline), None)
    if base is None or not base.histories:
        return []
    finals = _finite(base.final_metrics())
    if not finals:
        return []
    target = _target(base)
    goal = f"{baseline}'s final {metric} ({target:.4g})"
    lines = [
        f"target for the steps below: {baseline}'s final {metric}, {target:.4g} "
        f"({_seeds(len(finals))}); the summary table counts steps to the task's target instead"
    ]
    times: dict[str, tuple[float, int, int]] = {}
    for arm in arms:
        if not arm.histories:
            continue
        steps = _finite(arm.steps_to(target, budget=budget))
        times[arm.label] = (
            float(np.mean(steps)) if steps else math.nan,
            arm.reached(target),
            len(arm.histories),
        )
    base_steps = times[baseline][0]
    for label, (mean, k, n) in times.items():
        if k == 0:
            lines.append(f"{label}: never reached {goal} ({n} seed{'s' if n != 1 else ''})")
            continue
        seeds = f"{k}/{n} seeds"
        if budget and k < n:
            seeds += ", the others counted at their whole budget"
        text = f"{label}: reached {goal} after {mean:.0f} steps ({seeds})"
        if label != baseline:
            text += f", {steps_ratio(mean, base_steps, baseline)}"
        lines.append(text)
    named = [claimant] if claimant is not None else [x for x in times if x != baseline]
    for label in named:
        mean, k, n = times.get(label, (math.nan, 0, 0))
        if n == 0:
            lines.append(f"verdict: not judged: {label} has no finished trials")
        elif k < n:
            lines.append(
                f"verdict: the claim did not hold: {label} reached {goal} on {k} of {n} seeds"
            )
        elif math.isfinite(base_steps) and mean < base_steps:
            lines.append(
                f"verdict: the claim held: {label} reached {goal} on every seed, "
                f"{steps_ratio(mean, base_steps, baseline)}"
            )
        else:
            lines.append(
                f"verdict: the claim did not hold: {label} needed "
                f"{steps_ratio(mean, base_steps, baseline)}"
            )
    return lines


def ranking_findings(
    arms: Sequence[Arm],
    metric: str,
    *,
    claimant: Sequence[str] = (),
    rivals: Sequence[str] = (),
    share: float = 1.0,
    differ: bool = False,
) -> list[str]:
    """The arms ranked by mean final ``metric`` (one seed shows its value and ``n=1``), and the
    verdict.

    With ``claimant``, the claim held when each claimant's mean final metric is at least that
    of ``share`` of the ``rivals`` (``share=1``: better than all of them; ``0.5``: competitive,
    at least as good as half). With ``differ``, the claim is that the arms differ: it held when
    the best and worst means differ by more than twice the largest standard deviation over
    seeds (not judged with one seed). With neither there is no claim and no verdict.
    """
    means = {a.label: mean_std(a.final_metrics()) for a in arms if a.histories}
    counts = {a.label: len(_finite(a.final_metrics())) for a in arms if a.histories}
    ranked = sorted(means, key=lambda k: -means[k][0] if math.isfinite(means[k][0]) else math.inf)
    lines = [
        f"{i + 1}. {label}: final {metric} {fmt_pair(means[label], 4, n=counts[label])}"
        for i, label in enumerate(ranked)
    ]
    finite = {k: v[0] for k, v in means.items() if math.isfinite(v[0])}
    if claimant:
        missing = [x for x in (*claimant, *rivals) if x not in finite]
        if missing:
            lines.append(f"verdict: not judged: no final {metric} for {', '.join(missing)}")
            return lines
        need = math.ceil(share * len(rivals) - 1e-9)
        short = [c for c in claimant if sum(finite[c] >= finite[r] for r in rivals) < need]
        whom = "all of" if share >= 1.0 else f"at least {need} of"
        if short:
            lines.append(
                f"verdict: the claim did not hold: {', '.join(short)} ended below {whom} "
                f"{', '.join(rivals)} in final {metric}"
            )
        else:
            lines.append(
                f"verdict: the claim held: {', '.join(claimant)} ended at or above {whom} "
                f"{', '.join(rivals)} in final {metric}"
            )
        if min(counts[x] for x in (*claimant, *rivals)) < 2:
            lines.append("(one seed per arm: no spread to tell a difference from noise)")
        return lines
    if not differ or len(finite) < 2:
        return lines
    if min(counts.values()) < 2:
        lines.append("verdict: not judged: one seed per arm gives no spread to compare with")
        return lines
    gap = max(finite.values()) - min(finite.values())
    noise = max(s for _, s in means.values() if math.isfinite(s))
    held = gap > 2.0 * noise
    lines.append(
        f"verdict: the claim {'held' if held else 'did not hold'}: the best and worst final "
        f"{metric} differ by {gap:.3g}, {'more' if held else 'not more'} than twice the largest "
        f"spread over seeds ({noise:.2g})"
    )
    return lines
