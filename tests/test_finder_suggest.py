"""Suggestion rules on synthetic curves: golden values, failure modes, bands, properties."""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.finder import (
    analyze_curve,
    ema,
    range_test,
    suggest_lr,
    suggest_lrkit,
    suggest_minimum,
    suggest_steepest,
    suggest_valley,
    zero_lag_smooth,
)
from strategies_finder import curves, exp_lrs, u_curve, with_noise

LRS = exp_lrs(100)
CLEAN = u_curve(LRS)


def _spike(lrs: np.ndarray, at: float, height: float, width: float = 0.12) -> np.ndarray:
    x = np.log10(lrs)
    return height * np.exp(-0.5 * ((x - at) / width) ** 2)


# -- classic rules: golden values -----------------------------------------------------------------


def test_minimum_is_lr_at_minimum_over_ten() -> None:
    lrs = np.array([1e-3, 1e-2, 1e-1, 1.0, 10.0])
    assert suggest_minimum(lrs, [5.0, 4.0, 1.0, 2.0, 9.0]) == pytest.approx(1e-2)
    assert suggest_minimum([], []) is None


def test_steepest_golden_and_none_without_descent() -> None:
    lrs = np.array([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    # drops per decade: 0.1, 1.0, 0.2, -3 -> np.gradient is steepest at 1e-3 / 1e-2; the
    # centred differences are (0.1+1)/2=0.55 at 1e-3 and (1+0.2)/2=0.6 at 1e-2
    losses = [3.0, 2.9, 1.9, 1.7, 4.7]
    whole = {"skip_start": 0, "skip_end": 0}
    assert suggest_steepest(lrs, losses, **whole) == pytest.approx(1e-2)
    assert suggest_steepest(lrs, [1.0, 2.0, 3.0, 4.0, 5.0], **whole) is None
    assert suggest_steepest(lrs[:2], [2.0, 1.0], **whole) is None
    # pytorch-lr-finder's default skips (10 and 5) need 17 points
    assert suggest_steepest(lrs, losses) is None


def test_steepest_skips_the_first_ten_and_last_five_points() -> None:
    lrs = exp_lrs(20, 1e-6, 1.0)
    # the largest drops lie at the first step (index 0 -> 1) and in the last five points; the
    # points read are 10..14: [5, 4.8, 4.0, 3.9, 3.85], whose np.gradient per step is
    # [-0.2, -0.5, -0.45, -0.075, -0.05]: steepest at index 11
    losses = [10.0] + [5.0] * 10 + [4.8, 4.0, 3.9, 3.85] + [3.0, 1.0, -5.0, -20.0, -60.0]
    assert suggest_steepest(lrs, losses) == pytest.approx(lrs[11])
    assert suggest_steepest(lrs, losses, skip_start=0, skip_end=0) == pytest.approx(lrs[-1])
    assert suggest_steepest(lrs, losses, skip_start=0, skip_end=5) == pytest.approx(lrs[0])
    with pytest.raises(ValueError, match="skip_start must be a whole number >= 0"):
        suggest_steepest(lrs, losses, skip_start=-1)
    short = suggest_lr(lrs[:16], losses[:16], "steepest")
    assert short.lr is None and "too few finite points (16)" in short.reason


def test_steepest_respects_exponential_spacing() -> None:
    def curve(lrs: np.ndarray) -> np.ndarray:
        return 2.0 - np.tanh((np.log10(lrs) + 1.0) / 0.3)  # steepest at 0.1 in log-LR

    exp_grid = exp_lrs(200, 1e-4, 10.0)
    lin_grid = np.linspace(1e-3, 10.0, 2000)
    assert suggest_steepest(exp_grid, curve(exp_grid)) == pytest.approx(0.1, rel=0.05)
    assert suggest_steepest(lin_grid, curve(lin_grid)) == pytest.approx(0.1, rel=0.05)


def test_valley_two_thirds_down_the_longest_descent() -> None:
    lrs = exp_lrs(12, 1e-4, 1.0)
    losses = [5, 4, 5, 4.5, 4, 3, 2, 1, 0.5, 0.4, 2, 3]  # longest run: index 2 -> 9
    # run of 7 steps from index 2; 2 + round(14/3) = 7
    assert suggest_valley(lrs, losses) == pytest.approx(lrs[7])
    assert suggest_valley(lrs, np.arange(12.0)) is None


def test_classic_rules_on_a_u_curve() -> None:
    smooth = ema(CLEAN)
    i = int(np.argmin(smooth))
    assert suggest_minimum(LRS, smooth) == pytest.approx(LRS[i] / 10)
    steep = suggest_steepest(LRS, smooth)
    valley = suggest_valley(LRS, smooth)
    assert steep is not None and valley is not None
    assert steep < LRS[i] and valley < LRS[i]


# -- lrkit's rule ---------------------------------------------------------------------------------


def test_lrkit_on_a_clean_u_curve() -> None:
    found = analyze_curve(LRS, CLEAN)
    assert found.lr is not None and found.lr_low is not None and found.lr_up is not None
    raw_min = LRS[int(np.argmin(CLEAN))]
    assert found.lr_min == pytest.approx(raw_min, rel=0.25)  # no lag, unlike the EMA
    assert found.lr == pytest.approx(0.5 * math.sqrt(found.lr_low * found.lr_up))
    assert raw_min / 10 < found.lr < raw_min
    # the basin edges sit where the smooth is 10% of the drop above its minimum
    s = found.smoothed
    level = s.min() + 0.1 * found.drop
    assert s[np.searchsorted(LRS, found.lr_low)] <= level
    assert s[np.searchsorted(LRS, found.lr_low) - 1] > level
    assert found.descent_start is not None and found.descent_start < found.lr_low
    assert "basin" in found.reason


def test_ema_minimum_lags_but_lrkit_does_not() -> None:
    # a V with its raw minimum at 0.1
    x = np.log10(LRS)
    v = np.where(x < -1, 2.0 - 1.5 * (x + 7) / 6, 0.5 + (x + 1))
    ema_min = LRS[int(np.argmin(ema(v)))]
    found = analyze_curve(LRS, v)
    assert found.lr_min is not None
    assert ema_min > 0.25  # the EMA's minimum comes late
    assert 0.05 < found.lr_min <= 0.1


@pytest.mark.parametrize("at", [-5.0, -2.3])
def test_spike_that_recovers_fools_steepest_not_lrkit(at: float) -> None:
    spiky = CLEAN + _spike(LRS, at, height=4.0)
    clean_lr = suggest_lrkit(LRS, CLEAN)
    spiky_lr = suggest_lrkit(LRS, spiky)
    assert clean_lr is not None and spiky_lr is not None
    assert spiky_lr == pytest.approx(clean_lr, rel=0.05)
    steep = suggest_steepest(LRS, spiky)
    assert steep is not None
    # the steepest drop is the recovery right after the spike
    assert 10**at < steep < 10 ** (at + 0.6)
    if at < -3:
        assert steep < clean_lr / 1000


def test_spikes_of_single_batches_are_ignored() -> None:
    spiky = CLEAN.copy()
    spiky[[20, 45, 61, 70]] += 5.0
    assert suggest_lrkit(LRS, spiky) == pytest.approx(suggest_lrkit(LRS, CLEAN), rel=0.15)


@pytest.mark.parametrize("seed", range(8))
def test_flat_noisy_curve_has_no_clear_descent(seed: int) -> None:
    flat = with_noise(np.full(100, 2.0), 0.1, seed)
    found = analyze_curve(LRS, flat)
    assert found.lr is None
    assert "no clear descent" in found.reason


def test_constant_curve_has_no_clear_descent() -> None:
    assert suggest_lrkit(LRS, np.full(100, 1.0)) is None
    s = suggest_lr(LRS, np.full(100, 1.0))
    assert s.lr is None and s.low is None and s.high is None
    assert "no clear descent" in s.reason


def test_curve_rising_from_the_start() -> None:
    rising = 1.0 + np.exp(np.log10(LRS) + 7)
    found = analyze_curve(LRS, rising)
    assert found.lr is None
    assert "lower start_lr" in found.reason


def test_monotone_decreasing_curve_without_turn_up() -> None:
    x = np.log10(LRS)
    falling = 2.0 - 1.5 / (1 + np.exp(-(x + 1.5) / 0.4))
    found = analyze_curve(LRS, falling)
    assert found.lr is not None and found.lr_up is not None
    assert found.lr_up == pytest.approx(LRS[-1])
    assert found.lr < LRS[-1]
    assert "raise end_lr" in found.reason


def test_too_few_points() -> None:
    found = analyze_curve(LRS[:5], CLEAN[:5])
    assert found.lr is None and "too few" in found.reason


def test_non_finite_tail_is_cut() -> None:
    tail = CLEAN.copy()
    tail[90] = np.nan
    tail[91:] = np.inf
    assert suggest_lrkit(LRS, tail) == suggest_lrkit(LRS[:90], CLEAN[:90])
    assert zero_lag_smooth(LRS, tail).shape == (90,)


def test_sampling_density_does_not_matter() -> None:
    def curve(lrs: np.ndarray) -> np.ndarray:
        return u_curve(lrs, descent_at=-1.3, rise_at=0.2)

    coarse = exp_lrs(100, 1e-4, 3.0)
    fine = exp_lrs(400, 1e-4, 3.0)
    a = suggest_lrkit(coarse, curve(coarse))
    b = suggest_lrkit(fine, curve(fine))
    assert a is not None and b is not None
    assert b == pytest.approx(a, rel=0.1)
    for n in (300, 2000):  # linear sweeps: dense at high LR, sparse at low LR
        lin = np.linspace(1e-3, 3.0, n)
        c = suggest_lrkit(lin, curve(lin))
        assert c is not None and c == pytest.approx(a, rel=0.1)


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="length"):
        suggest_lrkit([1e-3, 1e-2], [1.0])
    with pytest.raises(ValueError, match="increasing"):
        suggest_minimum([1e-2, 1e-3], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        suggest_valley([1e-3, np.inf], [1.0, 2.0])
    with pytest.raises(ValueError, match="beta"):
        ema([1.0], 1.0)
    with pytest.raises(ValueError, match="method"):
        suggest_lr(LRS, CLEAN, "magic")  # type: ignore[arg-type]
    # a linear sweep from 0: the lr=0 point is dropped
    lin = np.linspace(0.0, 1.0, 50)
    assert suggest_minimum(lin, np.ones(50)) == pytest.approx(lin[1] / 10)


# -- uncertainty bands ----------------------------------------------------------------------------


def _log_width(lo: float | None, hi: float | None) -> float:
    assert lo is not None and hi is not None
    return math.log10(hi / lo)


def test_bootstrap_band_contains_truth_and_narrows_with_less_noise() -> None:
    truth = suggest_lrkit(LRS, CLEAN)
    assert truth is not None
    widths: dict[float, list[float]] = {0.02: [], 0.15: []}
    covered = 0
    for sigma in widths:
        for seed in range(5):
            s = suggest_lr(LRS, with_noise(CLEAN, sigma, seed), n_boot=100)
            assert s.lr is not None and s.low is not None and s.high is not None
            assert s.low <= s.lr <= s.high
            widths[sigma].append(_log_width(s.low, s.high))
            covered += s.low / 1.5 <= truth <= s.high * 1.5
    assert covered >= 9
    assert np.mean(widths[0.02]) < np.mean(widths[0.15])


def test_band_is_deterministic() -> None:
    noisy = with_noise(CLEAN, 0.1, 3)
    assert suggest_lr(LRS, noisy) == suggest_lr(LRS, noisy)
    assert suggest_lr(LRS, noisy, seed=1) != suggest_lr(LRS, noisy, seed=2)


def test_band_from_repeats() -> None:
    reps = [with_noise(CLEAN, 0.1, k) for k in range(5)]
    s = suggest_lr(LRS, np.mean(reps, axis=0), repeat_losses=reps)
    singles = np.array([suggest_lrkit(LRS, r) for r in reps], dtype=float)
    assert s.lr is not None and s.low is not None and s.high is not None
    assert s.low == pytest.approx(min(np.exp(np.percentile(np.log(singles), 10)), s.lr))
    assert s.high == pytest.approx(max(np.exp(np.percentile(np.log(singles), 90)), s.lr))
    assert "5 repeats" in s.reason


def test_classic_methods_through_suggest_lr() -> None:
    noisy = with_noise(CLEAN, 0.05, 0)
    s = suggest_lr(LRS, noisy, "minimum", n_boot=50)
    assert s.lr == suggest_minimum(LRS, ema(noisy))
    assert s.method == "minimum"
    flat = suggest_lr(LRS, np.arange(100.0), "steepest")
    assert flat.lr is None and "never decreases" in flat.reason


# -- properties -----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(curves())
def test_lrkit_suggestion_lies_within_the_sweep(curve: tuple[np.ndarray, np.ndarray]) -> None:
    lrs, losses = curve
    lr = suggest_lrkit(lrs, losses)
    assert lr is not None
    assert lrs[0] <= lr <= lrs[-1]


@settings(max_examples=40, deadline=None)
@given(curves(), st.floats(-50.0, 50.0), st.floats(0.01, 100.0))
def test_rules_invariant_to_shifting_and_scaling_losses(
    curve: tuple[np.ndarray, np.ndarray], shift: float, factor: float
) -> None:
    lrs, losses = curve
    moved = losses * factor + shift
    base = suggest_lrkit(lrs, losses)
    assert suggest_lrkit(lrs, moved) == pytest.approx(base, rel=1e-9)
    for rule in (suggest_minimum, suggest_steepest, suggest_valley):
        a, b = rule(lrs, losses), rule(lrs, moved)
        assert (a is None) == (b is None)
        if a is not None:
            assert b == pytest.approx(a, rel=1e-9)


@settings(max_examples=30, deadline=None)
@given(curves())
def test_lrkit_sits_below_the_turn_up(curve: tuple[np.ndarray, np.ndarray]) -> None:
    lrs, losses = curve
    found = analyze_curve(lrs, losses)
    assert found.lr is not None and found.lr_low is not None and found.lr_up is not None
    assert found.lr_low is not None and found.lr_min is not None
    assert found.lr_low <= found.lr_min <= found.lr_up
    assert found.lr_low / 2 <= found.lr * (1 + 1e-12)
    assert found.lr < found.lr_up


def test_vectorised_bootstrap_rule_matches_the_single_curve_rule() -> None:
    from lrkit.finder.suggest import _lrkit_many, _resamples, _smoother_matrix

    rng = np.random.default_rng(0)
    rows = []
    for k in range(30):
        y = u_curve(LRS, descent_at=rng.uniform(-5, -1), rise_at=rng.uniform(-1, 1))
        sigma = rng.uniform(0.0, 0.5)
        if k % 5 == 0:
            y = np.full(100, 2.0)  # flat: no clear descent
        rows.append(_resamples(LRS, with_noise(y, sigma, k), 4, k))
    ys = np.concatenate(rows)
    many = _lrkit_many(LRS, ys, _smoother_matrix(np.log(LRS)))
    single = np.array([suggest_lrkit(LRS, y) or np.nan for y in ys])
    np.testing.assert_array_equal(np.isnan(many), np.isnan(single))
    assert np.isnan(single).sum() >= 20
    np.testing.assert_allclose(many, single, rtol=1e-12)


def test_a_flat_curve_that_diverges_has_no_clear_descent_whatever_the_noise_draw() -> None:
    # nothing is learned in the sweep, then the loss explodes: the noise is estimated over the
    # whole flat part, not cut where the running median first crosses the start level
    x = np.log10(LRS)
    explode = np.where(x > 0.0, 2.3 * (10 ** (2 * x) - 1), 0.0)
    for seed in range(40):
        y = with_noise(np.full(100, 2.3), 0.01, seed) + explode
        found = analyze_curve(LRS, y)
        assert found.lr is None
        assert found.reason.startswith("no clear descent"), (seed, found.reason)
        assert "steps=300" in found.reason


@settings(max_examples=20, deadline=None)
@given(curves(), st.sampled_from(["lrkit", "steepest", "valley"]))
def test_bands_lie_within_the_sweep(curve: tuple[np.ndarray, np.ndarray], method: str) -> None:
    lrs, losses = curve
    s = suggest_lr(lrs, losses, method, n_boot=50)  # type: ignore[arg-type]
    assert s.lr is not None and s.low is not None and s.high is not None
    assert lrs[0] <= s.low <= s.lr <= s.high <= lrs[-1]


# -- steepest against pytorch-lr-finder ---------------------------------------------------------


def _mlp_task(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer, list[Any]]:
    """A 20-64-2 MLP with plain SGD on make_classification data, as a user would set it up."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=1024, n_features=20, n_informative=10, random_state=seed)
    xs, ys = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, opt, [(xs[i : i + 32], ys[i : i + 32]) for i in range(0, 1024, 32)]


def _their_suggestion(finder: Any) -> float:
    """The suggestion pytorch-lr-finder's ``plot(suggest_lr=True)`` reads off
    ``finder.history`` (with its default skips)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    with contextlib.redirect_stdout(io.StringIO()):
        _, theirs = finder.plot(ax=ax, suggest_lr=True)
    plt.close(fig)
    return float(theirs)


def _lr_finder(seed: int) -> Any:
    """pytorch-lr-finder's ``LRFinder`` over :func:`_mlp_task`'s model."""
    import matplotlib

    matplotlib.use("Agg")
    from torch_lr_finder import LRFinder

    model, opt, batches = _mlp_task(seed)
    return LRFinder(model, opt, torch.nn.CrossEntropyLoss(), device="cpu"), batches


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 9, 10, 11])
def test_steepest_is_pytorch_lr_finders_suggestion_on_its_own_sweep(seed: int) -> None:
    finder, batches = _lr_finder(seed)
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        finder.range_test(loader, start_lr=1e-7, end_lr=10, num_iter=100)  # its defaults
    lrs, smoothed = np.asarray(finder.history["lr"]), np.asarray(finder.history["loss"])
    ours = suggest_steepest(lrs, smoothed)
    assert ours == _their_suggestion(finder)
    assert ours is not None and ours >= lrs[10]


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 9, 10, 11])
def test_steepest_is_pytorch_lr_finders_suggestion_on_lrkits_curve(seed: int) -> None:
    # on seeds 9-11 the moving average's first steps fell fastest, and the rule answered the
    # sweep's first LR (1e-7) with a band reaching down to 6e-14
    model, opt, batches = _mlp_task(seed)
    result = range_test(model, opt, batches, torch.nn.functional.cross_entropy)
    finder, _ = _lr_finder(seed)
    finder.history = {"lr": list(result.lrs), "loss": list(result.smoothed)}
    s = result.suggest("steepest")
    assert s.lr == _their_suggestion(finder)
    assert s.lr is not None and s.low is not None and s.high is not None
    assert s.lr >= result.lrs[10] > result.lrs[0]
    assert result.lrs[0] <= s.low <= s.lr <= s.high <= result.lrs[-1]


def test_the_classic_rules_module_reads_curves_as_suggest_does() -> None:
    from lrkit.finder import classic_rules, suggest

    x, y = classic_rules.finite_curve([0.0, 0.1, 0.2, 0.3, 0.4], [5.0, 4.0, 3.0, math.nan, 1.0])
    assert x.tolist() == [0.1, 0.2] and y.tolist() == [4.0, 3.0]
    for name in ("ema", "suggest_minimum", "suggest_steepest", "suggest_valley"):
        assert getattr(suggest, name) is getattr(classic_rules, name)
    # the lr <= 0 head and the non-finite tail are left out by every rule alike
    lrs = np.concatenate([[0.0], LRS])
    losses = np.concatenate([[9.0], CLEAN])
    losses[-3:] = np.inf
    assert suggest_minimum(lrs, losses) == suggest_minimum(LRS[:-3], CLEAN[:-3])
    assert suggest_lrkit(lrs, losses) == suggest_lrkit(LRS[:-3], CLEAN[:-3])
