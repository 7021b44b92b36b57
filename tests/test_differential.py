"""lrkit against PyTorch's own schedulers on randomized configurations.

The lrkit value at step ``t`` must equal the value PyTorch writes into the param group after ``t``
calls of ``scheduler.step()`` (``t = 0`` is right after construction). Unless a test says why, the
tolerance is relative 1e-9, with an absolute 1e-15 that only matters for values that are exactly 0
on one side and round-off on the other.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as L

import lrkit
from lrkit import schedules as S
from strategies import SCALE_FNS, maybe, momenta, ordered_pair, values

DIFF = settings(max_examples=60, deadline=None)


def isclose(a: float, b: float, rel: float = 1e-9, abs_: float = 1e-15) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def sgd(lr: float = 0.1, momentum: float = 0.9) -> torch.optim.SGD:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr, momentum=momentum)


def adam(lr: float = 0.1) -> torch.optim.Adam:
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=lr, betas=(0.9, 0.99))


def momentum_of(group: dict[str, Any]) -> float:
    return float(group["betas"][0] if "betas" in group else group["momentum"])


def run_torch(
    opt: torch.optim.Optimizer,
    sched: L.LRScheduler,
    steps: int,
    *,
    momentum: bool = False,
) -> tuple[list[float], list[float]]:
    """``(lr, momentum)`` of the first param group after 0, 1, ..., ``steps`` scheduler steps."""
    group = opt.param_groups[0]
    lrs, moms = [float(group["lr"])], [momentum_of(group) if momentum else math.nan]
    for _ in range(steps):
        opt.step()
        sched.step()
        lrs.append(float(group["lr"]))
        moms.append(momentum_of(group) if momentum else math.nan)
    return lrs, moms


def assert_matches(
    ours: np.ndarray | list[float],
    theirs: list[float],
    rel: float = 1e-9,
    abs_: float = 1e-15,
) -> None:
    bad = [
        (t, a, b)
        for t, (a, b) in enumerate(zip(ours, theirs, strict=True))
        if not isclose(float(a), b, rel, abs_)
    ]
    assert not bad, f"{len(bad)} steps differ, first (step, lrkit, torch): {bad[:3]}"


# -- CyclicLR -----------------------------------------------------------------------------------


@st.composite
def clr_configs(draw: st.DrawFn) -> dict[str, Any]:
    """A CyclicLR configuration: bounds, asymmetric steps, mode or custom scale_fn."""
    base, peak = draw(ordered_pair())
    up = draw(st.integers(1, 15))
    down = draw(maybe(st.integers(1, 15)))
    cfg: dict[str, Any] = {
        "base": base,
        "peak": peak,
        "up": up,
        "down": down,
        "mode": draw(st.sampled_from(("triangular", "triangular2", "exp_range"))),
        "gamma": draw(st.floats(0.9, 1.0)),
        "scale_fn": None,
        "scale_mode": None,
    }
    if draw(st.booleans()):
        cfg["scale_fn"] = draw(st.sampled_from(SCALE_FNS))
        cfg["scale_mode"] = draw(st.sampled_from(("cycle", "iterations")))
    cfg["steps"] = 4 * (up + (down or up)) + draw(st.integers(0, 10))
    low, high = draw(ordered_pair(momenta))
    cfg["high"], cfg["low"] = high, low
    return cfg


def torch_clr(cfg: dict[str, Any], opt: torch.optim.Optimizer, momentum: bool) -> L.CyclicLR:
    kw: dict[str, Any] = {}
    if cfg["scale_fn"] is not None:
        kw = {"scale_fn": cfg["scale_fn"], "scale_mode": cfg["scale_mode"]}
    return L.CyclicLR(
        opt,
        base_lr=cfg["base"],
        max_lr=cfg["peak"],
        step_size_up=cfg["up"],
        step_size_down=cfg["down"],
        mode=cfg["mode"],
        gamma=cfg["gamma"],
        cycle_momentum=momentum,
        base_momentum=cfg["low"],
        max_momentum=cfg["high"],
        **kw,
    )


def wave_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "step_size_up": cfg["up"],
        "step_size_down": cfg["down"],
        "mode": cfg["mode"],
        "gamma": cfg["gamma"],
        "scale_fn": cfg["scale_fn"],
        "scale_mode": cfg["scale_mode"],
    }


@DIFF
@given(clr_configs())
def test_cyclic_equals_cycliclr(cfg: dict[str, Any]) -> None:
    ours = S.cyclic(cfg["base"], cfg["peak"], **wave_kwargs(cfg))
    opt = sgd(momentum=0.0)
    lrs, _ = run_torch(opt, torch_clr(cfg, opt, momentum=False), cfg["steps"])
    assert_matches(ours(np.arange(cfg["steps"] + 1)), lrs)


@DIFF
@given(clr_configs(), st.booleans())
def test_cyclic_momentum_equals_cycliclr(cfg: dict[str, Any], use_adam: bool) -> None:
    lr = S.cyclic(cfg["base"], cfg["peak"], **wave_kwargs(cfg))
    direct = S.cyclic_momentum(cfg["high"], cfg["low"], **wave_kwargs(cfg))
    assert lr.momentum(cfg["high"], cfg["low"]) == direct
    opt = adam() if use_adam else sgd()
    lrs, moms = run_torch(opt, torch_clr(cfg, opt, momentum=True), cfg["steps"], momentum=True)
    t = np.arange(cfg["steps"] + 1)
    assert_matches(lr(t), lrs)
    assert_matches(direct(t), moms)


@settings(max_examples=25, deadline=None)
@given(clr_configs(), st.booleans())
def test_driver_with_cyclic_equals_cycliclr(cfg: dict[str, Any], use_adam: bool) -> None:
    """End to end: the param groups lrkit.Scheduler writes match the ones CyclicLR writes."""
    lr = S.cyclic(cfg["base"], cfg["peak"], **wave_kwargs(cfg))
    ref = adam() if use_adam else sgd()
    lrs, moms = run_torch(ref, torch_clr(cfg, ref, momentum=True), cfg["steps"], momentum=True)
    opt = adam() if use_adam else sgd()
    drv = lrkit.Scheduler(opt, lr=lr, momentum=lr.momentum(cfg["high"], cfg["low"]))
    ours_lr, ours_m = run_torch(opt, drv, cfg["steps"], momentum=True)
    assert_matches(ours_lr, lrs)
    assert_matches(ours_m, moms)


# -- OneCycleLR ---------------------------------------------------------------------------------


@st.composite
def one_cycle_configs(draw: st.DrawFn) -> dict[str, Any]:
    total = draw(st.integers(2, 300))
    # pct · total > 1: at exactly 1 PyTorch divides 0 by 0 at step 0 (lrkit gives the peak)
    pct = draw(st.floats(0.02, 0.98).filter(lambda p: p * total > 1))
    three = draw(st.booleans()) and 2 * pct * total - 2 <= total - 1
    peak = draw(values)
    start = peak / draw(st.floats(1.0, 1e3))
    end = start / draw(st.floats(1.0, 1e5))
    return {
        "peak": peak,
        "total": total,
        "start": start,
        "end": end,
        "pct": pct,
        "anneal": draw(st.sampled_from(("cos", "linear"))),
        "three": three,
        "momentum": draw(ordered_pair(momenta)),
    }


def torch_one_cycle(cfg: dict[str, Any], opt: torch.optim.Optimizer) -> L.OneCycleLR:
    low, high = cfg["momentum"]
    return L.OneCycleLR(
        opt,
        max_lr=cfg["peak"],
        total_steps=cfg["total"],
        pct_start=cfg["pct"],
        anneal_strategy=cfg["anneal"],
        div_factor=cfg["peak"] / cfg["start"],
        final_div_factor=cfg["start"] / cfg["end"],
        three_phase=cfg["three"],
        base_momentum=low,
        max_momentum=high,
    )


def lrkit_one_cycle(cfg: dict[str, Any]) -> S.Hyper:
    low, high = cfg["momentum"]
    return S.one_cycle(
        cfg["peak"],
        cfg["total"],
        start=cfg["start"],
        end=cfg["end"],
        pct_start=cfg["pct"],
        anneal=cfg["anneal"],
        three_phase=cfg["three"],
        momentum=(high, low),
    )


@DIFF
@given(one_cycle_configs(), st.booleans())
def test_one_cycle_equals_onecyclelr(cfg: dict[str, Any], use_adam: bool) -> None:
    h = lrkit_one_cycle(cfg)
    assert h.momentum is not None
    opt = adam() if use_adam else sgd()
    n = cfg["total"]
    lrs, moms = run_torch(opt, torch_one_cycle(cfg, opt), n - 1, momentum=True)
    t = np.arange(n)
    assert_matches(h.lr(t), lrs)
    assert_matches(h.momentum(t), moms)
    # lrkit then holds the end values
    assert h.lr(np.arange(n, n + 20)).tolist() == [h.lr(n - 1)] * 20
    assert h.momentum(n + 5) == h.momentum(n - 1)
    assert isclose(h.lr(n - 1), cfg["end"])


@settings(max_examples=25, deadline=None)
@given(one_cycle_configs())
def test_driver_with_one_cycle_equals_onecyclelr(cfg: dict[str, Any]) -> None:
    """The Hyper from one_cycle drives Adam's betas[0] exactly as OneCycleLR does."""
    ref = adam()
    lrs, moms = run_torch(ref, torch_one_cycle(cfg, ref), cfg["total"] - 1, momentum=True)
    opt = adam()
    drv = lrkit.Scheduler(opt, lr=lrkit_one_cycle(cfg))
    ours_lr, ours_m = run_torch(opt, drv, cfg["total"] - 1, momentum=True)
    assert_matches(ours_lr, lrs)
    assert_matches(ours_m, moms)
    assert opt.param_groups[0]["betas"][1] == 0.99


@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle_past_the_end_holds_where_torch_extrapolates_then_raises(anneal: str) -> None:
    """PyTorch extrapolates the last phase at step ``total_steps`` and raises after it; lrkit
    holds ``end`` (documented in :func:`lrkit.schedules.one_cycle`)."""
    n = 50
    opt = sgd()
    sched = L.OneCycleLR(opt, max_lr=1.0, total_steps=n, anneal_strategy=anneal)
    lrs, _ = run_torch(opt, sched, n - 1)
    h = S.one_cycle(1.0, n, anneal=anneal)
    assert_matches(h.lr(np.arange(n)), lrs)
    end = h.lr(n - 1)
    assert isclose(end, 1.0 / 25 / 1e4)
    opt.step()
    sched.step()  # step n: PyTorch's last phase runs past pct = 1
    extrapolated = opt.param_groups[0]["lr"]
    assert not isclose(extrapolated, end, rel=1e-3)
    assert h.lr(n) == end
    opt.step()
    with pytest.raises(ValueError, match="Tried to step"):
        sched.step()
    assert h.lr(n + 1) == h.lr(10 * n) == end
    # lrkit's driver keeps going past the end
    opt2 = sgd()
    drv = lrkit.Scheduler(opt2, lr=h)
    for _ in range(n + 10):
        opt2.step()
        drv.step()
    assert opt2.param_groups[0]["lr"] == end
    assert opt2.param_groups[0]["momentum"] == h.momentum(n - 1)


# -- CosineAnnealingWarmRestarts ----------------------------------------------------------------


@DIFF
@given(ordered_pair(), st.integers(1, 12), st.integers(1, 3), st.integers(4, 6))
def test_sgdr_equals_cosine_annealing_warm_restarts(
    bounds: tuple[float, float], t0: int, mult: int, cycles: int
) -> None:
    end, peak = bounds
    ours = S.sgdr(peak, end, t0, mult)
    # several restarts: the first `cycles` cycles and a few steps into the next one
    horizon = sum(t0 * mult**i for i in range(cycles)) + 3
    opt = sgd(lr=peak)
    sched = L.CosineAnnealingWarmRestarts(opt, T_0=t0, T_mult=mult, eta_min=end)
    lrs, _ = run_torch(opt, sched, horizon)
    assert_matches(ours(np.arange(horizon + 1)), lrs)


# -- the rest of the family (cheap checks) ------------------------------------------------------


@DIFF
@given(values, st.integers(1, 200), st.floats(0.0, 1.0))
def test_cosine_equals_cosine_annealing(start: float, steps: int, end_frac: float) -> None:
    end = start * end_frac
    opt = sgd(lr=start)
    lrs, _ = run_torch(opt, L.CosineAnnealingLR(opt, T_max=steps, eta_min=end), steps)
    # CosineAnnealingLR is recursive. Its drift stays far below 1e-9 relative, but where the curve
    # reaches end = 0 it leaves round-off of about 1e-15 · start instead of 0, which no relative
    # tolerance accepts: hence an absolute tolerance of 1e-13 · start.
    assert_matches(S.cosine(start, steps, end=end)(np.arange(steps + 1)), lrs, abs_=1e-13 * start)


@DIFF
@given(values, st.integers(1, 20), st.floats(0.05, 1.0), st.integers(1, 200))
def test_step_equals_steplr(start: float, size: int, gamma: float, steps: int) -> None:
    opt = sgd(lr=start)
    lrs, _ = run_torch(opt, L.StepLR(opt, step_size=size, gamma=gamma), steps)
    assert_matches(S.step(start, size, gamma)(np.arange(steps + 1)), lrs)


@DIFF
@given(
    values,
    st.lists(st.integers(1, 150), min_size=1, max_size=5, unique=True).map(sorted),
    st.floats(0.05, 1.0),
)
def test_multistep_equals_multisteplr(start: float, milestones: list[int], gamma: float) -> None:
    steps = milestones[-1] + 10
    opt = sgd(lr=start)
    lrs, _ = run_torch(opt, L.MultiStepLR(opt, milestones=milestones, gamma=gamma), steps)
    assert_matches(S.multistep(start, milestones, gamma)(np.arange(steps + 1)), lrs)


@DIFF
@given(values, st.floats(0.9, 1.02), st.integers(1, 300))
def test_exponential_equals_exponentiallr(start: float, gamma: float, steps: int) -> None:
    opt = sgd(lr=start)
    lrs, _ = run_torch(opt, L.ExponentialLR(opt, gamma=gamma), steps)
    assert_matches(S.exponential(start, gamma)(np.arange(steps + 1)), lrs)


@DIFF
@given(values, st.floats(0.01, 1.0), st.floats(0.0, 1.0), st.integers(1, 100))
def test_linear_equals_linearlr(base: float, sf: float, ef: float, total: int) -> None:
    opt = sgd(lr=base)
    sched = L.LinearLR(opt, start_factor=sf, end_factor=ef, total_iters=total)
    lrs, _ = run_torch(opt, sched, total + 10)
    ours = S.linear(base * sf, base * ef, total)(np.arange(total + 11))
    # LinearLR is recursive; with end_factor = 0 its last values are round-off around 0 (about
    # 1e-15 · base), hence the absolute tolerance of 1e-13 · base.
    assert_matches(ours, lrs, abs_=1e-13 * base)


@DIFF
@given(values, st.integers(1, 100), st.floats(0.3, 4.0))
def test_polynomial_equals_polynomiallr(base: float, total: int, power: float) -> None:
    opt = sgd(lr=base)
    lrs, _ = run_torch(opt, L.PolynomialLR(opt, total_iters=total, power=power), total + 10)
    ours = S.polynomial(base, 0.0, total, power)(np.arange(total + 11))
    # PolynomialLR is recursive (it multiplies ratios of (1 - t/T)^power); at and after t = T the
    # value is 0 in lrkit and round-off around 0 in PyTorch, hence the absolute 1e-13 · base.
    assert_matches(ours, lrs, abs_=1e-13 * base)


@DIFF
@given(
    values,
    st.floats(0.95, 1.0),
    st.lists(st.integers(1, 100), min_size=1, max_size=4, unique=True).map(sorted),
    st.floats(0.1, 0.9),
)
def test_product_equals_chained_scheduler(
    start: float, gamma: float, milestones: list[int], drop: float
) -> None:
    steps = milestones[-1] + 20
    opt = sgd(lr=start)
    chained = L.ChainedScheduler(
        [L.ExponentialLR(opt, gamma=gamma), L.MultiStepLR(opt, milestones=milestones, gamma=drop)]
    )
    lrs, _ = run_torch(opt, chained, steps)
    ours = S.product(S.exponential(start, gamma), S.multistep(1.0, milestones, drop))
    assert_matches(ours(np.arange(steps + 1)), lrs)


# -- ReduceLROnPlateau --------------------------------------------------------------------------


@st.composite
def plateau_configs(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "factor": draw(st.floats(0.05, 0.95)),
        "patience": draw(st.integers(0, 4)),
        "mode": draw(st.sampled_from(("min", "max"))),
        "threshold": draw(st.sampled_from((0.0, 1e-4, 0.01, 0.1, 0.5))),
        "threshold_mode": draw(st.sampled_from(("rel", "abs"))),
        "cooldown": draw(st.integers(0, 3)),
        "min_value": draw(st.sampled_from((0.0, 1e-3, 0.02))),
    }


@DIFF
@given(
    values,
    plateau_configs(),
    # few distinct values so that plateaus, ties and improvements all happen
    st.lists(st.integers(0, 6).map(lambda k: 0.5 + k / 4), min_size=1, max_size=80),
)
def test_reduce_on_plateau_equals_reducelronplateau(
    start: float, cfg: dict[str, Any], metrics: list[float]
) -> None:
    ref = sgd(lr=start)
    theirs = L.ReduceLROnPlateau(
        ref,
        mode=cfg["mode"],
        factor=cfg["factor"],
        patience=cfg["patience"],
        threshold=cfg["threshold"],
        threshold_mode=cfg["threshold_mode"],
        cooldown=cfg["cooldown"],
        min_lr=cfg["min_value"],
    )
    opt = sgd(lr=start)
    drv = lrkit.Scheduler(opt, lr=S.reduce_on_plateau(start, **cfg))
    for i, m in enumerate(metrics):
        ref.step()
        theirs.step(m)
        opt.step()
        if i % 2:
            drv.step()
            drv.observe(m)
        else:
            drv.step(metric=m)
        assert opt.param_groups[0]["lr"] == ref.param_groups[0]["lr"], f"after metric {i}"


def test_reduce_on_plateau_differential_sees_reductions() -> None:
    """The randomized test above is not vacuous: a fixed run reduces three times."""
    opt = sgd(lr=1.0)
    drv = lrkit.Scheduler(opt, lr=S.reduce_on_plateau(1.0, factor=0.5, patience=0))
    ref = sgd(lr=1.0)
    theirs = L.ReduceLROnPlateau(ref, factor=0.5, patience=0)
    for m in [3.0, 2.0, 2.0, 2.0, 1.0, 1.0]:
        drv.step(metric=m)
        theirs.step(m)
    assert opt.param_groups[0]["lr"] == ref.param_groups[0]["lr"] == 0.125


def test_no_warnings_from_either_side() -> None:
    """run_torch calls opt.step() before sched.step(), so PyTorch has nothing to warn about, and
    lrkit.Scheduler warns about nothing either."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt = sgd()
        run_torch(opt, L.StepLR(opt, step_size=2), 5)
        opt = sgd()
        run_torch(opt, lrkit.Scheduler(opt, lr=S.cosine(0.1, 10)), 5)
