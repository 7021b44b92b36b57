"""lrkit.Scheduler: what it writes into the param groups, what it leaves alone, exact resume."""

from __future__ import annotations

import copy
import io
import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as L

import lrkit
from lrkit import schedules as S
from strategies import (
    cyclic_momenta,
    half_sine,
    maybe,
    momenta,
    schedules,
    stateful_schedules,
    values,
)


def param() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.zeros(2))


def snapshot(opt: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Every param-group value except the parameters themselves."""
    return [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]


def save_load(obj: Any) -> Any:
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# -- basics -------------------------------------------------------------------------------------


def test_is_a_torch_lr_scheduler() -> None:
    opt = torch.optim.SGD([param()], lr=0.5)
    s = S.linear(1.0, 0.0, 4)
    drv = lrkit.Scheduler(opt, lr=s)
    assert isinstance(drv, L.LRScheduler)
    assert drv.current_step == 0
    assert drv.get_last_lr() == [1.0]
    assert drv.get_lr() == [1.0]
    seen = []
    for _ in range(6):
        opt.step()
        drv.step()
        seen.append(drv.get_last_lr()[0])
    assert seen == [0.75, 0.5, 0.25, 0.0, 0.0, 0.0]
    assert drv.current_step == 6
    assert drv.values() == {"lr": [0.0]}
    assert drv.schedules == {"lr": [s]}
    assert repr(drv) == f"Scheduler(SGD, lr={s!r}, step=6)"


OPTIMIZERS = {
    "SGD": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4),
    "RMSprop": lambda ps: torch.optim.RMSprop(ps, lr=0.1, momentum=0.5),
    "Adam": lambda ps: torch.optim.Adam(ps, lr=0.1, betas=(0.9, 0.98)),
    "AdamW": lambda ps: torch.optim.AdamW(ps, lr=0.1, betas=(0.9, 0.98)),
    "Adamax": lambda ps: torch.optim.Adamax(ps, lr=0.1, betas=(0.9, 0.98)),
    "NAdam": lambda ps: torch.optim.NAdam(ps, lr=0.1, betas=(0.9, 0.98)),
    "RAdam": lambda ps: torch.optim.RAdam(ps, lr=0.1, betas=(0.9, 0.98)),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_construction_writes_step_zero_and_nothing_else(name: str) -> None:
    opt = OPTIMIZERS[name]([param()])
    before = snapshot(opt)
    step_func = opt.step.__func__  # type: ignore[attr-defined]
    lr, mom, wd = S.cosine(0.3, 10), S.linear(0.95, 0.85, 10), S.constant(0.003)
    lrkit.Scheduler(opt, lr=lr, momentum=mom, weight_decay=wd)
    after = snapshot(opt)
    assert after[0].keys() == before[0].keys()  # no 'initial_lr' or other keys
    assert "initial_lr" not in opt.param_groups[0]
    assert opt.step.__func__ is step_func  # type: ignore[attr-defined]
    assert not hasattr(opt.step, "_wrapped_by_lr_sched")
    assert "step" not in vars(opt)
    assert len(opt.state) == 0
    key = "betas" if "betas" in before[0] else "momentum"
    changed = {k for k in before[0] if before[0][k] != after[0][k]}
    assert changed == {"lr", key, "weight_decay"}
    assert after[0]["lr"] == 0.3
    assert after[0]["weight_decay"] == 0.003
    if key == "betas":
        assert after[0]["betas"] == (0.95, 0.98)
    else:
        assert after[0]["momentum"] == 0.95


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_momentum_goes_to_momentum_or_beta1(name: str) -> None:
    opt = OPTIMIZERS[name]([param()])
    mom = S.linear(0.95, 0.85, 10)
    drv = lrkit.Scheduler(opt, lr=S.constant(0.1), momentum=mom)
    for _ in range(5):
        opt.step()
        drv.step()
    group = opt.param_groups[0]
    if "betas" in group:
        assert group["betas"] == (mom(5), 0.98)
        assert "momentum" not in group
    else:
        assert group["momentum"] == mom(5)
    assert drv.values()["momentum"] == [mom(5)]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda ps: torch.optim.Adagrad(ps), "Adagrad has neither momentum nor betas"),
        (lambda ps: torch.optim.Adadelta(ps), "Adadelta has neither momentum nor betas"),
        (lambda ps: torch.optim.SGD(ps, lr=0.1), "built with momentum=0"),
        (lambda ps: torch.optim.RMSprop(ps, lr=0.1), "built with momentum=0"),
    ],
)
def test_momentum_schedule_is_refused_without_momentum(make: Any, match: str) -> None:
    opt = make([param()])
    before = snapshot(opt)
    with pytest.raises(ValueError, match=match):
        lrkit.Scheduler(opt, lr=S.constant(0.5), momentum=S.constant(0.9))
    with pytest.raises(ValueError, match=r"momentum=None"):
        lrkit.Scheduler(opt, lr=S.one_cycle(0.5, 100))
    assert snapshot(opt) == before  # nothing written, momentum not switched on
    drv = lrkit.Scheduler(opt, lr=S.one_cycle(0.5, 100, momentum=None))
    assert drv.get_last_lr() == [pytest.approx(0.02)]


def test_param_groups_keep_their_ratios() -> None:
    ps = [param(), param(), param()]
    opt = torch.optim.AdamW(
        [
            {"params": [ps[0]], "lr": 0.1, "weight_decay": 0.0},
            {"params": [ps[1]], "lr": 0.05, "weight_decay": 0.01},
            {"params": [ps[2]], "lr": 0.01, "weight_decay": 0.02},
        ]
    )
    lr = S.warmup(S.cosine(1.0, 20), 5)
    wd = S.linear(0.1, 0.2, 25)
    drv = lrkit.Scheduler(opt, lr=lr, weight_decay=wd)
    for t in range(30):
        lrs = [g["lr"] for g in opt.param_groups]
        assert lrs == [lr(t) * (v / 0.1) for v in (0.1, 0.05, 0.01)]
        wds = [g["weight_decay"] for g in opt.param_groups]
        assert wds[0] == 0.0  # a group without weight decay keeps none
        assert wds[1:] == [wd(t) * (v / 0.02) for v in (0.01, 0.02)]
        opt.step()
        drv.step()
    assert lrs[0] == pytest.approx(2 * lrs[1]) and lrs[0] == pytest.approx(10 * lrs[2])


def test_one_schedule_per_group() -> None:
    opt = torch.optim.SGD(
        [{"params": [param()], "lr": 0.1}, {"params": [param()], "lr": 0.01}], momentum=0.9
    )
    a, b = S.cosine(1.0, 10), S.constant(0.5)
    drv = lrkit.Scheduler(opt, lr=[a, b], momentum=[S.constant(0.9), S.constant(0.8)])
    for t in range(12):
        assert [g["lr"] for g in opt.param_groups] == [a(t), b(t)]
        assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.8]
        opt.step()
        drv.step()
    with pytest.raises(ValueError, match="lr has 1 schedules but the optimizer has 2 param groups"):
        lrkit.Scheduler(opt, lr=[a])
    with pytest.raises(ValueError, match="momentum has 3 schedules"):
        lrkit.Scheduler(opt, lr=a, momentum=[b, b, b])
    with pytest.raises(TypeError, match=r"lr\[1\] must be an lrkit schedule"):
        lrkit.Scheduler(opt, lr=[a, 0.1])


def test_hyper_from_one_cycle_carries_momentum() -> None:
    h = S.one_cycle(1.0, 20, pct_start=0.25)
    assert h.momentum is not None
    opt = torch.optim.SGD([param()], lr=0.1, momentum=0.9)
    drv = lrkit.Scheduler(opt, lr=h)
    for t in range(25):
        assert opt.param_groups[0]["lr"] == h.lr(t)
        assert opt.param_groups[0]["momentum"] == h.momentum(t)
        opt.step()
        drv.step()
    with pytest.raises(ValueError, match="momentum is given twice"):
        lrkit.Scheduler(opt, lr=h, momentum=S.constant(0.9))
    with pytest.raises(TypeError, match="a Hyper"):
        lrkit.Scheduler(opt, lr=S.constant(0.1), momentum=h)  # type: ignore[arg-type]
    bare = S.one_cycle(1.0, 20, momentum=None)
    drv = lrkit.Scheduler(opt, lr=bare, momentum=S.constant(0.7))
    assert opt.param_groups[0]["momentum"] == 0.7
    assert drv.schedules["lr"] == [bare.lr]


def test_tensor_learning_rate_is_updated_in_place() -> None:
    lr = torch.tensor(0.01)
    opt = torch.optim.Adam([param()], lr=lr, betas=(torch.tensor(0.9), torch.tensor(0.99)))
    group_lr = opt.param_groups[0]["lr"]
    beta1 = opt.param_groups[0]["betas"][0]
    s = S.linear(0.1, 0.0, 4)
    m = S.linear(0.9, 0.8, 4)
    drv = lrkit.Scheduler(opt, lr=s, momentum=m)
    for t in range(6):
        assert opt.param_groups[0]["lr"] is group_lr
        assert opt.param_groups[0]["betas"][0] is beta1
        assert group_lr.item() == pytest.approx(s(t))
        assert beta1.item() == pytest.approx(m(t))
        opt.step()
        drv.step()


def test_observe_and_step_metric_reduce_at_once() -> None:
    opt = torch.optim.SGD([param()], lr=1.0)
    drv = lrkit.Scheduler(opt, lr=S.reduce_on_plateau(1.0, factor=0.5, patience=0))
    drv.observe(1.0)
    drv.observe(2.0)  # worse: reduced at the current step
    assert opt.param_groups[0]["lr"] == 0.5
    opt.step()
    drv.step(metric=3.0)
    assert opt.param_groups[0]["lr"] == 0.25
    assert drv.current_step == 1


def test_sequence_warmup_then_plateau_ignores_warmup_metrics() -> None:
    """The pytorch#68978 scenario: SequentialLR cannot put ReduceLROnPlateau after a warmup."""
    warm = S.linear(0.02, 0.1, 5)
    sched = S.sequence(warm, S.reduce_on_plateau(0.1, factor=0.5, patience=1))
    opt = torch.optim.SGD([param()], lr=0.1)
    drv = lrkit.Scheduler(opt, lr=sched)
    lrs = [opt.param_groups[0]["lr"]]
    for t in range(1, 12):
        opt.step()
        drv.step(metric=float(t))  # the loss gets worse at every step
        lrs.append(opt.param_groups[0]["lr"])
    # steps 1-4: warmup, metrics ignored; 5: best; 6: bad 1; 7: bad 2 > patience -> 0.05; 8: bad 1;
    # 9: -> 0.025; 11: -> 0.0125
    expected = [warm(t) for t in range(5)] + [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125]
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert lrs[:5] == [warm(t) for t in range(5)]
    # the same with warmup(...)
    opt2 = torch.optim.SGD([param()], lr=0.1)
    drv2 = lrkit.Scheduler(opt2, lr=S.warmup(S.reduce_on_plateau(0.1, 0.5, 1), 5, start=0.02))
    lrs2 = [opt2.param_groups[0]["lr"]]
    for t in range(1, 12):
        opt2.step()
        drv2.step(metric=float(t))
        lrs2.append(opt2.param_groups[0]["lr"])
    assert lrs2 == pytest.approx(expected, rel=1e-12)


def test_step_with_epoch_is_refused() -> None:
    opt = torch.optim.SGD([param()], lr=0.1)
    drv = lrkit.Scheduler(opt, lr=S.constant(0.1))
    with pytest.raises(TypeError, match=r"takes no epoch.*per_epoch"):
        drv.step(epoch=3)  # type: ignore[arg-type]
    assert drv.current_step == 0


def test_holds_final_values_past_the_end() -> None:
    opt = torch.optim.SGD([param()], lr=0.1, momentum=0.9)
    h = S.one_cycle(0.5, 10)
    drv = lrkit.Scheduler(opt, lr=h)
    for _ in range(50):
        opt.step()
        drv.step()
    assert h.momentum is not None
    assert opt.param_groups[0]["lr"] == h.lr(9)
    assert opt.param_groups[0]["momentum"] == h.momentum(9)


def test_values_far_ahead_match_the_schedule() -> None:
    """The driver evaluates schedules in blocks; values across block edges are the schedule's."""
    s = S.triangular2(0.1, 1.0, 300, 500)
    opt = torch.optim.SGD([param()], lr=0.1)
    drv = lrkit.Scheduler(opt, lr=s)
    got = []
    for _ in range(2500):
        got.append(opt.param_groups[0]["lr"])
        drv.step()
    np.testing.assert_array_equal(got, s(np.arange(2500)))


# -- resume -------------------------------------------------------------------------------------

MOMENTUM_OPTS = {
    "SGD": lambda gs: torch.optim.SGD(gs, lr=0.1, momentum=0.9),
    "RMSprop": lambda gs: torch.optim.RMSprop(gs, lr=0.1, momentum=0.9),
    "Adam": lambda gs: torch.optim.Adam(gs, lr=0.1),
    "AdamW": lambda gs: torch.optim.AdamW(gs, lr=0.1),
    "NAdam": lambda gs: torch.optim.NAdam(gs, lr=0.1),
}


@st.composite
def drives(draw: st.DrawFn) -> dict[str, Any]:
    """An optimizer recipe, schedules for it, a run length split in two, and metrics."""
    n_groups = draw(st.integers(1, 3))
    stateful = draw(st.booleans())
    main = draw(stateful_schedules() if stateful else schedules(callables=True, max_leaves=3))
    lr: Any = main
    if n_groups > 1 and draw(st.booleans()):
        lr = [
            main,
            *draw(st.lists(schedules(max_leaves=2), min_size=n_groups - 1, max_size=n_groups - 1)),
        ]
    n, m = draw(st.integers(0, 40)), draw(st.integers(1, 40))
    return {
        "optimizer": draw(st.sampled_from(sorted(MOMENTUM_OPTS))),
        "group_lrs": draw(st.lists(values, min_size=n_groups, max_size=n_groups)),
        "group_wds": draw(
            st.lists(st.sampled_from((0.0, 1e-4, 5e-4)), min_size=n_groups, max_size=n_groups)
        ),
        "schedules": {
            "lr": lr,
            "momentum": draw(maybe(cyclic_momenta() | st.builds(S.constant, momenta))),
            "weight_decay": draw(maybe(schedules(max_leaves=2))),
        },
        "n": n,
        "m": m,
        "metrics": draw(
            st.lists(maybe(st.integers(0, 4).map(float)), min_size=n + m, max_size=n + m)
        ),
        "optimizer_state": draw(st.sampled_from(("none", "before", "after"))),
    }


def build(recipe: dict[str, Any]) -> tuple[torch.optim.Optimizer, Any]:
    """A fresh optimizer, and fresh copies of the recipe's schedules (their own metric state)."""
    groups = [
        {"params": [param()], "lr": lr, "weight_decay": wd}
        for lr, wd in zip(recipe["group_lrs"], recipe["group_wds"], strict=True)
    ]
    return MOMENTUM_OPTS[recipe["optimizer"]](groups), copy.deepcopy(recipe["schedules"])


def run(opt: torch.optim.Optimizer, drv: lrkit.Scheduler, metrics: list[float | None]) -> list[Any]:
    trace = []
    for metric in metrics:
        opt.step()
        drv.step()
        if metric is not None:
            drv.observe(metric)
        trace.append(snapshot(opt))
    return trace


@settings(max_examples=80, deadline=None)
@given(drives())
def test_resume_continues_exactly(recipe: dict[str, Any]) -> None:
    n, metrics = recipe["n"], recipe["metrics"]
    opt, scheds = build(recipe)
    whole = lrkit.Scheduler(opt, **scheds)
    expected = [snapshot(opt), *run(opt, whole, metrics)]

    opt1, scheds1 = build(recipe)
    first = lrkit.Scheduler(opt1, **scheds1)
    assert [snapshot(opt1), *run(opt1, first, metrics[:n])] == expected[: n + 1]
    state = save_load(first.state_dict())
    opt_state = save_load(opt1.state_dict())

    opt2, scheds2 = build(recipe)
    if recipe["optimizer_state"] == "before":
        opt2.load_state_dict(opt_state)
    second = lrkit.Scheduler(opt2, **scheds2)
    if recipe["optimizer_state"] == "after":
        opt2.load_state_dict(opt_state)
    second.load_state_dict(state)
    assert second.current_step == n
    assert snapshot(opt2) == expected[n]
    assert run(opt2, second, metrics[n:]) == expected[n + 1 :]
    assert second.state_dict() == whole.state_dict()


def test_resume_with_plateau_after_warmup_is_exact() -> None:
    """A fixed case of the property above that is sure to reduce before and after the split."""
    recipe = {
        "optimizer": "SGD",
        "group_lrs": [0.1, 0.05],
        "group_wds": [0.0, 1e-4],
        "schedules": {
            "lr": S.sequence(S.linear(0.0, 0.1, 5), S.reduce_on_plateau(0.1, 0.5, patience=1)),
            "momentum": S.cyclic_momentum(0.95, 0.85, 3),
            "weight_decay": None,
        },
        "n": 12,
        "metrics": [5.0] * 30,
    }
    opt, scheds = build(recipe)
    whole = lrkit.Scheduler(opt, **scheds)
    expected = run(opt, whole, recipe["metrics"])
    lrs = [t[0]["lr"] for t in expected]
    assert len(set(lrs[4:12])) >= 3 and len(set(lrs[12:])) >= 3  # reductions on both sides
    opt1, scheds1 = build(recipe)
    first = lrkit.Scheduler(opt1, **scheds1)
    run(opt1, first, recipe["metrics"][:12])
    state = save_load(first.state_dict())
    assert state["stateful"][0]["reductions"]
    opt2, scheds2 = build(recipe)
    second = lrkit.Scheduler(opt2, **scheds2)
    second.load_state_dict(state)
    assert run(opt2, second, recipe["metrics"][12:]) == expected[12:]


def test_resume_keeps_group_ratios_when_the_schedule_is_zero() -> None:
    """Loading the optimizer first leaves every group at lr 0 here, so the ratios must come from
    the checkpoint, not from the param groups."""
    s = S.sequence(S.linear(1.0, 0.0, 5), S.linear(0.0, 1.0, 5))
    groups = [{"params": [param()], "lr": 0.1}, {"params": [param()], "lr": 0.01}]
    opt = torch.optim.SGD(groups)
    drv = lrkit.Scheduler(opt, lr=s)
    for _ in range(5):
        drv.step()
    assert [g["lr"] for g in opt.param_groups] == [0.0, 0.0]
    state, opt_state = save_load(drv.state_dict()), save_load(opt.state_dict())
    opt2 = torch.optim.SGD([{"params": [param()], "lr": 0.1}, {"params": [param()], "lr": 0.01}])
    opt2.load_state_dict(opt_state)
    drv2 = lrkit.Scheduler(opt2, lr=s)
    drv2.load_state_dict(state)
    for _ in range(3):
        drv.step()
        drv2.step()
    assert snapshot(opt2) == snapshot(opt)
    assert opt2.param_groups[1]["lr"] == s(8) * (0.01 / 0.1)


def test_resume_when_the_momentum_schedule_reached_zero() -> None:
    """The optimizer's checkpoint holds momentum 0; it was built with 0.9, so that is no reason to
    refuse a momentum schedule."""
    mom = S.linear(0.9, 0.0, 5)
    opt = torch.optim.SGD([param()], lr=0.1, momentum=0.9)
    drv = lrkit.Scheduler(opt, lr=S.constant(0.1), momentum=mom)
    for _ in range(5):
        drv.step()
    assert opt.param_groups[0]["momentum"] == 0.0
    state, opt_state = save_load(drv.state_dict()), save_load(opt.state_dict())
    opt2 = torch.optim.SGD([param()], lr=0.1, momentum=0.9)
    opt2.load_state_dict(opt_state)
    drv2 = lrkit.Scheduler(opt2, lr=S.constant(0.1), momentum=mom)
    drv2.load_state_dict(state)
    drv2.step()
    assert opt2.param_groups[0]["momentum"] == 0.0
    assert drv2.current_step == 6


def test_load_state_dict_refuses_other_schedules() -> None:
    opt = torch.optim.SGD([param()], lr=0.1)
    drv = lrkit.Scheduler(opt, lr=S.cosine(0.1, 100))
    for _ in range(7):
        drv.step()
    state = save_load(drv.state_dict())
    other = S.cosine(0.2, 100)
    opt2 = torch.optim.SGD([param()], lr=0.1)
    fresh = lrkit.Scheduler(opt2, lr=other)
    with pytest.raises(
        ValueError, match=r"(?s)other schedules.*'start': 0.1.*'start': 0.2.*strict=False"
    ):
        fresh.load_state_dict(state)
    assert fresh.current_step == 0
    assert opt2.param_groups[0]["lr"] == 0.2
    fresh.load_state_dict(state, strict=False)
    assert fresh.current_step == 7
    assert opt2.param_groups[0]["lr"] == other(7)
    with pytest.raises(ValueError, match="expected the dict returned by"):
        fresh.load_state_dict({"schedules": {}})
    with pytest.raises(ValueError, match="other schedules"):
        lrkit.Scheduler(
            opt2, lr=S.cosine(0.1, 100), momentum=None, weight_decay=S.constant(0.0)
        ).load_state_dict(state)


def test_load_state_dict_refuses_missing_metric_state() -> None:
    opt = torch.optim.SGD([param()], lr=0.1)
    drv = lrkit.Scheduler(opt, lr=S.reduce_on_plateau(0.1))
    state = drv.state_dict()
    state["stateful"] = []
    with pytest.raises(ValueError, match="holds 0 metric-driven schedule states but this"):
        lrkit.Scheduler(
            torch.optim.SGD([param()], lr=0.1), lr=S.reduce_on_plateau(0.1)
        ).load_state_dict(state)


def test_custom_schedule_in_state_dict() -> None:
    s = S.sequence((S.custom(half_sine), 5), S.cosine(0.5, 10))
    with pytest.raises(TypeError, match="cannot be written to a dict or JSON"):
        s.to_dict()
    opt = torch.optim.SGD([param()], lr=0.1)
    drv = lrkit.Scheduler(opt, lr=s)
    for _ in range(3):
        drv.step()
    state = save_load(drv.state_dict())
    (described,) = state["schedules"]["lr"]
    assert described == {"type": "unserialisable", "repr": repr(s)}
    assert "half_sine" in described["repr"]
    opt2 = torch.optim.SGD([param()], lr=0.1)
    again = lrkit.Scheduler(opt2, lr=S.sequence((S.custom(half_sine), 5), S.cosine(0.5, 10)))
    again.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == s(3) == half_sine(3)


# -- mixed precision ----------------------------------------------------------------------------


def _scaled_step(
    opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, p: torch.Tensor, bad: bool
) -> None:
    opt.zero_grad()
    scaler.scale((p * 2.0).sum()).backward()
    if bad:
        assert p.grad is not None
        p.grad.fill_(math.inf)
    scaler.step(opt)
    scaler.update()


def test_scaler_skipped_step_does_not_advance() -> None:
    p = param()
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    assert scaler.is_enabled()
    s = S.linear(1.0, 0.0, 10)
    drv = lrkit.Scheduler(opt, lr=s, scaler=scaler)
    _scaled_step(opt, scaler, p, bad=True)
    drv.step()
    assert drv.current_step == 0  # the scaler skipped optimizer.step()
    assert opt.param_groups[0]["lr"] == 1.0
    assert torch.equal(p.detach(), torch.zeros(2))
    _scaled_step(opt, scaler, p, bad=False)
    drv.step()
    assert drv.current_step == 1
    assert opt.param_groups[0]["lr"] == s(1)
    assert not torch.equal(p.detach(), torch.zeros(2))
    # gradient accumulation: extra calls without an optimizer update do not advance either
    drv.step()
    drv.step()
    assert drv.current_step == 1
    # without a scaler the driver cannot tell: every call advances
    opt2 = torch.optim.SGD([param()], lr=0.1)
    plain = lrkit.Scheduler(opt2, lr=s)
    plain.step()
    assert plain.current_step == 1


def test_scaler_state_resumes() -> None:
    p = param()
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    drv = lrkit.Scheduler(opt, lr=S.linear(1.0, 0.0, 10), scaler=scaler)
    for bad in (False, True, False):
        _scaled_step(opt, scaler, p, bad)
        drv.step()
    assert drv.current_step == 2
    state = save_load(drv.state_dict())
    p2 = param()
    opt2 = torch.optim.SGD([p2], lr=0.1)
    scaler2 = torch.amp.GradScaler("cpu")
    scaler2.load_state_dict(scaler.state_dict())
    drv2 = lrkit.Scheduler(opt2, lr=S.linear(1.0, 0.0, 10), scaler=scaler2)
    drv2.load_state_dict(state)
    assert drv2.current_step == 2
    drv2.step()  # no optimizer update since the load
    assert drv2.current_step == 2
    _scaled_step(opt2, scaler2, p2, bad=False)
    drv2.step()
    assert drv2.current_step == 3
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.7)


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "give at least one schedule"),
        ({"lr": 0.1}, TypeError, r"lr= takes an lrkit schedule.*constant\(0.1\)"),
        ({"lr": "cosine"}, TypeError, "lr= takes an lrkit schedule"),
        ({"lr": S.constant(0.1), "momentum": 0.9}, TypeError, "momentum= takes an lrkit"),
        ({"lr": lambda t: 0.1}, TypeError, "lr= takes an lrkit schedule"),
        ({"lr": [S.constant(0.1), S.constant(0.2)]}, ValueError, "2 schedules but the optimizer"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], error: type, match: str) -> None:
    opt = torch.optim.SGD([param()], lr=0.1, momentum=0.9)
    with pytest.raises(error, match=match):
        lrkit.Scheduler(opt, **kwargs)


def test_optimizer_must_be_an_optimizer() -> None:
    with pytest.raises(TypeError, match=r"optimizer must be a torch.optim.Optimizer, got list"):
        lrkit.Scheduler([param()], lr=S.constant(0.1))  # type: ignore[arg-type]
