"""Smith's weight-decay and momentum tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lrkit.finder import (
    HyperTestResult,
    RangeTestResult,
    momentum_test,
    weight_decay_test,
    zero_lag_smooth,
)
from lrkit.finder.hyper import recommend
from strategies_finder import (
    assert_same_state,
    capture,
    exp_lrs,
    make_data,
    mlp,
    u_curve,
    with_noise,
)

FAST = {"steps": 12, "end_lr": 1.0}


pytestmark = pytest.mark.usefixtures("one_thread")


def _setup(opt_name: str = "sgd") -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = mlp()
    if opt_name == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4
        )
    elif opt_name == "adam":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98))
    else:
        opt = torch.optim.Adagrad(model.parameters(), lr=0.01)
    return model, opt


class _Spy:
    """A loss function that records the optimizer's hyperparameters at every call."""

    def __init__(self, opt: torch.optim.Optimizer, key: str) -> None:
        self.opt = opt
        self.key = key
        self.seen: list[object] = []

    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.opt.param_groups[0][self.key])
        return nn.functional.cross_entropy(out, y)


def test_weight_decay_test_sets_each_value_and_restores() -> None:
    model, opt = _setup()
    before = capture(model, opt)
    spy = _Spy(opt, "weight_decay")
    res = weight_decay_test(model, opt, make_data(), spy, weight_decays=(1e-3, 0.0), **FAST)
    assert isinstance(res, HyperTestResult)
    assert res.name == "weight_decay" and res.values == [1e-3, 0.0]
    assert len(res.results) == 2
    assert sorted(set(spy.seen)) == [0.0, 1e-3]  # type: ignore[type-var]
    assert_same_state(before, capture(model, opt))
    assert opt.param_groups[0]["weight_decay"] == 5e-4
    # every run starts from the same state and data order: identical first losses
    assert res.results[0].losses[0] == res.results[1].losses[0]


def test_momentum_test_sgd_and_adam_betas() -> None:
    model, opt = _setup("sgd")
    spy = _Spy(opt, "momentum")
    res = momentum_test(model, opt, make_data(), spy, momentums=(0.95, 0.8), **FAST)
    assert sorted(set(spy.seen)) == [0.8, 0.95]  # type: ignore[type-var]
    assert opt.param_groups[0]["momentum"] == 0.9
    assert res.name == "momentum"

    model, opt = _setup("adam")
    before = capture(model, opt)
    spy = _Spy(opt, "betas")
    momentum_test(model, opt, make_data(), spy, momentums=(0.97, 0.85), **FAST)
    assert set(spy.seen) == {(0.97, 0.98), (0.85, 0.98)}
    assert opt.param_groups[0]["betas"] == (0.9, 0.98)
    assert_same_state(before, capture(model, opt))


def test_momentum_test_rejects_optimizers_without_momentum() -> None:
    model, opt = _setup("adagrad")
    with pytest.raises(ValueError, match="neither momentum nor betas"):
        momentum_test(model, opt, make_data(), nn.CrossEntropyLoss())
    torch.manual_seed(0)
    plain = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="momentum=0"):
        momentum_test(model, plain, make_data(), nn.CrossEntropyLoss())
    _, sgd = _setup()
    with pytest.raises(ValueError, match="momentums"):
        momentum_test(model, sgd, make_data(), nn.CrossEntropyLoss(), momentums=(1.0,))


def test_weight_decay_test_bad_input() -> None:
    model, opt = _setup()
    with pytest.raises(ValueError, match="weight_decays"):
        weight_decay_test(model, opt, make_data(), nn.CrossEntropyLoss(), weight_decays=())
    with pytest.raises(ValueError, match="weight_decays"):
        weight_decay_test(model, opt, make_data(), nn.CrossEntropyLoss(), weight_decays=(-1.0,))
    with pytest.raises(ValueError, match="iterator"):
        weight_decay_test(model, opt, iter(make_data()), nn.CrossEntropyLoss())
    before = capture(model, opt)
    with pytest.raises(ValueError, match="steps"):
        weight_decay_test(model, opt, make_data(), nn.CrossEntropyLoss(), steps=3)
    assert_same_state(before, capture(model, opt))


def _synthetic(bottom: float, rise_at: float, descent_at: float = -2.0) -> RangeTestResult:
    lrs = exp_lrs(100)
    curve = u_curve(lrs, bottom=bottom, rise_at=rise_at, descent_at=descent_at)
    return RangeTestResult.build(lrs=lrs, losses=curve, stop_reason="completed")


def test_recommend_lowest_loss_then_largest_lr() -> None:
    low = _synthetic(0.3, -0.3)
    high = _synthetic(0.8, -0.3)
    best, reason = recommend([1e-4, 1e-3], [high, low])
    assert best == 1e-3 and "lowest" in reason
    # equal depth: the curve that stays low up to a larger LR wins
    early = _synthetic(0.4, -1.0, descent_at=-3.5)
    late = _synthetic(0.4, 0.0, descent_at=-3.5)
    best, reason = recommend([0.9, 0.95], [early, late])
    assert best == 0.95 and "largest LR" in reason
    flat = RangeTestResult.build(lrs=exp_lrs(100), losses=np.ones(100), stop_reason="completed")
    assert recommend([0.0], [flat]) == (None, "no curve has a clear descent")


def test_plot_and_round_trip(tmp_path: Path) -> None:
    res = HyperTestResult(
        name="weight_decay",
        values=[1e-4, 0.0],
        results=[_synthetic(0.3, -0.3), _synthetic(0.5, -0.5)],
        best=1e-4,
        reason="test",
    )
    ax = res.plot(tmp_path / "wd.png")
    assert (tmp_path / "wd.png").exists()
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["weight_decay=0.0001 (best)", "weight_decay=0"]
    back = HyperTestResult.from_dict(res.to_dict())
    assert back.values == res.values and back.best == res.best
    np.testing.assert_array_equal(back.results[1].losses, res.results[1].losses)


def _wd_result() -> HyperTestResult:
    lrs = exp_lrs(100)
    noisy = [
        RangeTestResult.build(
            lrs=lrs,
            losses=with_noise(u_curve(lrs, bottom=bottom, rise_at=-0.3), 0.05, seed=k),
            stop_reason="completed",
        )
        for k, bottom in enumerate((0.3, 0.5))
    ]
    best, reason = recommend([1e-4, 0.0], noisy)
    return HyperTestResult("weight_decay", [1e-4, 0.0], noisy, best, reason)


def test_lowest_loss_is_the_minimum_of_the_plotted_curve() -> None:
    from matplotlib.figure import Figure

    res = _wd_result()
    assert len(res.lowest) == 2
    ax = res.plot(Figure().add_subplot())
    for k, (line, run) in enumerate(zip(ax.get_lines(), res.results, strict=True)):
        drawn = np.asarray(line.get_ydata(), dtype=float)
        np.testing.assert_allclose(drawn, zero_lag_smooth(run.lrs, run.scored_losses))
        assert res.lowest[k] == pytest.approx(float(drawn.min()), rel=1e-12)
        # not the EMA's minimum, which lags and sits higher on a noisy curve
        assert res.lowest[k] != pytest.approx(float(np.nanmin(run.smoothed)), rel=1e-6)
    assert res.best == 1e-4
    assert f"({res.lowest[0]:.4g})" in res.reason  # the recommendation quotes the same number
    d = res.to_dict()
    assert d["lowest"] == res.lowest
    assert HyperTestResult.from_dict(d).lowest == res.lowest


def test_cli_table_prints_the_carried_lowest_loss(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    import lrkit.finder.task as trial
    from lrkit.cli import app

    res = _wd_result()
    res.lowest = [0.123456, 0.654321]  # the table must print these, not re-smooth the curves
    monkeypatch.setattr(trial, "hyper_test_task", lambda *a, **k: res)
    monkeypatch.setenv("COLUMNS", "200")
    args = ["find", "--task", "wine-mlp", "--test", "weight-decay", "--out", str(tmp_path)]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "0.1235" in out.output and "0.6543" in out.output


def test_ctrl_c_stops_the_series_at_the_interrupted_value() -> None:
    model, opt = _setup()
    calls = {"n": 0}

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 20:  # inside the second value's sweep
            raise KeyboardInterrupt
        return nn.functional.cross_entropy(out, y)

    res = weight_decay_test(
        model, opt, make_data(), loss_fn, weight_decays=(1e-3, 1e-4, 0.0), extend=1, **FAST
    )
    assert res.values == [1e-3, 1e-4] and len(res.results) == 2
    assert res.results[-1].stop_reason == "interrupted"
    assert opt.param_groups[0]["weight_decay"] == 5e-4


def test_written_files_get_the_usual_permissions(tmp_path: Path) -> None:
    import os

    from lrkit._files import atomic_write_text

    atomic_write_text(tmp_path / "a.json", "{}")
    mask = os.umask(0o022)
    os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask
