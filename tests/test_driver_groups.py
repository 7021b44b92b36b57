"""The driver writes into the optimizer's param groups as they are at each step: after
``optimizer.load_state_dict`` (which replaces every group dict), after ``add_param_group``, and
across save/load of both objects in any order."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lrkit
from lrkit import schedules as S

TOTAL = 60


def test_optimizer_load_state_dict_after_construction_keeps_scheduling() -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    cycle = S.one_cycle(1.0, 100)
    drv = lrkit.Scheduler(opt, lr=cycle)
    opt.load_state_dict(opt.state_dict())  # the usual resume order; accelerate does it too
    for _ in range(30):
        opt.step()
        drv.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(cycle.lr(30), rel=1e-12)
    assert opt.param_groups[0]["momentum"] == pytest.approx(cycle.momentum(30), rel=1e-12)
    assert drv.get_last_lr() == [opt.param_groups[0]["lr"]]


def test_replaced_group_dict_is_written() -> None:
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    drv = lrkit.Scheduler(opt, lr=S.linear(0.1, 0.0, 10), momentum=S.constant(0.8))
    opt.param_groups[0] = dict(opt.param_groups[0])
    opt.step()
    drv.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.09)
    assert opt.param_groups[0]["betas"][0] == pytest.approx(0.8)


def test_group_added_later_is_scheduled_with_its_ratio() -> None:
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(3)]
    opt = torch.optim.SGD(
        [{"params": [params[0]], "lr": 0.2}, {"params": [params[1]], "lr": 0.1}],
        lr=0.2,
        momentum=0.9,
    )
    cycle = S.one_cycle(1.0, 50)
    drv = lrkit.Scheduler(opt, lr=cycle)
    for _ in range(5):
        opt.step()
        drv.step()
    opt.add_param_group({"params": [params[2]], "lr": 0.05, "momentum": 0.45})
    opt.step()
    drv.step()
    lrs = [g["lr"] for g in opt.param_groups]
    assert lrs == pytest.approx([cycle.lr(6), cycle.lr(6) / 2, cycle.lr(6) / 4], rel=1e-12)
    moms = [g["momentum"] for g in opt.param_groups]
    assert moms == pytest.approx([cycle.momentum(6)] * 2 + [cycle.momentum(6) / 2], rel=1e-12)
    assert drv.base_lrs == [0.2, 0.1, 0.05]


def test_group_added_later_without_its_own_schedule_is_an_error() -> None:
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(2)]
    opt = torch.optim.SGD([params[0]], lr=0.1)
    drv = lrkit.Scheduler(opt, lr=[S.constant(0.1)])
    opt.add_param_group({"params": [params[1]]})
    opt.step()
    with pytest.raises(ValueError, match=r"param group 1 was added .* one lr schedule per group"):
        drv.step()


def test_fewer_groups_than_scheduled_is_an_error() -> None:
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(2)]
    opt = torch.optim.SGD([{"params": [p]} for p in params], lr=0.1)
    drv = lrkit.Scheduler(opt, lr=S.constant(0.1))
    del opt.param_groups[1]
    with pytest.raises(ValueError, match="now has 1 param groups, fewer than the 2"):
        drv.step()


# -- property: any interleaving of the operations a training script performs ------------------

BASE_LRS = (0.3, 0.1, 0.05, 0.2)
CYCLE = S.one_cycle(0.9, TOTAL)


def _params() -> list[torch.nn.Parameter]:
    torch.manual_seed(0)
    return [torch.nn.Parameter(torch.randn(3)) for _ in BASE_LRS]


def _build(params: list[torch.nn.Parameter], groups: int, adam: bool) -> torch.optim.Optimizer:
    spec = [{"params": [params[g]], "lr": BASE_LRS[g]} for g in range(groups)]
    if adam:
        return torch.optim.Adam(spec, lr=0.3, betas=(0.9, 0.99))
    return torch.optim.SGD(spec, lr=0.3, momentum=0.9)


def _roundtrip(obj: dict[str, Any]) -> dict[str, Any]:
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    loaded: dict[str, Any] = torch.load(buf, weights_only=True)
    return loaded


def _check(opt: torch.optim.Optimizer, step: int, adam: bool, pending: set[int]) -> None:
    top = BASE_LRS[0]
    for g, group in enumerate(opt.param_groups):
        mom = group["betas"][0] if adam else group["momentum"]
        if g in pending:  # added since the last step: it holds its own values until then
            assert group["lr"] == BASE_LRS[g]
            assert mom == 0.9
            continue
        assert group["lr"] == pytest.approx(CYCLE.lr(step) * BASE_LRS[g] / top, rel=1e-12)
        assert mom == pytest.approx(CYCLE.momentum(step), rel=1e-12)


OPS = st.lists(
    st.sampled_from(["step", "load_opt", "add_group", "save", "restore_same", "restore_fresh"]),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ops=OPS, adam=st.booleans(), groups=st.integers(1, 2))
def test_values_follow_the_schedule_through_any_interleaving(
    ops: list[str], adam: bool, groups: int
) -> None:
    params = _params()
    opt = _build(params, groups, adam)
    drv = lrkit.Scheduler(opt, lr=CYCLE)
    step = 0
    pending: set[int] = set()
    saved: tuple[dict[str, Any], dict[str, Any], int, set[int]] | None = None
    for op in ops:
        if op == "step":
            params[0].grad = torch.ones(3)
            opt.step()
            drv.step()
            step += 1
            pending = set()
        elif op == "load_opt":
            opt.load_state_dict(_roundtrip(opt.state_dict()))
        elif op == "add_group" and len(opt.param_groups) < len(BASE_LRS):
            g = len(opt.param_groups)
            opt.add_param_group({"params": [params[g]], "lr": BASE_LRS[g]})
            pending.add(g)
        elif op == "save":
            saved = (_roundtrip(opt.state_dict()), _roundtrip(drv.state_dict()), step, pending)
        elif op == "restore_same" and saved is not None:
            if len(saved[0]["param_groups"]) != len(opt.param_groups):
                continue  # torch refuses a checkpoint with another number of groups
            opt_state, drv_state, step, pending = saved
            drv.load_state_dict(drv_state)
            opt.load_state_dict(opt_state)
        elif op == "restore_fresh" and saved is not None:
            # A new process: build everything as the script does, then load both checkpoints.
            opt_state, drv_state, step, _ = saved
            opt = _build(params, len(opt_state["param_groups"]), adam)
            drv = lrkit.Scheduler(opt, lr=CYCLE)
            opt.load_state_dict(opt_state)
            drv.load_state_dict(drv_state)
            pending = set()
        assert drv.current_step == step
        _check(opt, step, adam, pending)
    params[0].grad = torch.ones(3)
    opt.step()
    drv.step()
    _check(opt, step + 1, adam, set())


@pytest.mark.parametrize(
    ("schedule", "bad_step", "shown"),
    [
        (S.custom(lambda t: 0.1 if t < 1500 else float("nan")), 1500, "nan"),
        (S.custom(lambda t: float("inf")), 0, "inf"),
    ],
)
def test_a_value_that_cannot_be_a_learning_rate_raises_before_it_is_written(
    schedule: S.Schedule, bad_step: int, shown: str
) -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    message = rf"the lr schedule .* gives {shown}.* at step {bad_step}; lr must be finite and >= 0"
    if bad_step == 0:
        with pytest.raises(ValueError, match=message):
            lrkit.Scheduler(opt, lr=schedule)
        assert opt.param_groups[0]["lr"] == 0.1
        return
    drv = lrkit.Scheduler(opt, lr=schedule)
    for _ in range(bad_step - 1):
        drv.step()
    good = opt.param_groups[0]["lr"]
    with pytest.raises(ValueError, match=message):
        drv.step()
    assert drv.current_step == bad_step - 1
    assert opt.param_groups[0]["lr"] == good == schedule(bad_step - 1)


def test_a_negative_momentum_raises() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"the momentum schedule .* gives -0.5 at step 0"):
        lrkit.Scheduler(opt, lr=S.constant(0.1), momentum=S.custom(lambda t: -0.5))


def test_a_bad_momentum_at_construction_leaves_the_learning_rate_alone() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="momentum schedule"):
        lrkit.Scheduler(opt, lr=S.constant(0.5), momentum=S.custom(lambda t: float("nan")))
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0.9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": S.linear(0.1, -0.1, 10)}, r"the lr schedule linear.* gives -0.0199\d* at step 6;"),
        (  # the bad value is past the first block of steps the driver evaluates as it runs
            {"lr": S.sequence(S.constant(0.1, steps=3000), S.linear(0.1, -0.1, 10))},
            r"the lr schedule sequence.* gives -0.0199\d* at step 3006; lr must be finite",
        ),
        (  # 1.0 at the end (step 10), held after it
            {"lr": S.constant(0.1), "momentum": S.linear(0.9, 1.0, 10)},
            r"the momentum schedule linear.* gives 1.0 at step 10; momentum must be finite and "
            r"in \[0, 1\)",
        ),
        (
            {"weight_decay": S.linear(0.1, -0.1, 2000)},
            r"the weight_decay schedule .* gives -9.99\d*e-05 at step 1001; weight_decay must",
        ),
    ],
)
def test_a_schedule_of_known_length_is_checked_over_every_step_when_the_driver_is_built(
    kwargs: dict[str, Any], message: str
) -> None:
    opt = torch.optim.SGD(
        [torch.nn.Parameter(torch.zeros(2))], lr=0.5, momentum=0.9, weight_decay=0.01
    )
    with pytest.raises(ValueError, match=message):
        lrkit.Scheduler(opt, **kwargs)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.5, 0.9, 0.01)


def test_a_schedule_without_an_end_is_checked_as_it_runs() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    drv = lrkit.Scheduler(opt, lr=S.custom(lambda t: 0.2 if t < 3 else -0.1))
    drv.step()
    drv.step()
    with pytest.raises(ValueError, match=r"gives -0\.1 at step 3"):
        drv.step()
    assert drv.current_step == 2 and opt.param_groups[0]["lr"] == 0.2
