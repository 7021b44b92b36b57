"""Schedules: golden values derived by hand, Hypothesis properties, serialisation, bad input."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import pickle
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit import schedules as S
from strategies import (
    cyclics,
    finite_schedules,
    half_sine,
    inverse_cycle,
    lengths,
    one_cycles,
    ordered_pair,
    schedules,
    stateful_schedules,
    values,
    wsds,
)

NAMESPACE = vars(S)
PROPS = settings(max_examples=80, deadline=None)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


def assert_values(s: S.Schedule, expected: list[float]) -> None:
    got = s(np.arange(len(expected)))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def horizon(s: S.Schedule) -> np.ndarray:
    """Every step of the schedule and some past its end (200 steps for an endless one)."""
    return np.arange((s.steps or 180) + 20)


# -- golden values ------------------------------------------------------------------------------


def test_triangular_golden() -> None:
    s = S.triangular(1.0, 5.0, 4)
    assert_values(s, [1, 2, 3, 4, 5, 4, 3, 2, 1, 2, 3])
    assert s.steps is None
    assert s(10) == 3.0
    assert isinstance(s(10), float)


def test_triangular_asymmetric_golden() -> None:
    # up 2 steps (1 -> 5 in steps of 2), down 4 steps (5 -> 1 in steps of 1)
    assert_values(S.triangular(1.0, 5.0, 2, 4), [1, 3, 5, 4, 3, 2, 1, 3, 5])


def test_triangular2_halves_each_cycle() -> None:
    s = S.triangular2(1.0, 5.0, 4)
    first = [1, 2, 3, 4, 5, 4, 3, 2]
    second = [1, 1.5, 2, 2.5, 3, 2.5, 2, 1.5]
    third = [1, 1.25, 1.5, 1.75, 2, 1.75, 1.5, 1.25]
    assert_values(s, first + second + third + [1])


def test_exp_range_golden() -> None:
    # amplitude · gamma^t with gamma = 0.5, step 2: t=1 half way up, t=2 the peak
    assert_values(S.exp_range(0.0, 1.0, 2, gamma=0.5), [0, 0.5 * 0.5, 0.25, 0.5 * 0.125, 0])


@pytest.mark.parametrize(
    ("window", "quarter", "half", "three_quarters"),
    [
        ("triangular", 0.25, 0.5, 0.75),
        # Welch: 1 - d² with d = 1 - f the distance from the peak
        ("welch", 1 - 0.75**2, 1 - 0.5**2, 1 - 0.25**2),
        # Hann: (1 + cos πd) / 2
        ("hann", (1 + math.cos(0.75 * math.pi)) / 2, 0.5, (1 + math.cos(0.25 * math.pi)) / 2),
    ],
)
def test_windows_at_quarter_points(
    window: str, quarter: float, half: float, three_quarters: float
) -> None:
    s = S.cyclic(0.0, 1.0, 4, window=window)
    assert_values(s, [0, quarter, half, three_quarters, 1, three_quarters, half, quarter, 0])
    # same shape between other bounds: base + (peak - base) · w(f)
    t = S.cyclic(2.0, 6.0, 4, window=window)
    assert_values(t, [2, 2 + 4 * quarter, 2 + 4 * half, 2 + 4 * three_quarters, 6])


def test_cyclic_momentum_golden_and_shortcut() -> None:
    lr = S.triangular(0.1, 0.5, 2)
    mom = S.cyclic_momentum(0.95, 0.85, 2)
    assert_values(mom, [0.95, 0.9, 0.85, 0.9, 0.95])
    assert lr.momentum(0.95, 0.85) == mom
    assert lr.momentum() == mom  # defaults are Smith's 0.95 -> 0.85


def test_cyclic_steps_holds() -> None:
    s = S.triangular(1.0, 5.0, 4, steps=6)
    assert_values(s, [1, 2, 3, 4, 5, 4, 3, 3, 3, 3])
    assert s.steps == 6


def test_basic_family_golden() -> None:
    assert_values(S.constant(0.3), [0.3] * 5)
    assert_values(S.linear(1.0, 0.0, 4), [1, 0.75, 0.5, 0.25, 0, 0])
    assert_values(S.geometric(1e-4, 1.0, 4), [1e-4, 1e-3, 1e-2, 1e-1, 1, 1])
    assert_values(S.exponential(2.0, 0.5), [2, 1, 0.5, 0.25])
    assert_values(S.exponential(2.0, 0.5, steps=2), [2, 1, 0.5, 0.5, 0.5])
    assert_values(S.step(1.0, 3, 0.5), [1, 1, 1, 0.5, 0.5, 0.5, 0.25])
    assert_values(S.multistep(1.0, [2, 5], 0.1), [1, 1, 0.1, 0.1, 0.1, 0.01, 0.01])
    assert_values(S.polynomial(1.0, 0.0, 4, power=2), [1, 0.5625, 0.25, 0.0625, 0, 0])
    assert_values(S.polynomial(3.0, 1.0, 2), [3, 2, 1, 1])
    c = (1 + math.cos(math.pi / 4)) / 2
    assert_values(S.cosine(1.0, 4), [1, c, 0.5, 1 - c, 0, 0, 0])
    assert_values(S.cosine(2.0, 2, end=1.0), [2, 1.5, 1, 1])


def test_sgdr_golden() -> None:
    c = (1 + math.cos(math.pi / 4)) / 2
    # cycles of 2, 4, 8 steps start at 0, 2, 6
    assert_values(S.sgdr(1.0, 0.0, 2, 2), [1, 0.5, 1, c, 0.5, 1 - c, 1])
    # peak_decay scales each cycle's top
    assert_values(
        S.sgdr(1.0, 0.0, 2, 2, peak_decay=0.5), [1, 0.5, 0.5, c / 2, 0.25, 0.5 - c / 2, 0.25]
    )
    assert_values(S.sgdr(1.0, 0.5, 2), [1, 0.75, 1, 0.75, 1])


def test_sequence_join_golden() -> None:
    s = S.sequence(S.linear(0.0, 1.0, 2), S.constant(1.0, steps=2), S.linear(1.0, 0.0, 2))
    assert s.steps == 6
    assert s.offsets == (0, 2, 4)
    assert_values(s, [0, 0.5, 1, 1, 1, 0.5, 0, 0, 0])
    # a (schedule, steps) piece cuts an endless schedule, like take
    cut = S.sequence((S.triangular(0.0, 1.0, 2), 3), S.constant(0.25))
    assert cut.steps is None
    assert_values(cut, [0, 0.5, 1, 0.25, 0.25])
    assert cut == S.sequence(S.take(S.triangular(0.0, 1.0, 2), 3), S.constant(0.25))


def test_warmup_golden() -> None:
    s = S.warmup(S.constant(1.0), 4)
    assert_values(s, [0, 0.25, 0.5, 0.75, 1, 1])
    c = (1 + math.cos(math.pi / 4)) / 2
    w = S.warmup(S.cosine(1.0, 4), 2, start=0.5)
    assert w.steps == 6
    assert_values(w, [0.5, 0.75, 1, c, 0.5, 1 - c, 0, 0])
    e = S.warmup(S.constant(1.0), 2, start=0.01, shape="exponential")
    assert_values(e, [0.01, 0.1, 1, 1])


@pytest.mark.parametrize(
    ("shape", "decay"),
    [
        ("linear", [1, 0.75, 0.5, 0.25, 0]),
        ("cosine", [1, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 - math.cos(math.pi / 4)) / 2, 0]),
        ("1-sqrt", [1, 0.5, 1 - math.sqrt(0.5), 1 - math.sqrt(0.75), 0]),
    ],
)
def test_wsd_golden(shape: str, decay: list[float]) -> None:
    s = S.wsd(1.0, 10, 2, 4, decay_shape=shape)
    # warmup 0 -> 1 over 2 steps, stable at 1 until step 6, decay over steps 6..10
    assert_values(s, [0, 0.5, 1, 1, 1, 1, *decay, 0, 0])
    assert s.steps == 10


def test_wsd_start_end_golden() -> None:
    assert_values(S.wsd(2.0, 4, 0, 2, end=1.0), [2, 2, 2, 1.5, 1, 1])
    assert_values(S.wsd(2.0, 4, 2, 2, start=1.0, end=1.0), [1, 1.5, 2, 1.5, 1, 1])


def test_per_epoch_staircase() -> None:
    s = S.per_epoch(S.linear(0.0, 4.0, 4), 3)
    assert s.steps == 12
    assert_values(s, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4])
    m = S.per_epoch(S.multistep(0.1, [2, 3]), 2)
    assert_values(m, [0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_repeat_scale_clamp_take_product_golden() -> None:
    assert_values(S.repeat(S.linear(0.0, 1.0, 2), 2), [0, 0.5, 0, 0.5, 1, 1])
    assert_values(S.repeat(S.linear(0.0, 1.0, 2)), [0, 0.5, 0, 0.5, 0, 0.5])
    assert_values(S.scale(S.linear(1.0, 0.0, 2), 3.0), [3, 1.5, 0, 0])
    assert_values(S.clamp(S.linear(0.0, 1.0, 4), 0.3, 0.6), [0.3, 0.3, 0.5, 0.6, 0.6])
    assert_values(S.clamp(S.linear(0.0, 1.0, 4), high=0.6), [0, 0.25, 0.5, 0.6, 0.6])
    assert_values(S.take(S.triangular(1.0, 5.0, 4), 3), [1, 2, 3, 4, 4, 4])
    p = S.product(S.exponential(1.0, 0.5), S.multistep(1.0, [2], 0.1))
    assert_values(p, [1, 0.5, 0.025, 0.0125])
    assert S.product(S.linear(1, 0, 3), S.linear(1, 0, 5)).steps == 5
    assert S.product(S.linear(1, 0, 3), S.constant(1.0)).steps is None


def test_one_cycle_points() -> None:
    h = S.one_cycle(1.0, 10, start=0.1, end=0.001, pct_start=0.5, anneal="linear")
    assert isinstance(h, S.Hyper)
    assert h.steps == 10
    # knots: 0, pct·N - 1 = 4, N - 1 = 9
    assert_values(h.lr, [0.1, 0.325, 0.55, 0.775, 1.0, 0.8002, 0.6004, 0.4006, 0.2008, 0.001])
    assert h.lr(10) == h.lr(1000) == h.lr(9) == pytest.approx(0.001, rel=1e-12)
    assert h.momentum is not None
    assert_values(h.momentum, [0.95, 0.925, 0.9, 0.875, 0.85, 0.87, 0.89, 0.91, 0.93, 0.95])
    cos = S.one_cycle(1.0, 10, start=0.1, end=0.001, pct_start=0.5)
    assert cos.lr(2) == pytest.approx(0.55)
    assert cos.lr(4) == 1.0
    assert cos.lr(9) == pytest.approx(0.001)


def test_one_cycle_defaults_and_three_phase() -> None:
    h = S.one_cycle(2.5, 100)
    assert h.lr(0) == pytest.approx(0.1)  # peak / 25
    assert h.lr(29) == 2.5  # 0.3 · 100 - 1
    assert h.lr(99) == pytest.approx(1e-5)  # start / 1e4
    t = S.one_cycle(1.0, 20, start=0.1, end=0.001, pct_start=0.25, three_phase=True)
    # knots 0, 4, 8, 19: start -> peak -> start -> end; momentum high -> low -> high, held
    lr = t.lr(np.array([0, 4, 6, 8, 19, 25]))
    np.testing.assert_allclose(lr, [0.1, 1.0, 0.55, 0.1, 0.001, 0.001])
    assert t.momentum is not None
    mom = t.momentum(np.array([0, 4, 6, 8, 12, 19]))
    np.testing.assert_allclose(mom, [0.95, 0.85, 0.9, 0.95, 0.95, 0.95])
    assert S.one_cycle(1.0, 10, momentum=None).momentum is None


def test_hyper_round_trips() -> None:
    h = S.one_cycle(0.5, 40, pct_start=0.25, anneal="linear", three_phase=True)
    assert S.Hyper.from_dict(json.loads(json.dumps(h.to_dict()))) == h
    assert pickle.loads(pickle.dumps(h)) == h
    bare = S.one_cycle(0.5, 40, momentum=None)
    assert S.Hyper.from_dict(bare.to_dict()) == bare


def test_one_cycle_repr_reads_like_the_call() -> None:
    h = S.one_cycle(0.8, 1000)
    assert repr(h) == "one_cycle(peak=0.8, total_steps=1000)"
    assert repr(h.lr) == "one_cycle_lr(peak=0.8, total_steps=1000)"
    assert repr(h.momentum) == "one_cycle_momentum(high=0.95, low=0.85, total_steps=1000)"
    custom = S.one_cycle(
        0.8,
        1000,
        start=0.08,
        end=1e-5,
        pct_start=0.25,
        anneal="linear",
        three_phase=True,
        momentum=(0.9, 0.8),
    )
    assert repr(custom) == (
        "one_cycle(peak=0.8, total_steps=1000, start=0.08, end=1e-05, pct_start=0.25, "
        "anneal='linear', three_phase=True, momentum=(0.9, 0.8))"
    )
    assert repr(S.one_cycle(0.8, 1000, momentum=None)) == (
        "one_cycle(peak=0.8, total_steps=1000, momentum=None)"
    )
    for made in (h, custom, S.one_cycle(0.8, 1000, momentum=None)):
        assert eval(repr(made), NAMESPACE) == made
    other = S.Hyper(lr=S.cosine(0.1, 10), momentum=S.constant(0.9))
    assert repr(other) == "Hyper(lr=cosine(start=0.1, steps=10), momentum=constant(value=0.9))"
    assert eval(repr(other), NAMESPACE) == other


def test_one_cycle_plot_title_is_the_call() -> None:
    from lrkit.plot import plot_schedule

    fig = plot_schedule(S.one_cycle(0.8, 1000))
    assert fig.axes[0].get_title() == "one_cycle(peak=0.8, total_steps=1000)"
    fig = plot_schedule(S.one_cycle(0.8, 1000).lr)
    assert fig.axes[0].get_title() == "one_cycle_lr(peak=0.8, total_steps=1000)"


def test_from_dict_reads_a_one_cycle() -> None:
    h = S.one_cycle(0.8, 1000, pct_start=0.25, three_phase=True)
    d = json.loads(json.dumps(h.to_dict()))
    assert d["type"] == "hyper"
    assert S.from_dict(d) == h
    assert S.from_dict(h.lr.to_dict()) == h.lr
    assert h.momentum is not None
    assert S.from_dict(h.momentum.to_dict()) == h.momentum
    # what earlier versions wrote: no type key, piecewise pieces
    old = {
        "lr": S.piecewise((0.0, 4.0, 9.0), (0.1, 1.0, 0.001), steps=10).to_dict(),
        "momentum": None,
    }
    assert S.Hyper.from_dict(old).lr(4) == 1.0
    with pytest.raises(ValueError, match="type 'hyper'"):
        S.Hyper.from_dict(h.lr.to_dict())


def test_one_cycle_default_start_is_one_constant() -> None:
    assert S.ONE_CYCLE_DIV_FACTOR == 25.0  # PyTorch's OneCycleLR div_factor
    h = S.one_cycle(0.8, 1000)
    assert h.lr(0) == pytest.approx(0.8 / S.ONE_CYCLE_DIV_FACTOR)
    assert S.one_cycle_lr(0.8, 1000, start=0.8 / 25) == h.lr


# -- Hypothesis properties ---------------------------------------------------------------------


def test_cyclic_reaches_its_peak_exactly_not_one_ulp_past_it() -> None:
    # base + (peak - base) rounds to one ulp above peak for these bounds
    base, peak = 1.8591003216727138, 3.98312324663295
    assert base + (peak - base) > peak
    assert S.cyclic(base, peak, 1)(1) == peak
    assert S.cyclic(base, peak, 3, window="hann")(np.arange(12)).max() == peak
    m = S.cyclic_momentum(0.95, 0.85, 2)
    assert m(2) == 0.85 and m(np.arange(20)).min() == 0.85


@PROPS
@given(cyclics(callables=True), st.integers(0, 400))
def test_cyclic_within_bounds(s: S.cyclic, t: int) -> None:
    assert s.base <= s(t) <= s.peak


@PROPS
@given(ordered_pair(), st.integers(1, 12), st.integers(1, 12), st.integers(0, 200))
def test_triangular_is_periodic(bounds: tuple[float, float], up: int, down: int, t: int) -> None:
    s = S.triangular(*bounds, up, down, window="hann")
    period = up + down
    assert close(s(t + period), s(t))
    assert close(s(t + 7 * period), s(t))
    assert s(7 * period) == bounds[0]
    assert close(s(7 * period + up), bounds[1])


@PROPS
@given(ordered_pair(), st.integers(1, 12), st.integers(1, 12), st.integers(0, 100))
def test_triangular2_halves_amplitude(
    bounds: tuple[float, float], up: int, down: int, t: int
) -> None:
    base, peak = bounds
    s = S.triangular2(base, peak, up, down)
    period = up + down
    assert math.isclose(s(t + period) - base, (s(t) - base) / 2, rel_tol=1e-9, abs_tol=1e-12)
    cycle = t // period
    assert math.isclose(s(cycle * period + up), base + (peak - base) / 2**cycle, rel_tol=1e-12)


@PROPS
@given(ordered_pair(), st.integers(1, 30), st.floats(0.0, 1.0))
def test_warmup_is_monotone(bounds: tuple[float, float], n: int, shape_pick: float) -> None:
    start, top = bounds
    shape = "linear" if shape_pick < 0.5 else "exponential"
    s = S.warmup(S.cosine(top, 10), n, start=start, shape=shape)
    ramp = s(np.arange(n + 1))
    assert ramp[0] == start
    assert close(ramp[-1], top)
    assert np.all(np.diff(ramp) >= 0)


@st.composite
def decays(draw: st.DrawFn) -> S.Schedule:
    end, start = draw(ordered_pair())
    n = draw(lengths)
    kind = draw(st.sampled_from(("cosine", "linear", "polynomial", "wsd")))
    if kind == "cosine":
        return S.cosine(start, n, end=end)
    if kind == "linear":
        return S.linear(start, end, n)
    if kind == "polynomial":
        return S.polynomial(start, end, n, power=draw(st.floats(0.1, 5.0)))
    stable = draw(st.integers(0, 10))
    return S.wsd(start, n + stable, 0, n, end=end)


@PROPS
@given(decays())
def test_decays_are_monotone(s: S.Schedule) -> None:
    v = s(horizon(s))
    assert np.all(np.diff(v) <= 0)
    assert v[-1] <= v[0]


@PROPS
@given(wsds())
def test_wsd_rises_holds_then_decays(s: S.wsd) -> None:
    w, d, n = s.warmup_steps, s.decay_steps, s.total_steps
    v = s(np.arange(n + 5))
    assert v[0] == (s.start if w > 0 else s.peak)
    assert np.all(np.diff(v[: w + 1]) >= 0)
    assert np.all(v[w : n - d + 1] == s.peak)  # never above the peak
    assert np.all(np.diff(v[n - d :]) <= 0)
    assert close(v[n], s.end)
    assert np.all(v[n:] == v[n])


@st.composite
def chained_pieces(draw: st.DrawFn) -> list[S.Schedule]:
    """Pieces where each one ends where the next one starts."""
    points = draw(st.lists(values, min_size=2, max_size=5))
    pieces: list[S.Schedule] = []
    for a, b in itertools.pairwise(points):
        n = draw(lengths)
        kind = draw(st.sampled_from(("linear", "cosine", "geometric", "polynomial")))
        if kind == "linear":
            pieces.append(S.linear(a, b, n))
        elif kind == "cosine":
            pieces.append(S.cosine(a, n, end=b))
        elif kind == "geometric":
            pieces.append(S.geometric(a, b, n))
        else:
            pieces.append(S.polynomial(a, b, n, power=draw(st.floats(0.5, 3.0))))
    pieces.append(S.constant(points[-1]))
    return pieces


@PROPS
@given(chained_pieces())
def test_sequence_is_continuous_at_joins(pieces: list[S.Schedule]) -> None:
    s = S.sequence(*pieces)
    for k, (piece, nxt) in enumerate(itertools.pairwise(pieces)):
        join = s.offsets[k + 1]
        assert piece.steps is not None
        assert close(piece(piece.steps), nxt(0))
        assert close(s(join), nxt(0))
        assert close(s(join), piece(piece.steps))


@PROPS
@given(st.lists(finite_schedules(max_leaves=2), min_size=1, max_size=3), schedules(max_leaves=2))
def test_sequence_rebases_each_piece(head: list[S.Schedule], last: S.Schedule) -> None:
    s = S.sequence(*head, last)
    offset = 0
    for piece in [*head, last]:
        t = np.arange(piece.steps or 30)
        np.testing.assert_array_equal(s(offset + t), piece(t))
        offset += piece.steps or 0
    assert s.steps == (None if last.steps is None else offset)


@PROPS
@given(finite_schedules(max_leaves=2), st.integers(1, 4), st.integers(0, 200))
def test_repeat_is_periodic(inner: S.Schedule, times: int, t: int) -> None:
    n = inner.steps
    assert n is not None
    forever = S.repeat(inner)
    assert forever.steps is None
    assert forever(t) == inner(t % n)
    assert forever(t + n) == forever(t)
    limited = S.repeat(inner, times)
    assert limited.steps == n * times
    expected = inner(t % n) if t < n * times else inner(n)
    assert limited(t) == expected


@PROPS
@given(schedules(callables=True))
def test_scalar_equals_vectorised(s: S.Schedule) -> None:
    t = horizon(s)
    vec = s(t)
    assert vec.dtype == np.float64
    assert vec.shape == t.shape
    scalars = [s(int(i)) for i in t]
    assert all(isinstance(v, float) for v in scalars)
    np.testing.assert_array_equal(vec, scalars)
    np.testing.assert_array_equal(s(t[None, :]), vec[None, :])
    assert s(np.int64(3)) == s(3) == s(3.0)


@PROPS
@given(finite_schedules(callables=True))
def test_holds_final_value_past_end(s: S.Schedule) -> None:
    n = s.steps
    assert n is not None
    final = s(n)
    np.testing.assert_array_equal(s(np.arange(n, n + 60)), final)
    assert s(10**9) == final


@PROPS
@given(schedules())
def test_dict_round_trip(s: S.Schedule) -> None:
    d = s.to_dict()
    assert d["type"] == s.name
    back = S.from_dict(json.loads(json.dumps(d)))
    assert back == s
    assert hash(back) == hash(s)
    assert back.steps == s.steps
    t = horizon(s)
    np.testing.assert_array_equal(back(t), s(t))


@PROPS
@given(schedules(callables=True))
def test_pickle_round_trip(s: S.Schedule) -> None:
    back = pickle.loads(pickle.dumps(s))
    assert back == s
    t = horizon(s)
    np.testing.assert_array_equal(back(t), s(t))


@PROPS
@given(schedules())
def test_repr_reads_like_the_call(s: S.Schedule) -> None:
    text = repr(s)
    assert text.startswith(f"{s.name}(")
    back = eval(text, NAMESPACE)
    assert back == s
    t = horizon(s)
    np.testing.assert_array_equal(back(t), s(t))


@PROPS
@given(one_cycles())
def test_one_cycle_round_trips_and_reads_like_the_call(h: S.Hyper) -> None:
    assert repr(h).startswith("one_cycle(peak=")
    assert eval(repr(h), NAMESPACE) == h
    back = S.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back == h and hash(back) == hash(h)
    assert pickle.loads(pickle.dumps(h)) == h
    assert isinstance(back, S.Hyper)
    t = horizon(h.lr)
    np.testing.assert_array_equal(back.lr(t), h.lr(t))
    for s in (h.lr, h.momentum):
        if s is not None:
            assert S.from_dict(s.to_dict()) == s
            assert repr(s).startswith(f"{s.name}(") and eval(repr(s), NAMESPACE) == s


@PROPS
@given(stateful_schedules())
def test_stateful_round_trips_config(s: S.Schedule) -> None:
    assert s.steps is None or s.steps > 0
    fresh = S.from_dict(json.loads(json.dumps(s.to_dict())))
    assert fresh == s
    assert eval(repr(s), NAMESPACE) == s
    assert pickle.loads(pickle.dumps(s)) == s
    assert len(s.stateful()) == 1


@PROPS
@given(schedules())
def test_schedules_are_immutable(s: S.Schedule) -> None:
    field = dataclasses.fields(s)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(s, field, 1.0)


def test_readable_reprs() -> None:
    assert repr(S.triangular(1.0, 5.0, 4)) == "cyclic(base=1.0, peak=5.0, step_size_up=4)"
    assert repr(S.cosine(0.1, 100)) == "cosine(start=0.1, steps=100)"
    assert (
        repr(S.warmup(S.cosine(0.1, 100), 10)) == "warmup(cosine(start=0.1, steps=100), steps=10)"
    )
    assert repr(S.sequence(S.linear(0.0, 0.1, 5), S.constant(0.1))) == (
        "sequence(linear(start=0.0, end=0.1, steps=5), constant(value=0.1))"
    )
    assert repr(S.reduce_on_plateau(0.1, patience=3)) == "reduce_on_plateau(start=0.1, patience=3)"
    assert repr(S.custom(half_sine, steps=5)) == "custom(half_sine, steps=5)"


@pytest.mark.parametrize(
    "s",
    [
        S.cyclic(1.0, 5.0, 4, gamma=0.5),
        S.cyclic(1.0, 5.0, 4, mode="exp_range", gamma=0.9, step_size_down=2),
        S.cyclic_momentum(0.95, 0.85, 3, 5, mode="exp_range", gamma=0.99, window="welch"),
        S.cyclic_momentum(0.95, 0.85, 3, gamma=0.7, steps=12),
    ],
)
def test_cyclic_repr_keeps_every_argument(s: S.Schedule) -> None:
    assert eval(repr(s), NAMESPACE) == s


def test_scale_mode_applies_only_to_a_custom_scale_fn() -> None:
    with pytest.raises(ValueError, match="scale_mode only applies to a custom scale_fn"):
        S.cyclic(1.0, 5.0, 4, mode="triangular2", scale_mode="iterations")
    with pytest.raises(ValueError, match="scale_mode only applies to a custom scale_fn"):
        S.cyclic(1.0, 5.0, 4, mode="exp_range", gamma=0.9, scale_mode="cycle")
    s = S.cyclic(1.0, 5.0, 4, scale_fn=half_sine, scale_mode="iterations")
    assert s.scale_mode == "iterations"


def test_exp_range_gamma_above_one_is_refused() -> None:
    with pytest.raises(ValueError, match=r"gamma must be in \(0, 1\]"):
        S.exp_range(1.0, 5.0, 4, gamma=1.01)


def test_custom_cannot_be_serialised() -> None:
    s = S.custom(half_sine, steps=10)
    assert s(3) == half_sine(3)
    assert s(20) == half_sine(10)
    with pytest.raises(TypeError, match=r"custom\(\.\.\.\) holds the Python callable half_sine"):
        s.to_dict()
    with pytest.raises(TypeError, match="cannot be written to a dict"):
        S.warmup(S.sequence((s, 5), S.constant(0.1)), 3).to_dict()
    with pytest.raises(TypeError, match="scale_fn"):
        S.cyclic(0.1, 1.0, 4, scale_fn=inverse_cycle).to_dict()


def test_custom_receives_int_steps() -> None:
    seen: list[object] = []

    def fn(step: object) -> float:
        seen.append(step)
        return 1.0

    S.custom(fn)(np.array([0, 3, 5]))
    assert seen == [0, 3, 5]
    assert all(type(x) is int for x in seen)


def test_scale_fn_receives_cycle_or_step() -> None:
    seen: list[object] = []

    def fn(x: object) -> float:
        seen.append(x)
        return 1.0

    S.cyclic(0.0, 1.0, 2, scale_fn=fn)(np.arange(5))
    assert sorted(set(seen)) == [1, 2]  # cycle numbers
    seen.clear()
    S.cyclic(0.0, 1.0, 2, scale_fn=fn, scale_mode="iterations")(np.arange(5))
    assert sorted(set(seen)) == [0, 1, 2, 3, 4]
    assert all(type(x) is int for x in seen)


# -- reduce_on_plateau on its own -----------------------------------------------------------------


def test_plateau_rules_by_hand() -> None:
    p = S.reduce_on_plateau(1.0, factor=0.5, patience=1, cooldown=1)
    assert p.steps is None
    seen = [p.observe(m, step) for step, m in enumerate([5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0])]
    # best 4 at step 1; bad at 2, 3 (> patience 1) -> reduce at 3; cooldown eats 4; bad 5, 6 -> 6
    assert seen == [False, False, False, True, False, False, True]
    assert p.value == 0.25
    assert_values(p, [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25])
    state = p.state_dict()
    q = S.reduce_on_plateau(1.0, factor=0.5, patience=1, cooldown=1)
    assert q != p
    q.load_state_dict(json.loads(json.dumps(state)))
    assert q == p
    p.reset()
    assert p.value == 1.0
    assert p == S.reduce_on_plateau(1.0, factor=0.5, patience=1, cooldown=1)


def test_plateau_max_mode_and_min_value() -> None:
    p = S.reduce_on_plateau(1.0, factor=0.1, patience=0, mode="max", min_value=0.05)
    assert not p.observe(1.0, 0)
    assert not p.observe(2.0, 1)
    assert p.observe(1.5, 2)
    assert p.value == pytest.approx(0.1)
    assert p.observe(1.0, 3)
    assert p.value == 0.05  # floored at min_value
    assert not p.observe(0.5, 4)  # already at min_value: no change
    assert p.value == 0.05


def test_plateau_is_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(S.reduce_on_plateau(0.1))


# -- bad input -------------------------------------------------------------------------------------

nan, inf = math.nan, math.inf
BAD = [
    (lambda: S.linear(0.1, 0.0, 0), ValueError, "positive number of optimizer steps"),
    (lambda: S.linear(0.1, 0.0, -5), ValueError, "positive number of optimizer steps"),
    (lambda: S.linear(0.1, 0.0, 2.5), TypeError, "positive int"),
    (lambda: S.linear(0.1, 0.0, True), TypeError, "positive int"),
    (lambda: S.linear(0.1, 0.0, "10"), TypeError, "positive int"),
    (lambda: S.linear(nan, 0.0, 10), ValueError, "start must be a finite number"),
    (lambda: S.linear(0.1, inf, 10), ValueError, "end must be a finite number"),
    (lambda: S.linear("0.1", 0.0, 10), TypeError, "start must be a number"),
    (lambda: S.cosine(True, 10), TypeError, "start must be a number"),
    (lambda: S.cosine(0.1, None), ValueError, "steps is required"),
    (lambda: S.constant(-inf), ValueError, "finite"),
    (lambda: S.constant(0.1, steps=0), ValueError, "positive number"),
    (lambda: S.geometric(0.0, 1.0, 10), ValueError, "start must be > 0"),
    (lambda: S.exponential(0.1, 0.0), ValueError, "gamma must be > 0"),
    (lambda: S.exponential(0.1, nan), ValueError, "gamma must be a finite"),
    (lambda: S.step(0.1, 0), ValueError, "step_size must be a positive"),
    (lambda: S.multistep(0.1, []), ValueError, "at least one step"),
    (lambda: S.multistep(0.1, [5, 3]), ValueError, "strictly increasing"),
    (lambda: S.multistep(0.1, [0, 3]), ValueError, "milestone must be a positive"),
    (lambda: S.polynomial(0.1, 0.0, 10, power=0.0), ValueError, "power must be > 0"),
    (lambda: S.cyclic(5.0, 1.0, 4), ValueError, r"peak \(1.0\) must be >= base \(5.0\)"),
    (lambda: S.cyclic(1.0, 5.0, 0), ValueError, "step_size_up must be a positive"),
    (lambda: S.cyclic(1.0, 5.0, 4, -1), ValueError, "step_size_down must be a positive"),
    (lambda: S.cyclic(1.0, 5.0, 4, mode="tri"), ValueError, "mode must be one of"),
    (lambda: S.cyclic(1.0, 5.0, 4, window="gauss"), ValueError, "window must be one of"),
    (lambda: S.cyclic(1.0, 5.0, 4, scale_mode="epoch"), ValueError, "scale_mode must be one"),
    (lambda: S.cyclic(1.0, 5.0, 4, scale_fn=3), TypeError, "scale_fn must be callable"),
    (lambda: S.cyclic(1.0, 5.0, 4, gamma=0.0), ValueError, "gamma must be > 0"),
    (lambda: S.cyclic(nan, 5.0, 4), ValueError, "base must be a finite"),
    (lambda: S.cyclic(1.0, "5", 4), TypeError, "peak must be a number"),
    (lambda: S.cyclic_momentum(0.85, 0.95, 4), ValueError, r"low \(0.95\) must be <= high"),
    (lambda: S.sgdr(0.1, 1.0, 10), ValueError, r"peak \(0.1\) must be >= end"),
    (lambda: S.sgdr(1.0, 0.0, 0), ValueError, "cycle_steps must be a positive"),
    (lambda: S.sgdr(1.0, 0.0, 5, 0), ValueError, "cycle_mult must be a positive"),
    (lambda: S.sgdr(1.0, 0.0, 5, 1.5), TypeError, "cycle_mult must be a positive int"),
    (lambda: S.sgdr(1.0, 0.0, 5, peak_decay=1.5), ValueError, r"peak_decay must be in \(0, 1\]"),
    (lambda: S.one_cycle(1.0, 100, pct_start=0.0), ValueError, r"pct_start must be in \(0, 1\)"),
    (lambda: S.one_cycle(1.0, 100, pct_start=1.0), ValueError, r"pct_start must be in \(0, 1\)"),
    (lambda: S.one_cycle(1.0, 100, pct_start=nan), ValueError, "pct_start must be a finite"),
    (lambda: S.one_cycle(1.0, 100, pct_start="0.3"), TypeError, "pct_start must be a number"),
    (lambda: S.one_cycle(1.0, 3, pct_start=0.2), ValueError, "raise total_steps or pct_start"),
    (lambda: S.one_cycle(1.0, 10, pct_start=0.6, three_phase=True), ValueError, "pct_start <= 0.5"),
    (lambda: S.one_cycle(1.0, 10, start=2.0), ValueError, r"start \(2.0\) must be <= peak"),
    (lambda: S.one_cycle(1.0, 10, end=2.0), ValueError, r"end \(2.0\) must be <= peak"),
    (lambda: S.one_cycle(-1.0, 10), ValueError, "peak must be > 0"),
    (lambda: S.one_cycle(inf, 10), ValueError, "peak must be a finite"),
    (lambda: S.one_cycle(1.0, 0), ValueError, "total_steps must be a positive"),
    (lambda: S.one_cycle(1.0, 10.0), TypeError, "total_steps must be a positive int"),
    (lambda: S.one_cycle(1.0, 10, anneal="exp"), ValueError, "anneal must be 'cos' or 'linear'"),
    (lambda: S.one_cycle(1.0, 10, momentum=(0.95,)), ValueError, r"pair \(high, low\)"),
    (lambda: S.one_cycle(1.0, 10, momentum=0.9), TypeError, r"pair \(high, low\) or None"),
    (lambda: S.one_cycle(1.0, 10, momentum=(1.5, 0.85)), ValueError, r"in \[0, 1\]"),
    (lambda: S.warmup(S.cosine(1.0, 10), 0), ValueError, "steps must be a positive"),
    (lambda: S.warmup(S.cosine(1.0, 10), 5, shape="quadratic"), ValueError, "shape must be"),
    (lambda: S.warmup(S.cosine(1.0, 10), 5, 0.0, "exponential"), ValueError, "must be > 0"),
    (
        lambda: S.warmup(S.linear(0.0, 1.0, 3), 5, 0.1, "exponential"),
        ValueError,
        "use shape='linear'",
    ),
    (lambda: S.warmup(0.1, 5), TypeError, "must be an lrkit schedule"),
    (lambda: S.wsd(1.0, 10, 6, 5), ValueError, "exceed total_steps"),
    (lambda: S.wsd(1.0, 10, 2, 5, start=2.0), ValueError, "must be <= peak"),
    (lambda: S.wsd(1.0, 10, 2, 5, decay_shape="exp"), ValueError, "decay_shape must be"),
    (lambda: S.wsd(1.0, 10, 2.5, 5), TypeError, "warmup_steps must be an int"),
    (lambda: S.wsd(1.0, 10, -1, 5), ValueError, "warmup_steps must be >= 0"),
    (lambda: S.sequence(), ValueError, "at least one piece"),
    (lambda: S.sequence(S.constant(1.0), S.constant(2.0)), ValueError, "give it a length"),
    (lambda: S.sequence((S.constant(1.0),)), ValueError, r"\(schedule, steps\)"),
    (lambda: S.sequence((S.constant(1.0), 0)), ValueError, "steps must be a positive"),
    (lambda: S.sequence(S.linear(0, 1, 2), lambda t: 0.1), TypeError, "wrap a plain function"),
    (lambda: S.repeat(S.constant(1.0)), ValueError, "needs a schedule with a length"),
    (lambda: S.repeat(S.linear(0, 1, 2), 0), ValueError, "times must be a positive"),
    (lambda: S.clamp(S.constant(1.0)), ValueError, "needs low, high or both"),
    (lambda: S.clamp(S.constant(1.0), 2.0, 1.0), ValueError, r"low \(2.0\) must be <= high"),
    (lambda: S.clamp(S.constant(1.0), nan), ValueError, "low must be a finite"),
    (lambda: S.scale(S.constant(1.0), inf), ValueError, "factor must be a finite"),
    (lambda: S.product(S.constant(1.0)), ValueError, "at least two"),
    (lambda: S.per_epoch(S.constant(1.0), 0), ValueError, "steps_per_epoch must be a positive"),
    (lambda: S.take(S.constant(1.0), 0), ValueError, "steps must be a positive"),
    (lambda: S.reduce_on_plateau(0.1, factor=1.0), ValueError, "factor must be < 1"),
    (lambda: S.reduce_on_plateau(0.1, patience=-1), ValueError, "patience must be >= 0"),
    (lambda: S.reduce_on_plateau(0.1, cooldown=1.5), TypeError, "cooldown must be an int"),
    (lambda: S.one_cycle(0.1, 100, three_phase="yes"), TypeError, "three_phase must be True"),
    (lambda: S.reduce_on_plateau(0.1, mode="avg"), ValueError, "mode must be 'min' or 'max'"),
    (lambda: S.reduce_on_plateau(0.1, threshold_mode="x"), ValueError, "threshold_mode must"),
    (lambda: S.reduce_on_plateau(0.0), ValueError, "start must be > 0"),
    (lambda: S.reduce_on_plateau(0.1, min_value=nan), ValueError, "min_value must be a finite"),
    (lambda: S.reduce_on_plateau(0.1).observe(nan, 0), ValueError, "metric must be a finite"),
    (lambda: S.custom(3), TypeError, "fn must be callable"),
    (lambda: S.from_dict({"type": "nope"}), ValueError, "unknown schedule type 'nope'"),
    (lambda: S.from_dict({"start": 1.0}), ValueError, "expected a dict with a 'type' key"),
    (lambda: S.cosine(1.0, 10)(-1), ValueError, "steps must be finite and >= 0"),
    (lambda: S.cosine(1.0, 10)(np.array([0, nan])), ValueError, "finite and >= 0"),
]


@pytest.mark.parametrize(("make", "error", "match"), BAD)
def test_bad_input_is_refused(
    make: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make()


def test_one_policy_type_lives_on_the_ground_floor() -> None:
    import lrkit
    from lrkit.schedules import _base, onecycle

    assert S.Hyper is _base.Hyper is onecycle.Hyper
    assert S.Policy is lrkit.Policy
    h, c = S.one_cycle(0.8, 100), S.cosine(1.0, 10)
    assert isinstance(h, S.Policy) and isinstance(c, S.Policy)
    assert not isinstance(0.1, S.Policy)
    assert S.as_hyper(h) is h
    assert S.as_hyper(c) == S.Hyper(lr=c) and S.as_hyper(c).momentum is None
    # a one-cycle lr whose momentum does not cycle with it reads as a plain Hyper
    odd = S.Hyper(lr=h.lr, momentum=S.one_cycle_momentum(0.95, 0.85, 50))
    assert repr(odd).startswith("Hyper(lr=one_cycle_lr(peak=0.8, total_steps=100), momentum=")
    assert S.from_dict(odd.to_dict()) == odd


def test_schedule_modules_import_no_private_names_and_the_ground_floor_no_family() -> None:
    import ast
    from pathlib import Path

    package = Path(S.__file__).parent
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                names = [a.name for a in node.names]
                assert not [n for n in names if n.startswith("_")], (path.name, names)
                if path.name == "_base.py":
                    raise AssertionError(f"_base.py imports .{node.module}")
