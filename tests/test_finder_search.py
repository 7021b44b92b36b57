"""The budgeted search (tune_lr): its choice on synthetic objectives, the budget, the exact
restore, determinism, and its checks of bad input."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from lrkit import schedules as S
from lrkit.finder import horizon, peak_choice, probes, range_test, search
from lrkit.finder.search import Probe, TuneResult, tune_lr
from strategies_finder import assert_same_state, capture, make_data, mlp, pretrain

pytestmark = pytest.mark.usefixtures("one_thread")


# -- the choice, on synthetic objectives --------------------------------------------------------


class _FakeProber:
    """Scores from a known objective: the best peak of a run of ``steps`` updates is
    ``best_at(steps)`` and the score (higher is better) falls with the squared log2-distance
    from it. A probe under ``seed_offset`` k scores ``noise * k`` higher: the repeat of a probe
    under another seed differs from it by ``noise``. ``learns``: whether the probes' validation
    loss falls clearly below the start state's."""

    start_loss_value = 2.0

    def __init__(
        self,
        best_at: Any,
        *,
        diverge_above: float = math.inf,
        learns_above: float = 0.0,
        noise: float = 0.0,
        learns: bool = True,
    ) -> None:
        self.best_at = best_at
        self.diverge_above = diverge_above
        self.learns_above = learns_above
        self.noise = noise
        self.learns = learns
        self.maximize = True
        self.metric_fn = None
        self.schedule = None
        self.spent = 0.0
        self.own_lr = 0.1
        self.usual_lr = 0.1
        self.runs: list[tuple[float, int]] = []
        self.rounds: list[tuple[list[float], int, int, int]] = []
        self.start_losses = 0

    def run(self, peak: float, steps: int, round_: int, seed_offset: int) -> Probe:
        self.runs.append((peak, steps))
        self.spent += steps
        if peak > self.diverge_above:
            return Probe(peak, steps, math.nan, True, round_)
        if peak <= self.learns_above:  # too small to learn in a probe: noise around the start
            score = -100.0 + 0.01 * math.sin(1e3 * peak)
            return Probe(peak, steps, score, False, round_, self.start_loss_value)
        score = 1.0 - (math.log2(peak) - math.log2(self.best_at(steps))) ** 2
        score += self.noise * seed_offset
        # learning: far below the start state's loss; not learning: 1% below it (the rule is 2%)
        val_loss = self.start_loss_value * (0.5 - score / 100 if self.learns else 0.99)
        return Probe(peak, steps, score, False, round_, val_loss)

    def start_loss(self, before: str = "") -> float:
        self.start_losses += 1
        return self.start_loss_value

    def run_round(
        self, peaks: list[float], steps: int, round_: int, seed_offset: int = 0
    ) -> list[Probe]:
        self.rounds.append((list(peaks), steps, round_, seed_offset))
        return [self.run(p, steps, round_, seed_offset) for p in peaks]

    def key(self, p: Probe) -> float:
        return math.inf if p.diverged else -p.score


_TRAITS = {"adaptive": 0.0, "normalised": 1.0, "dropout": 0.0}


def _choose(
    monkeypatch: pytest.MonkeyPatch,
    prober: _FakeProber,
    anchor: float,
    total: int = 1000,
    plan: peak_choice.ProbePlan | None = None,
    ceiling: float | None = None,
) -> TuneResult:
    """The search's choice from ``prober``'s scores, anchored at ``anchor`` below ``ceiling``
    (default plan: the probes around the suggestion, 40 updates each)."""
    monkeypatch.setattr(
        peak_choice, "_anchor", lambda result, own, usual: (anchor, ceiling, "a test anchor")
    )
    if plan is None:
        plan = peak_choice.ProbePlan(candidates=5, steps=40)
    found: Any = None  # the range-test result is only passed through
    return peak_choice.probe_and_choose(found, plan, prober, total, 0.5, 500, None, _TRAITS)  # type: ignore[arg-type]


def _horizon(
    monkeypatch: pytest.MonkeyPatch,
    intercept: float,
    coef: dict[str, float] | None = None,
    mean: dict[str, float] | None = None,
    scale: dict[str, float] | None = None,
    high: float = 1.0,
) -> horizon.HorizonModel:
    """Make ``horizon.load`` return a known model (the shipped one is refitted over time)."""
    model = horizon.HorizonModel(
        intercept=intercept,
        coef=coef or {},
        mean=mean or {},
        scale=scale or {},
        low=-4.0,
        high=high,
    )
    monkeypatch.setattr(horizon, "load", lambda: model)
    return model


# the suggestion 0.1 and a best short run at 0.15: the probes at 0.05, 0.1, 0.2 and 0.4 score
# 1 - log2(p / 0.15)^2, the best (0.2) beating the suggestion's by this much
_GAP = math.log2(0.1 / 0.15) ** 2 - math.log2(0.2 / 0.15) ** 2


def test_the_plan_keeps_the_range_test_and_spends_the_rest_on_five_probes() -> None:
    # the extension: three more sweeps when the budget holds them, else two, else none
    assert peak_choice.range_plan(400, 100) == 3
    assert peak_choice.range_plan(399, 100) == 2
    assert peak_choice.range_plan(300, 100) == 2
    assert peak_choice.range_plan(299, 100) == 1
    assert peak_choice.range_plan(100, 100) == 1
    # four positions, one repeat, six evaluations (the start state's and the probes')
    assert peak_choice.probe_plan(100, 200, 2.0) == peak_choice.ProbePlan(5, 17)
    assert peak_choice.probe_plan(1e5, 400, 1.0) == peak_choice.ProbePlan(5, 100)  # a quarter
    # a run of 100 steps: a sixteenth is 6.25 updates, so MIN_PROBE (8) is the shortest
    assert peak_choice.probe_plan(46, 100, 1.0) == peak_choice.ProbePlan(5, 8)
    assert peak_choice.probe_plan(45.9, 100, 1.0) == peak_choice.ProbePlan(0, 0)
    # without a basin: a walk of four probes, at most half the run each
    assert peak_choice.probe_plan(100, 1000, 2.0, bracketed=False) == peak_choice.ProbePlan(
        4, 22, walk=True
    )
    assert peak_choice.probe_plan(1e5, 40, 0.0, bracketed=False) == peak_choice.ProbePlan(
        4, 20, walk=True
    )
    assert peak_choice.probe_plan(36, 1000, 1.0, bracketed=False) == peak_choice.ProbePlan(0, 0)


@pytest.mark.parametrize(
    ("eval_cost", "first", "steps"),
    [(0.0, 540, 34), (8 / 3, 622, 39)],
    ids=["free evaluations", "eight validation batches"],
)
def test_budget_half_buys_probes_from_the_run_whose_sixteenth_they_reach(
    monkeypatch: pytest.MonkeyPatch, eval_cost: float, first: int, steps: int
) -> None:
    """Budget 0.5 after the 100-step range test leaves ``total / 2 - 100`` updates for five
    probes and six evaluations. Free evaluations: 540 steps leave 170, probes of 34 >= 540 / 16
    = 33.75; 539 leave 169.5, probes of 33 < 33.69. Eight validation batches (8/3 an
    evaluation, 16 for six): 622 steps leave 211 - 16 = 195, probes of 39 >= 38.875; 621 leave
    194.5, probes of 38 < 38.81."""
    assert peak_choice.MIN_FRACTION == 1 / 16 and peak_choice.MIN_PROBE == 8
    plan = peak_choice.probe_plan(0.5 * first - 100, first, eval_cost)
    assert plan == peak_choice.ProbePlan(5, steps)
    assert steps >= first * peak_choice.MIN_FRACTION
    below = first - 1
    left = 0.5 * below - 100
    assert peak_choice.probe_plan(left, below, eval_cost) == peak_choice.ProbePlan(0, 0)
    # MIN_PROBE alone would buy probes of steps - 1 updates there
    monkeypatch.setattr(peak_choice, "MIN_FRACTION", 0.0)
    assert peak_choice.probe_plan(left, below, eval_cost) == peak_choice.ProbePlan(5, steps - 1)


def test_budget_quarter_never_buys_probes_around_a_suggestion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A quarter of a run after the 100-step range test leaves probes of at most
    ``(total / 4 - 100) / 5 = total / 20 - 20`` updates, always short of a sixteenth of the run;
    the walk without a basin has no such rule."""
    totals = range(400, 20001, 7)
    assert all(
        peak_choice.probe_plan(0.25 * t - 100, t, 0.0) == peak_choice.ProbePlan(0, 0)
        for t in totals
    )
    walks = [peak_choice.probe_plan(0.25 * t - 100, t, 0.0, bracketed=False) for t in totals]
    assert walks[-1] == peak_choice.ProbePlan(4, 1225, walk=True)  # (5000 - 100) // 4
    monkeypatch.setattr(peak_choice, "MIN_FRACTION", 0.0)
    assert peak_choice.probe_plan(0.25 * 1000 - 100, 1000, 0.0) == peak_choice.ProbePlan(5, 30)


def test_the_probes_sit_around_the_suggestion_and_repeat_its_own_under_another_seed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prober = _FakeProber(lambda steps: 0.1)
    out = _choose(monkeypatch, prober, anchor=0.1)
    assert prober.start_losses == 1
    assert prober.rounds == [([0.05, 0.1, 0.2, 0.4], 40, 1, 0), ([0.1], 40, 1, 1)]
    assert [p.peak for p in out.probes] == [0.05, 0.1, 0.2, 0.4, 0.1]
    # the suggestion's own probe is the best: the answer is the suggestion, exactly
    assert out.peak == 0.1 and out.evidence is not None and out.evidence["moved"] is False


def test_a_ceiling_drops_the_probes_above_it_and_adds_halvings_below(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prober = _FakeProber(lambda steps: 0.1)
    _choose(monkeypatch, prober, anchor=0.1, ceiling=0.25)
    assert prober.rounds[0][0] == pytest.approx([0.025, 0.05, 0.1, 0.2])
    assert prober.rounds[1][0] == [0.1]


def test_probes_that_learn_nothing_leave_the_range_tests_suggestion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _horizon(monkeypatch, intercept=-1.0)
    # the best probe beats the suggestion's far beyond the (zero) noise, but its validation
    # loss is only 1% below the start state's
    prober = _FakeProber(lambda steps: 0.15, learns=False)
    out = _choose(monkeypatch, prober, anchor=0.1)
    assert out.peak == 0.1
    assert "range test's suggestion (0.1)" in out.reason
    assert "no probe of 40 updates learned" in out.reason
    ev = out.evidence
    assert ev is not None and ev["learned"] is False and ev["moved"] is False
    assert ev["start_loss"] == 2.0 and ev["gap"] == pytest.approx(_GAP) and ev["noise"] == 0.0


@pytest.mark.parametrize("margin", [1.05, 2.0])
def test_a_difference_within_the_probes_noise_leaves_the_suggestion(
    monkeypatch: pytest.MonkeyPatch, margin: float
) -> None:
    _horizon(monkeypatch, intercept=-1.0)
    noise = margin * _GAP / peak_choice.EVIDENCE  # the gap is below EVIDENCE times the noise
    prober = _FakeProber(lambda steps: 0.15, noise=noise)
    out = _choose(monkeypatch, prober, anchor=0.1)
    assert out.peak == 0.1
    assert f"beat it by more than {peak_choice.EVIDENCE:g} times the probes' noise" in out.reason
    ev = out.evidence
    assert ev is not None and ev["moved"] is False and ev["learned"] is True
    assert ev["noise"] == pytest.approx(noise) and ev["gap"] == pytest.approx(_GAP)


def test_a_noise_that_cannot_be_measured_leaves_the_suggestion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A repeat that scores exactly the same (a pipeline the seed does not change) measures no
    noise, so no gap between probes, however large, is evidence."""
    _horizon(monkeypatch, intercept=-1.0)
    prober = _FakeProber(lambda steps: 0.4, noise=0.0)
    out = _choose(monkeypatch, prober, anchor=0.1)
    assert out.peak == 0.1
    assert "noise could not be measured" in out.reason
    ev = out.evidence
    assert ev is not None and ev["moved"] is False and ev["noise"] == 0.0 and ev["gap"] > 1


@pytest.mark.parametrize(
    ("intercept", "coef", "mean", "scale"),
    [
        (-1.0, {}, {}, {}),
        (
            0.25,
            {"doublings": -0.5, "probe_offset": 1.0, "normalised": 0.5},
            {"doublings": 3.0},
            {"doublings": 2.0},
        ),
    ],
    ids=["intercept", "features"],
)
def test_a_difference_beyond_the_noise_moves_to_the_vertex_carried_by_the_horizon_model(
    monkeypatch: pytest.MonkeyPatch,
    intercept: float,
    coef: dict[str, float],
    mean: dict[str, float],
    scale: dict[str, float],
) -> None:
    _horizon(monkeypatch, intercept, coef, mean, scale)
    noise = 0.95 * _GAP / peak_choice.EVIDENCE  # just beyond the threshold
    prober = _FakeProber(lambda steps: 0.15, noise=noise)
    out = _choose(monkeypatch, prober, anchor=0.1)
    # the objective is a parabola in log2(peak): the vertex through 0.1, 0.2, 0.4 is 0.15
    doublings = math.log2(1000 / 40)
    shift = (
        intercept
        + coef.get("doublings", 0.0) * (doublings - 3.0) / 2.0
        + coef.get("probe_offset", 0.0) * math.log2(1.5)
        + coef.get("normalised", 0.0) * 1.0
    )
    assert out.peak == pytest.approx(0.15 * 2**shift, rel=1e-6)
    ev = out.evidence
    assert ev is not None and ev["moved"] is True and ev["cap"] is None
    assert ev["vertex"] == pytest.approx(0.15, rel=1e-6)
    assert ev["shift"] == pytest.approx(shift, rel=1e-9)
    assert out.peak == pytest.approx(ev["vertex"] * 2 ** ev["shift"], rel=1e-12)
    assert ev["features"]["doublings"] == pytest.approx(doublings)
    assert ev["features"]["normalised"] == 1.0
    assert f"({shift:+.2f} doublings)" in out.reason and "capped" not in out.reason


def test_the_moved_peak_is_capped_at_the_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    _horizon(monkeypatch, intercept=1.5, high=2.0)  # the vertex 0.15 carried to 0.42
    prober = _FakeProber(lambda steps: 0.15, noise=0.01)
    out = _choose(monkeypatch, prober, anchor=0.1, ceiling=0.41)
    assert [p.peak for p in out.probes] == [0.05, 0.1, 0.2, 0.4, 0.1]
    assert out.evidence is not None and out.evidence["moved"] is True
    assert out.evidence["vertex"] == pytest.approx(0.15, rel=1e-6)
    assert out.evidence["shift"] == 1.5 and out.evidence["cap"] == 0.41
    assert out.peak == 0.41 and "capped at 0.41" in out.reason


def test_the_moved_peak_is_capped_at_half_a_probe_that_diverged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _horizon(monkeypatch, intercept=1.0)
    prober = _FakeProber(lambda steps: 0.15, diverge_above=0.3, noise=0.01)
    out = _choose(monkeypatch, prober, anchor=0.1)
    assert [p.peak for p in out.probes if p.diverged] == [0.4]
    # the best that did not diverge (0.2) is at the round's edge: it is the vertex
    assert out.evidence is not None and out.evidence["vertex"] == 0.2
    assert out.evidence["cap"] == 0.2 and out.peak == 0.2
    assert "capped at 0.2" in out.reason


_WALK = peak_choice.ProbePlan(candidates=4, steps=100, walk=True)


@pytest.mark.parametrize("learns_above", [2e-3, 2e-2])
def test_without_a_bracket_a_walk_climbs_until_a_probe_learns_then_brackets_it(
    monkeypatch: pytest.MonkeyPatch, learns_above: float
) -> None:
    # the usual LR (1e-3) learns nothing in a probe; the best short run is at 0.3
    prober = _FakeProber(lambda steps: 0.3, learns_above=learns_above)
    out = _choose(monkeypatch, prober, anchor=1e-3, plan=_WALK)
    peaks = [p for p, _ in prober.runs]
    assert peaks[0] == pytest.approx(1e-3 / 2)  # from half the anchor
    first = next(i for i, p in enumerate(peaks) if p > learns_above)
    assert peaks[: first + 1] == pytest.approx([peaks[0] * 4**i for i in range(first + 1)])
    # the slots left go half a step above the first that learned, then below it
    rest = [peaks[first] * 2, peaks[first] / 2][: 4 - first - 1]
    assert peaks[first + 1 :] == pytest.approx(rest)
    assert "walk of probes" in out.reason
    assert out.peak == pytest.approx(peak_choice._vertex(out.probes, prober))  # type: ignore[arg-type]


def test_a_walk_where_nothing_learns_takes_the_largest_that_did_not_diverge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prober = _FakeProber(lambda steps: 1.0, learns_above=10.0, diverge_above=0.02)
    out = _choose(monkeypatch, prober, anchor=1e-3, plan=_WALK)
    # up by fours from half the anchor, until a probe diverges
    assert [p.peak for p in out.probes] == pytest.approx([5e-4, 2e-3, 8e-3, 3.2e-2])
    assert [p.diverged for p in out.probes] == [False, False, False, True]
    assert out.peak == pytest.approx(8e-3)
    assert "none of which learned" in out.reason


def test_a_walk_that_starts_too_high_walks_down(monkeypatch: pytest.MonkeyPatch) -> None:
    prober = _FakeProber(lambda steps: 0.002, diverge_above=0.01)
    out = _choose(monkeypatch, prober, anchor=0.1, plan=_WALK)
    peaks = [p for p, _ in prober.runs]
    assert peaks[1] == pytest.approx(peaks[0] / 4)  # down after a divergence
    assert all(p.peak < 0.01 for p in out.probes if not p.diverged)
    assert out.peak < min(p.peak for p in out.probes if p.diverged) / 2


# -- the real thing on a small model -------------------------------------------------------------


def _setup() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = mlp()
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def _final_accuracy(peak: float, steps: int, data: list[Any], val: list[Any]) -> float:
    model, opt = _setup()
    sched = __import__("lrkit").Scheduler(opt, lr=S.one_cycle(peak, steps))
    it = iter(data * (steps // len(data) + 1))
    for _ in range(steps):
        x, y = next(it)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        if not torch.isfinite(loss):
            return 0.0
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        return float(np.mean([(model(x).argmax(1) == y).float().mean() for x, y in val]))


def _accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
    return float((out.argmax(1) == y).float().mean())


def _split(n: int = 768, batch: int = 32) -> tuple[list[Any], list[Any]]:
    """Training and validation batches of one labelling."""
    batches = make_data(n=n, batch=batch)
    cut = len(batches) * 2 // 3
    return batches[:cut], batches[cut:]


def _tuned(data: list[Any], val: list[Any], total: int, **kwargs: Any) -> TuneResult:
    """``tune_lr`` twice on one model, scored on accuracy: checks that everything is restored
    and that the second search repeats the first exactly; returns the first."""
    model, opt = _setup()
    before = capture(model, opt)
    a, b = (
        tune_lr(
            model,
            opt,
            data,
            nn.functional.cross_entropy,
            val_data=val,
            total_steps=total,
            metric_fn=_accuracy,
            maximize=True,
            **kwargs,
        )
        for _ in range(2)
    )
    assert_same_state(before, capture(model, opt))
    assert a.peak == b.peak and a.probes == b.probes
    return a


def _regret(peak: float, total: int, data: list[Any], val: list[Any]) -> float:
    """Normalised regret of ``peak`` against a grid of one-cycle peaks a third of a decade
    apart: (best - score) / (best - median)."""
    grid = [10 ** (k / 3) * 0.1 for k in range(-6, 5)]
    scores = [_final_accuracy(p, total, data, val) for p in grid]
    best, median = max(scores), float(np.median(scores))
    return (best - _final_accuracy(peak, total, data, val)) / (best - median)


def test_restores_everything_respects_the_budget_and_is_deterministic() -> None:
    data, val = _split()
    a = _tuned(data, val, 640, budget=0.5, seed=3)  # probes of >= 640 / 16 updates
    assert isinstance(a, TuneResult) and a.peak > 0 and math.isfinite(a.peak)
    assert 0 < a.spent <= 0.5
    assert a.probes and {p.round for p in a.probes} <= {1, 2}
    assert a.score_name == "metric" and a.holdout is None
    assert len(a.range_test.lrs) >= 10


def test_with_probes_long_enough_its_peak_trains_no_worse_than_the_range_tests() -> None:
    """The search answers the range test's suggestion, or a peak its probes found better by
    more than their noise: trained for the run, it is not worse than the suggestion."""
    data, val = _split()
    found = _tuned(data, val, 600, budget=1.0)  # probes of 97 updates
    suggested = found.range_test.suggestion
    assert suggested is not None and found.evidence is not None
    assert found.evidence["noise"] > 0  # the repeat trained on the batches in another order
    regret = _regret(found.peak, 600, data, val)
    assert regret <= _regret(suggested, 600, data, val) + 0.05, (found.peak, found.reason)


def test_a_range_test_without_a_basin_hands_over_to_a_walk_that_restores_everything() -> None:
    data, val = _split()
    # a sweep of learning rates far too small to show a descent
    found = _tuned(data, val, 300, end_lr=1e-4)
    assert found.range_test.suggestion is None and "walk of probes" in found.reason
    assert 0 < found.spent <= 0.5
    assert all(math.isfinite(p.val_loss) for p in found.probes if not p.diverged)
    assert _regret(found.peak, 300, data, val) <= 0.5, found.peak


def test_without_val_data_a_slice_of_a_list_is_held_out() -> None:
    data = make_data(n=640, batch=32)
    model, opt = _setup()
    seen: list[int] = []

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen.append(id(y))
        return nn.functional.cross_entropy(out, y)

    # two held-out batches: probes of at least (280 - 100 - 6 * 2/3) // 5 = 35 = 560 / 16
    found = tune_lr(model, opt, data, loss_fn, total_steps=560, budget=0.5)
    assert found.holdout is not None and "2 of the 20 training batches held out" in found.holdout
    assert found.score_name == "val_loss" and found.probes


def test_the_default_schedule_cycles_momentum_only_when_the_optimizer_has_it() -> None:
    data, val = _split(384)
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.Adagrad(model.parameters(), lr=0.01)
    found = tune_lr(model, opt, data, nn.functional.cross_entropy, val_data=val, total_steps=200)
    made = found.train_schedule()
    assert isinstance(made, S.Hyper) and made.momentum is None
    assert found.one_cycle().lr(0) == pytest.approx(found.peak / 25)


def test_a_custom_schedule_is_used_by_the_probes() -> None:
    data, val = _split(384)
    model, opt = _setup()
    made: list[tuple[float, int]] = []

    def cosine(peak: float, steps: int) -> S.Schedule:
        made.append((peak, steps))
        return S.warmup(S.cosine(peak, steps - steps // 10), steps // 10)

    found = tune_lr(
        model,
        opt,
        data,
        nn.functional.cross_entropy,
        val_data=val,
        total_steps=576,  # probes of at least (288 - 100 - 8) // 5 = 36 = 576 / 16
        schedule=cosine,
    )
    probe_calls = [(p.peak, p.steps) for p in found.probes]
    assert probe_calls and set(probe_calls) <= set(made)
    assert isinstance(found.train_schedule(), S.Schedule)


# -- bad input: a clear error before anything changes --------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"budget": 0.01}, ValueError, "fewer than the range test's 100"),
        ({"budget": 0.0}, ValueError, "budget must be a fraction"),
        ({"total_steps": 10}, ValueError, "shorter than two probes"),
        ({"val_data": []}, ValueError, "empty"),
        ({"schedule": lambda peak: S.constant(peak)}, ValueError, r"accept \(peak, steps\)"),
        ({"schedule": lambda peak, steps: 0.1}, ValueError, "must return an lrkit Schedule"),
        ({"maximize": True}, ValueError, "maximize=True needs metric_fn"),
    ],
)
def test_bad_input_raises_before_anything_changes(
    kwargs: dict[str, Any], error: type, match: str
) -> None:
    model, opt = _setup()
    before = capture(model, opt)
    args: dict[str, Any] = {"total_steps": 400, "val_data": make_data(n=64, batch=32)}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        tune_lr(model, opt, make_data(), nn.functional.cross_entropy, **args)
    assert_same_state(before, capture(model, opt))


@pytest.mark.parametrize(
    ("total", "budget", "advice"),
    [
        (400, 0.2, "raise budget to at least 0.25"),
        (60, 1.0, "the range test alone costs more than the run"),
    ],
)
def test_a_budget_below_the_range_test_raises_before_anything_changes(
    total: int, budget: float, advice: str
) -> None:
    model, opt = _pretrained()
    before = capture(model, opt)
    loss = _Calls()
    with pytest.raises(ValueError) as info:
        tune_lr(
            model,
            opt,
            make_data(),
            loss,
            val_data=make_data(n=64),
            total_steps=total,
            budget=budget,
        )
    message = " ".join(str(info.value).split())
    assert message == (
        f"budget {budget:g} of {total} steps is {budget * total:.0f} updates, fewer than the "
        "range test's 100 (range_test_steps), which the search never shortens; "
        f"{advice}, or use range_test alone: its suggestion is what tune_lr answers when the "
        "budget buys no probes"
    )
    assert loss.calls == 0
    assert_same_state(before, capture(model, opt))


@pytest.mark.parametrize(
    ("total", "budget", "steps", "shortest", "unfractioned"),
    [(200, 0.5, 100, 13, 0), (400, 0.1, 40, 25, 0), (800, 0.25, 100, 50, 19)],
    ids=["default", "shorter", "quarter"],
)
def test_a_budget_without_room_for_probes_answers_the_range_tests_suggestion(
    monkeypatch: pytest.MonkeyPatch,
    total: int,
    budget: float,
    steps: int,
    shortest: int,
    unfractioned: int,
) -> None:
    """No room left after the range test (``default``, ``shorter``), or room only for probes
    shorter than a sixteenth of the run (``quarter``: the range test stops at 97 updates of the
    200, leaving 103; probes of (103 - 6 * 4/3) // 5 = 19 < 800 / 16 = 50): the answer is the
    plain range test's suggestion. ``unfractioned``: the probes' length without the sixteenth
    (:data:`~lrkit.finder.peak_choice.MIN_PROBE` alone)."""
    data, val = _split(384)
    model, opt = _setup()
    before = capture(model, opt)
    plain = range_test(model, opt, data, nn.functional.cross_entropy, steps=steps, seed=0)
    found = tune_lr(
        model,
        opt,
        data,
        nn.functional.cross_entropy,
        val_data=val,
        total_steps=total,
        budget=budget,
        range_test_steps=steps,
        seed=0,
    )
    assert plain.suggestion is not None and plain.extended_from is None
    assert found.peak == plain.suggestion
    assert np.array_equal(found.range_test.lrs, plain.lrs)
    assert np.array_equal(found.range_test.losses, plain.losses)
    assert found.probes == [] and found.evidence is None
    assert found.spent == pytest.approx(len(plain.lrs) / total)
    assert found.reason == (
        f"the range test's suggestion: the budget leaves no room for probes of {shortest} "
        "updates (1/16 of the run), the shortest whose scores are evidence"
    )
    assert_same_state(before, capture(model, opt))
    monkeypatch.setattr(peak_choice, "MIN_FRACTION", 0.0)
    left = budget * total - len(plain.lrs)
    assert peak_choice.probe_plan(left, total, len(val) / 3).steps == unfractioned


# -- the command line ----------------------------------------------------------------------------


@pytest.mark.slow
def test_find_with_a_budget_prints_the_probes_and_writes_the_choice(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lrkit", "find", "--task", "breast-cancer-mlp", "--budget"]
    proc = subprocess.run(
        [*cmd, "0.5", "--total-steps", "576", "--out", str(out)],  # probes of >= 576 / 16
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((out / "tune.json").read_text())
    assert saved["peak"] > 0 and 0 < saved["spent"] <= 0.5 and saved["probes"]
    assert f"tuned one-cycle peak for {saved['total_steps']} steps" in proc.stdout
    assert (out / "tune.png").stat().st_size > 0
    bad = subprocess.run(
        [*cmd, "0.01", "--out", str(tmp_path / "bad")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert bad.returncode == 2
    assert "fewer than the range test's 100 (range_test_steps)" in " ".join(
        (bad.stderr + bad.stdout).split()
    )
    assert not (tmp_path / "bad" / "tune.json").exists()


def test_without_a_basin_the_probes_start_from_the_optimizers_own_lr() -> None:
    from lrkit.finder import RangeTestResult

    flat = RangeTestResult.build(
        lrs=np.geomspace(1e-7, 10, 60), losses=np.ones(60), stop_reason="completed"
    )
    assert flat.suggestion is None
    anchor, _, source = peak_choice._anchor(flat, 0.03, 0.1)
    assert anchor == 0.03 and "own learning rate" in source
    anchor, _, source = peak_choice._anchor(flat, 1e-7, 0.1)  # a finder's placeholder LR
    assert anchor == 0.1 and "usual learning rate" in source
    adam = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-7)
    assert probes.usual_lr(adam) == 1e-3


# -- Ctrl-C and a loss that is never finite: nothing comes back, everything is restored ---------


class _Calls:
    """``cross_entropy`` that counts its calls, raises ``exc`` at call number ``at`` (if any)
    and returns ``value`` times the loss when given (NaN, inf)."""

    def __init__(self, at: int = 0, exc: BaseException | None = None, value: float = 1.0) -> None:
        self.calls, self.at, self.exc, self.value = 0, at, exc, value

    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.exc is not None and self.calls == self.at:
            raise self.exc
        return nn.functional.cross_entropy(out, y) * self.value


def _pretrained() -> tuple[nn.Module, torch.optim.Optimizer]:
    """The search's model with momentum buffers in its optimizer, and the global RNGs drawn
    away from their seeds, so that a restore has something to restore."""
    model, opt = _setup()
    pretrain(model, opt, make_data(), steps=3)
    torch.rand(3)
    np.random.rand(2)
    return model, opt


_TOTAL = 576
"""The run of :func:`_search_with`: four validation batches, budget 0.5 after the 100-step range
test: probes of at least (288 - 100 - 6 * 4/3) // 5 = 36 updates, a sixteenth of the run."""


def _search_with(loss_fn: Any, progress: Any = None) -> TuneResult:
    model, opt = _pretrained()
    data, val = _split(384)
    return tune_lr(
        model, opt, data, loss_fn, val_data=val, total_steps=_TOTAL, budget=0.5, progress=progress
    )


def _interrupted_at(at: int) -> tuple[search.TuneInterrupted, dict[str, Any], dict[str, Any]]:
    """Ctrl-C at the ``at``-th call of the loss: the exception and the state before and after."""
    model, opt = _pretrained()
    data, val = _split(384)
    before = capture(model, opt)
    with pytest.raises(KeyboardInterrupt) as info:
        tune_lr(
            model,
            opt,
            data,
            _Calls(at, KeyboardInterrupt()),
            val_data=val,
            total_steps=_TOTAL,
            budget=0.5,
        )
    assert isinstance(info.value, search.TuneInterrupted)
    return info.value, before, capture(model, opt)


def test_ctrl_c_raises_the_exception_lrkit_and_lrkit_finder_export() -> None:
    import lrkit
    import lrkit.finder

    stopped, _, _ = _interrupted_at(7)
    assert isinstance(stopped, lrkit.TuneInterrupted)
    assert lrkit.finder.TuneInterrupted is lrkit.TuneInterrupted is search.TuneInterrupted


def test_ctrl_c_in_the_range_test_raises_after_restoring_everything() -> None:
    stopped, before, after = _interrupted_at(7)
    assert stopped.where.startswith("in the range test of the search, after 6 of its ")
    assert_same_state(before, after)


def test_ctrl_c_in_a_probe_or_its_validation_raises_after_restoring_everything() -> None:
    counted = _Calls()
    full = _search_with(counted)
    swept = len(full.range_test.lrs) + (full.range_test.extended_from or 0)
    first = full.probes[0]
    assert not first.diverged and first.round == 1
    start = swept + len(_split(384)[1])  # the start state's validation loss comes first
    stopped, before, after = _interrupted_at(start + 5)  # the first probe's fifth update
    assert stopped.where == (
        f"in the probes of the search: probe 1 of {len(peak_choice.POSITIONS)} of round 1 "
        f"(peak {first.peak:.3g}), after 4 of its {first.steps} steps"
    )
    assert_same_state(before, after)
    stopped, before, after = _interrupted_at(start + first.steps + 1)  # its validation
    assert stopped.where.startswith("in the probes of the search: validating probe 1 of ")
    assert_same_state(before, after)
    assert counted.calls > start + first.steps + 1


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_loss_never_finite_raises_after_restoring_everything(value: float) -> None:
    model, opt = _pretrained()
    data, val = _split(384)
    before = capture(model, opt)
    with pytest.raises(ValueError, match="not finite") as info:
        tune_lr(model, opt, data, _Calls(value=value), val_data=val, total_steps=400, budget=0.5)
    message = " ".join(str(info.value).split())
    assert "at any learning rate tried" in message
    assert "the loss function, the data" in message and "initialisation" in message
    assert_same_state(before, capture(model, opt))


@pytest.mark.parametrize(
    "val_data",
    [[], torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(0, 8)))],
    ids=["list", "DataLoader"],
)
def test_empty_val_data_is_named_before_anything_changes(val_data: Any) -> None:
    model, opt = _pretrained()
    before = capture(model, opt)
    with pytest.raises(ValueError, match=r"^val_data is empty: .*pass the batches"):
        tune_lr(
            model,
            opt,
            make_data(),
            nn.functional.cross_entropy,
            val_data=val_data,
            total_steps=400,
        )
    assert_same_state(before, capture(model, opt))


def test_rounds_count_from_one_in_the_result_and_its_json(tmp_path: Path) -> None:
    data, val = _split()
    found = _tuned(data, val, 640, budget=0.5, seed=3)
    assert {p.round for p in found.probes} == {1}
    found.to_json(tmp_path / "tune.json")
    saved = json.loads((tmp_path / "tune.json").read_text())
    assert [p["round"] for p in saved["probes"]] == [p.round for p in found.probes]
    assert TuneResult.from_json(tmp_path / "tune.json").probes == found.probes


def test_progress_covers_the_range_test_in_the_search_units() -> None:
    seen: list[tuple[int, int]] = []
    found = _search_with(nn.functional.cross_entropy, lambda d, t, lr, loss: seen.append((d, t)))
    swept = len(found.range_test.lrs) + (found.range_test.extended_from or 0)
    assert seen[:swept] == [(i + 1, 288) for i in range(swept)]
    assert all(t == 288 for _, t in seen) and seen[-1][0] <= 288
