"""RangeTestResult: suggestions, Smith's bounds, schedule hand-off, plot, (de)serialization."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lrkit import schedules as S
from lrkit.finder import RangeTestResult, lr_bounds, suggest_lrkit, zero_lag_smooth
from strategies_finder import exp_lrs, u_curve, with_noise


def _result(sigma: float = 0.02, repeats: int = 1) -> RangeTestResult:
    lrs = exp_lrs(100)
    clean = u_curve(lrs)
    curves = [with_noise(clean, sigma, seed=k) for k in range(repeats)]
    return RangeTestResult.build(
        lrs=lrs,
        losses=np.mean(curves, axis=0),
        stop_reason="completed",
        repeat_losses=curves if repeats > 1 else None,
    )


def test_build_sets_suggestion_and_band() -> None:
    res = _result()
    assert res.suggestion is not None
    assert res.suggestion == suggest_lrkit(res.lrs, res.losses)
    assert res.suggestion_low is not None and res.suggestion_high is not None
    assert res.suggestion_low <= res.suggestion <= res.suggestion_high
    assert "bootstrap" in res.suggestion_reason


def test_suggest_methods() -> None:
    res = _result()
    for method in ("lrkit", "minimum", "steepest", "valley"):
        s = res.suggest(method)  # type: ignore[arg-type]
        assert s.method == method
        assert s.lr is not None and s.low is not None and s.high is not None
        assert s.low <= s.lr <= s.high
    with pytest.raises(ValueError, match="method"):
        res.suggest("fastest")  # type: ignore[arg-type]


def test_repeats_give_the_band() -> None:
    res = _result(repeats=4)
    s = res.suggest()
    assert "4 repeats" in s.reason
    singles = [suggest_lrkit(res.lrs, c) for c in res.repeat_losses]
    assert s.low is not None and s.high is not None
    assert s.low >= min(v for v in singles if v is not None) * (1 - 1e-12)
    assert s.high <= max(v for v in singles if v is not None) * (1 + 1e-12)


def test_bounds() -> None:
    res = _result()
    assert res.suggestion is not None
    base, peak = res.bounds("one_cycle")
    assert peak == pytest.approx(res.suggestion)
    assert base == pytest.approx(peak / 25)  # one_cycle's one default start
    base_c, peak_c = res.bounds("cyclic")
    assert (base_c, peak_c) == pytest.approx((peak / 4, peak))
    assert lr_bounds(res.lrs, res.losses, "cyclic") == (base_c, peak_c)
    with pytest.raises(ValueError, match="kind"):
        res.bounds("triangular")  # type: ignore[arg-type]


def test_bounds_without_descent_raise() -> None:
    lrs = exp_lrs(100)
    res = RangeTestResult.build(
        lrs=lrs, losses=with_noise(np.full(100, 2.0), 0.05), stop_reason="completed"
    )
    assert res.suggestion is None
    assert "no clear descent" in res.suggestion_reason
    with pytest.raises(ValueError, match="no clear descent"):
        res.bounds()


def test_one_cycle_and_cyclic_hand_off() -> None:
    res = _result()
    base, peak = res.bounds("one_cycle")
    sched = res.one_cycle(1000)
    lr = np.asarray(sched.lr(np.arange(1000)))
    assert lr.max() == pytest.approx(peak)
    assert lr[0] == pytest.approx(base)
    assert sched.momentum is not None
    custom = res.one_cycle(1000, start=peak / 25, momentum=None)
    assert float(custom.lr(0)) == pytest.approx(peak / 25)
    base_c, peak_c = res.bounds("cyclic")
    wave = res.cyclic(50)
    values = np.asarray(wave(np.arange(200)))
    assert values.min() == pytest.approx(base_c)
    assert values.max() == pytest.approx(peak_c)
    assert float(wave(50)) == pytest.approx(peak_c)


def test_dict_and_json_round_trip(tmp_path: Path) -> None:
    res = _result(repeats=2)
    res.losses[-1] = math.nan  # non-finite values survive as null
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    back = RangeTestResult.from_dict(d)
    np.testing.assert_array_equal(back.lrs, res.lrs)
    np.testing.assert_array_equal(back.losses, res.losses)
    assert len(back.repeat_losses) == 2
    assert back.suggestion == res.suggestion
    assert back.suggestion_low == res.suggestion_low
    assert back.stop_reason == "completed"
    path = tmp_path / "rt.json"
    res.to_json(path)
    again = RangeTestResult.from_json(path)
    assert again.to_dict() == d
    with pytest.raises(ValueError, match="stop_reason"):
        RangeTestResult.from_dict({**d, "stop_reason": "bored"})


def test_plot_to_file_and_axes(tmp_path: Path) -> None:
    res = _result(repeats=2)
    path = tmp_path / "sub" / "rt.png"
    ax = res.plot(path)
    assert path.exists() and path.stat().st_size > 5000
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("suggestion") for t in labels)
    assert any("smoothed" in t for t in labels)
    from matplotlib.figure import Figure

    fig = Figure()
    own = fig.add_subplot()
    assert res.plot(own) is own
    with pytest.raises(TypeError, match="plot target"):
        res.plot(42)  # type: ignore[arg-type]


def test_plot_with_metrics_and_no_suggestion(tmp_path: Path) -> None:
    lrs = exp_lrs(50)
    flat = with_noise(np.full(50, 1.0), 0.05)
    res = RangeTestResult.build(
        lrs=lrs,
        losses=flat,
        val_losses=flat + 0.1,
        metrics=np.linspace(0.1, 0.2, 50),
        stop_reason="completed",
    )
    res.plot(tmp_path / "flat.png")
    assert (tmp_path / "flat.png").exists()


def test_repr_is_short() -> None:
    text = repr(_result())
    assert text.startswith("RangeTestResult(steps=100")
    assert len(text) < 200


def test_one_cycle_has_one_default_start() -> None:
    res = _result()
    assert res.suggestion is not None
    peak = res.suggestion
    sched = res.one_cycle(1000)
    assert sched == S.one_cycle(peak, 1000)
    assert float(sched.lr(0)) == pytest.approx(peak / 25)
    assert float(sched.lr(0)) == pytest.approx(peak / S.ONE_CYCLE_DIV_FACTOR)
    assert res.bounds("one_cycle")[0] == pytest.approx(float(sched.lr(0)), rel=1e-12)
    assert float(res.one_cycle(1000, start=peak / 10).lr(0)) == pytest.approx(peak / 10)


def test_plot_main_line_is_the_curve_the_rule_reads() -> None:
    from matplotlib.figure import Figure

    # a linear-sweep-like first point at lr 0 (off the log axis) and a NaN tail
    lrs = np.concatenate([[0.0], exp_lrs(99)])
    losses = np.concatenate([[2.3], with_noise(u_curve(lrs[1:]), 0.05)])
    losses[-3:] = np.nan
    res = RangeTestResult.build(lrs=lrs, losses=losses, stop_reason="nan")
    ax = res.plot(Figure().add_subplot())
    lines = ax.get_lines()
    main = max(lines, key=lambda line: line.get_linewidth())
    expected = zero_lag_smooth(res.lrs, res.scored_losses)
    np.testing.assert_allclose(np.asarray(main.get_ydata(), dtype=float), expected)
    np.testing.assert_array_equal(np.asarray(main.get_xdata(), dtype=float), res.lrs[1:-3])
    assert "read by the suggestion" in str(main.get_label())
    x, smooth = res.zero_lag()
    np.testing.assert_array_equal(smooth, expected)
    np.testing.assert_array_equal(x, res.lrs[1:-3])
    assert res.lowest_loss() == pytest.approx(float(expected.min()))
    ema_lines = [ln for ln in lines if "EMA" in str(ln.get_label())]
    assert len(ema_lines) == 1 and ema_lines[0].get_linewidth() < main.get_linewidth()
    low, high = ax.get_ylim()
    assert low < float(expected.min()) < high
