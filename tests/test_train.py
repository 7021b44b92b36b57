"""The training loop: history contents, schedules, divergence, stopping rules, exact resume."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrkit
from lrkit import schedules as S
from lrkit.engine import save_atomic
from lrkit.tasks import get_task
from lrkit.train import (
    OPTIMIZERS,
    TIMING_FIELDS,
    History,
    checkpoint_path,
    fit,
    load_checkpoint,
)

SRC = Path(__file__).resolve().parents[1] / "src"


pytestmark = pytest.mark.usefixtures("one_thread")


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"tensor {k} differs"


def _wine_model(seed: int = 0) -> nn.Module:
    return get_task("wine-mlp").make_model(seed)


# -- history ----------------------------------------------------------------------------------


def test_history_records_schedule_values_per_step() -> None:
    sched = S.triangular(0.01, 0.2, 5)
    h = fit("wine-mlp", optimizer="sgd", lr=sched, steps=23, eval_every=10)
    assert h.steps == len(h.lr) == len(h.momentum) == len(h.loss) == 23
    assert h.lr == pytest.approx([sched(i) for i in range(23)], rel=1e-12)
    assert h.lr[:6] == pytest.approx([0.01, 0.048, 0.086, 0.124, 0.162, 0.2])
    assert h.momentum == [0.9] * 23
    assert h.eval_step == [10, 20, 23]
    assert h.evaluations == list(zip(h.eval_step, h.val_loss, h.metric, strict=True))
    assert len(h.val_loss) == len(h.metric) == len(h.eval_seconds) == 3
    assert h.final_metric == h.metric[-1]
    assert h.metric_name == "accuracy" and h.task == "wine-mlp" and h.optimizer == "sgd"
    assert h.total_steps == 23 and not h.diverged
    assert h.stop_reason == "completed 23 steps"
    assert all(math.isfinite(v) for v in h.loss)
    assert h.seconds > 0 and h.wall_seconds >= h.seconds
    assert h.eval_seconds == sorted(h.eval_seconds)


def test_one_cycle_schedules_momentum_too() -> None:
    hyper = S.one_cycle(0.3, 20)
    h = fit("wine-mlp", optimizer="sgd", lr=hyper, steps=20)
    assert hyper.momentum is not None
    assert h.lr == pytest.approx([hyper.lr(i) for i in range(20)], rel=1e-12)
    assert h.momentum == pytest.approx([hyper.momentum(i) for i in range(20)], rel=1e-12)
    assert h.momentum[0] == pytest.approx(0.95) and min(h.momentum) == pytest.approx(0.85)


def test_adam_momentum_is_beta1_and_adagrad_has_none() -> None:
    h = fit("wine-mlp", optimizer="adamw", lr=S.one_cycle(0.01, 12), steps=12)
    assert h.momentum[0] == pytest.approx(0.95)
    h2 = fit("wine-mlp", optimizer="adagrad", steps=5)
    assert all(math.isnan(m) for m in h2.momentum)
    assert h2.lr == pytest.approx([0.01] * 5)


def test_default_length_is_the_tasks_epochs() -> None:
    task = get_task("wine-mlp")
    h = fit(task)
    assert h.steps == task.epochs * task.steps_per_epoch() == 100
    assert h.eval_step == list(range(5, 101, 5))
    assert h.lr == [task.default_lr] * 100
    assert h.final_metric is not None and h.final_metric >= 0.9
    h2 = fit(task, epochs=2, batch_size=50)
    assert h2.steps == 6 and h2.eval_step == [3, 6]


def test_history_round_trips_through_strict_json() -> None:
    h = History(
        task="x",
        lr=[0.1, 0.2],
        momentum=[math.nan, 0.9],
        loss=[1.0, math.inf],
        eval_step=[2],
        val_loss=[-math.inf],
        metric=[0.5],
        eval_seconds=[0.25],
        target=0.4,
        steps_to_target=2,
        seconds_to_target=0.25,
        diverged=True,
        stop_reason="why",
        final_metric=0.5,
    )
    text = json.dumps(h.to_dict(), allow_nan=False)
    back = History.from_dict(json.loads(text))
    assert back.to_dict() == h.to_dict()
    assert math.isnan(back.momentum[0]) and back.loss[1] == math.inf
    assert back.val_loss == [-math.inf]
    short = h.to_dict(timing=False)
    assert not set(TIMING_FIELDS) & set(short)
    with pytest.raises(ValueError, match="unknown History fields"):
        History.from_dict({"bogus": 1})


# -- targets and stopping ---------------------------------------------------------------------


def test_steps_to_target_is_the_first_evaluation_reaching_it() -> None:
    h = fit("wine-mlp", steps=60, eval_every=5, target=0.8)
    expected = next(s for s, m in zip(h.eval_step, h.metric, strict=True) if m >= 0.8)
    assert h.steps_to_target == expected
    i = h.eval_step.index(expected)
    assert h.seconds_to_target == h.eval_seconds[i]
    assert all(m < 0.8 for m in h.metric[:i])
    never = fit("wine-mlp", steps=10, eval_every=5, target=1.5)
    assert never.steps_to_target is None and never.seconds_to_target is None
    assert never.target == 1.5


def test_task_target_is_the_default_and_stop_at_target_stops() -> None:
    task = get_task("wine-mlp")
    h = fit(task, steps=200, eval_every=5, stop_at_target=True)
    assert h.target == task.target
    assert h.steps_to_target is not None and h.steps == h.steps_to_target < 200
    assert h.stop_reason == f"reached target {task.target} at step {h.steps}"


def _scripted_metric(values: list[float]) -> Any:
    it = iter(values)

    def metric(output: torch.Tensor, target: torch.Tensor) -> float:
        return next(it)

    return metric


def test_stop_at_cycle_end_when_metric_stops_improving() -> None:
    metric = _scripted_metric([0.5, 0.6, 0.6, 0.9])
    h = fit(
        "wine-mlp",
        optimizer="sgd",
        lr=S.triangular(0.01, 0.1, 3),
        steps=100,
        eval_every=1000,
        stop_at_cycle_end=6,
        metric_fn=metric,
        metric_name="scripted",
    )
    assert h.eval_step == [6, 12, 18]
    assert h.metric == [0.5, 0.6, 0.6]
    assert h.steps == 18 and not h.diverged
    assert "step 18" in h.stop_reason and "step 12" in h.stop_reason
    assert h.metric_name == "scripted"
    # the stop lands where the triangular LR is back at its base
    assert h.lr[17] == pytest.approx(S.triangular(0.01, 0.1, 3)(17))


def test_stop_at_cycle_end_runs_to_the_end_while_improving() -> None:
    metric = _scripted_metric([0.1, 0.2, 0.3, 0.4, 0.5])
    h = fit("wine-mlp", steps=20, eval_every=1000, stop_at_cycle_end=5, metric_fn=metric)
    assert h.eval_step == [5, 10, 15, 20]
    assert h.stop_reason == "completed 20 steps"


def test_plateau_schedule_is_fed_after_each_evaluation() -> None:
    h = fit(
        "wine-mlp",
        optimizer="sgd",
        lr=S.reduce_on_plateau(0.1, factor=0.5, patience=0, mode="max"),
        steps=30,
        eval_every=10,
        observe="metric",
        metric_fn=_scripted_metric([0.5, 0.5, 0.5]),
    )
    assert h.lr[:10] == pytest.approx([0.1] * 10)
    assert h.lr[10:20] == pytest.approx([0.1] * 10)  # first report sets the best
    assert h.lr[20:] == pytest.approx([0.05] * 10)  # second report: no improvement


# -- divergence -------------------------------------------------------------------------------


def test_nan_loss_stops_cleanly_with_a_record(tmp_path: Path) -> None:
    calls = {"n": 0}
    task = get_task("wine-mlp")

    def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = task.loss_fn(output, target)
        if not torch.is_grad_enabled():  # an evaluation
            return loss
        calls["n"] += 1
        return loss * math.nan if calls["n"] == 8 else loss

    model = task.make_model(0)
    h = fit(task, model=model, loss_fn=loss_fn, steps=50, eval_every=5, checkpoint_dir=tmp_path)
    assert h.diverged
    assert h.steps == 8 and math.isnan(h.loss[-1])
    assert all(math.isfinite(v) for v in h.loss[:-1])
    assert "step 7" in h.stop_reason and "nan" in h.stop_reason
    assert h.eval_step == [5, 7]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    ckpt = load_checkpoint(checkpoint_path(tmp_path))
    assert ckpt["finished"] and ckpt["step"] == 7
    again = fit(task, loss_fn=loss_fn, steps=50, eval_every=5, checkpoint_dir=tmp_path, resume=True)
    assert again.to_dict() == h.to_dict()
    assert calls["n"] == 8


def test_huge_learning_rate_diverges_without_raising() -> None:
    h = fit("friedman-mlp", optimizer="sgd", lr=1e4, steps=200)
    assert h.diverged
    assert h.steps < 200
    assert not math.isfinite(h.loss[-1])
    assert f"at step {h.steps - 1}" in h.stop_reason


# -- optimizers -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_named_optimizer_lowers_the_loss(name: str) -> None:
    h = fit("wine-mlp", optimizer=name, epochs=6)
    assert not h.diverged
    assert np.mean(h.loss[-5:]) < np.mean(h.loss[:5])
    assert h.optimizer == name


def test_optimizer_factory_and_weight_decay_schedule() -> None:
    seen: list[torch.optim.Optimizer] = []
    decay: list[float] = []
    task = get_task("wine-mlp")

    def factory(params: Any) -> torch.optim.Optimizer:
        opt = torch.optim.SGD(params, lr=0.05, momentum=0.5)
        seen.append(opt)
        return opt

    def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            decay.append(seen[0].param_groups[0]["weight_decay"])
        return task.loss_fn(output, target)

    h = fit(task, optimizer=factory, lr=None, steps=6)
    assert h.lr == [0.05] * 6 and h.momentum == [0.5] * 6
    assert h.optimizer.endswith("factory")
    assert len(seen) == 1
    seen.clear()
    fit(task, optimizer=factory, loss_fn=loss_fn, weight_decay=S.linear(0.1, 0.0, 4), steps=5)
    assert decay == pytest.approx([0.1, 0.075, 0.05, 0.025, 0.0])


def _two_group_adam(model: nn.Module) -> torch.optim.Adam:
    """Adam over ``model`` (a wine MLP) with two param groups: the first layer at 0.01, the
    rest at 0.001."""
    first = list(model[0].parameters())
    rest = [p for p in model.parameters() if all(p is not q for q in first)]
    return torch.optim.Adam([{"params": first, "lr": 0.01}, {"params": rest, "lr": 0.001}])


def test_fit_trains_the_given_optimizer_instance_and_keeps_its_group_ratios() -> None:
    task = get_task("wine-mlp")
    model = _wine_model()
    adam = _two_group_adam(model)
    seen: list[list[float]] = []

    def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():  # the learning rate of each group at this update
            seen.append([g["lr"] for g in adam.param_groups])
        return task.loss_fn(output, target)

    sched = S.cosine(0.05, 12)
    h = fit(task, model=model, optimizer=adam, loss_fn=loss_fn, lr=sched, steps=12)
    assert type(adam) is torch.optim.Adam and h.optimizer == "Adam"
    assert len(seen) == 12
    assert [a for a, _ in seen] == pytest.approx([sched(t) for t in range(12)], rel=1e-12)
    assert [b / a for a, b in seen[:-1]] == pytest.approx([0.1] * 11)  # the ratio is kept
    assert h.lr == pytest.approx([a for a, _ in seen], rel=1e-12) and h.momentum == [0.9] * 12
    params = [p for g in adam.param_groups for p in g["params"]]
    assert len(adam.state) == len(params) == len(list(model.parameters()))
    assert all(float(adam.state[p]["step"]) == 12 for p in params)  # its state grew
    before = float(adam.state[params[0]]["step"])
    h2 = fit(task, model=model, optimizer=adam, lr=None, steps=3)  # lr=None: its own LRs
    assert float(adam.state[params[0]]["step"]) == before + 3  # the same state, continued
    assert h2.lr == [adam.param_groups[0]["lr"]] * 3


def test_fit_with_an_optimizer_instance_resumes_exactly(tmp_path: Path) -> None:
    task = get_task("wine-mlp")
    common: dict[str, Any] = {"lr": S.one_cycle(0.05, 20), "steps": 20, "eval_every": 5}
    reference = _wine_model(3)
    ref_opt = _two_group_adam(reference)
    h_ref = fit(task, model=reference, optimizer=ref_opt, **common)

    calls = {"n": 0}

    def failing_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == 14:
                raise _Interrupt
        return task.loss_fn(output, target)

    first = _wine_model(3)
    kw: dict[str, Any] = {"checkpoint_every": 4, "checkpoint_dir": tmp_path, **common}
    with pytest.raises(_Interrupt):
        fit(task, model=first, optimizer=_two_group_adam(first), loss_fn=failing_loss, **kw)
    assert load_checkpoint(checkpoint_path(tmp_path))["step"] == 12
    resumed = _wine_model(123)  # overwritten by the checkpoint, and so is its optimizer
    opt = _two_group_adam(resumed)
    h = fit(task, model=resumed, optimizer=opt, resume=True, **kw)
    _assert_bitwise_equal(_state(reference), _state(resumed))
    assert h.to_dict(timing=False) == h_ref.to_dict(timing=False)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in ref_opt.param_groups]
    for p, q in zip(resumed.parameters(), reference.parameters(), strict=True):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt.state[p][key], ref_opt.state[q][key]), key


def test_fit_refuses_an_optimizer_instance_that_is_not_the_models() -> None:
    model, other = _wine_model(), _wine_model(1)
    before = _state(model)
    with pytest.raises(ValueError, match=r"6 of the 6 parameters of the Adam given as optimizer "):
        fit("wine-mlp", model=model, optimizer=_two_group_adam(other), steps=3)
    with pytest.raises(ValueError, match="give model= too, the model whose parameters it holds"):
        fit("wine-mlp", optimizer=_two_group_adam(other), steps=3)
    with pytest.raises(ValueError, match="an optimizer instance sets momentum itself"):
        fit("wine-mlp", model=model, optimizer=_two_group_adam(model), momentum=0.9, steps=3)
    _assert_bitwise_equal(before, _state(model))


def test_gradient_accumulation_matches_a_larger_batch() -> None:
    task = get_task("wine-mlp")
    big, small = _wine_model(), _wine_model()
    fit(task, model=big, optimizer="sgd", lr=0.1, batch_size=32, steps=4)
    h = fit(
        task, model=small, optimizer="sgd", lr=0.1, batch_size=16, steps=4, accumulation_steps=2
    )
    assert h.steps == 4
    a, b = _state(big), _state(small)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    untouched = _state(_wine_model())
    assert not torch.allclose(a["0.weight"], untouched["0.weight"])


def test_amp_on_cpu_trains() -> None:
    h = fit("wine-mlp", steps=20, amp=True)
    assert not h.diverged and all(math.isfinite(v) for v in h.loss)


# -- user-supplied model and data -------------------------------------------------------------


def test_user_model_and_loaders_without_a_task() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0])
    train = DataLoader(TensorDataset(x[:160], y[:160]), batch_size=20, shuffle=True)
    val = DataLoader(TensorDataset(x[160:], y[160:]), batch_size=40)
    model = nn.Linear(4, 1)

    def loss_fn(out: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(out.squeeze(-1), tgt)

    h = fit(
        model=model,
        train_loader=train,
        val_loader=val,
        loss_fn=loss_fn,
        optimizer="adam",
        lr=0.05,
        epochs=10,
    )
    assert h.task is None and h.metric_name == "neg_val_loss"
    assert h.steps == 80 and h.eval_step == list(range(8, 81, 8))
    assert h.metric == pytest.approx([-v for v in h.val_loss])
    assert h.val_loss[-1] < 0.05 * h.val_loss[0]


def test_fit_restores_the_callers_global_rngs_and_prints_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    fit("wine-mlp", steps=3)
    assert random.getstate() == states[0]
    assert np.array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.get_rng_state(), states[2])
    assert capsys.readouterr() == ("", "")


def test_num_threads_is_set_for_the_run_and_restored() -> None:
    seen: list[int] = []
    task = get_task("wine-mlp")

    def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return task.loss_fn(output, target)

    torch.set_num_threads(2)
    try:
        fit(task, loss_fn=loss_fn, steps=2, num_threads=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert seen and set(seen) == {1}
    with pytest.raises(ValueError, match="num_threads"):
        fit(task, steps=2, num_threads=0)


def test_progress_bar_reports_loss_and_lr(capsys: pytest.CaptureFixture[str]) -> None:
    fit("wine-mlp", optimizer="sgd", steps=5, progress=True)
    err = capsys.readouterr().err
    assert "5/5" in err and "loss" in err and "lr 0.1" in err


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimizer": "lion"}, "unknown optimizer 'lion'; use one of sgd, adam, adamw"),
        ({"steps": 5, "epochs": 1}, "not both"),
        ({"steps": 0}, "steps must be a positive int"),
        ({"checkpoint_every": 5}, "needs checkpoint_dir"),
        ({"resume": True}, "resume=True needs checkpoint_dir"),
        ({"accumulation_steps": 0}, "accumulation_steps"),
        ({"lr": -0.1}, "lr must be a positive"),
        ({"lr": S.one_cycle(0.1, 10), "momentum": 0.9}, "momentum is given twice"),
        ({"optimizer": "adam", "nesterov": True}, "nesterov=True needs optimizer 'sgd'"),
        ({"optimizer": "adagrad", "lr": S.one_cycle(0.1, 10)}, "momentum=None"),
        ({"observe": "loss"}, "observe must be"),
        ({"seed": -1}, "seed"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
        ({"optimizer": lambda p: torch.optim.SGD(p, lr=0.1), "momentum": 0.5}, "sets momentum"),
        ({"optimizer": 3}, "optimizer must be a name, a callable"),
        (
            {"train_loader": DataLoader(TensorDataset(torch.zeros(4, 13)), batch_size=2)},
            "batch_size applies",
        ),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict[str, Any], message: str) -> None:
    if "train_loader" in kwargs:
        kwargs = {**kwargs, "batch_size": 8}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fit("wine-mlp", **kwargs)


def test_bad_arguments_without_a_task() -> None:
    with pytest.raises(ValueError, match="give a task, or model, train_loader, loss_fn"):
        fit(steps=3)
    with pytest.raises(ValueError, match="unknown task"):
        fit("no-such-task")
    data = DataLoader(TensorDataset(torch.zeros(4, 2), torch.zeros(4)), batch_size=2)
    kw: dict[str, Any] = {
        "model": nn.Sequential(nn.Linear(2, 1), nn.Flatten(0)),
        "train_loader": data,
        "loss_fn": nn.functional.mse_loss,
    }
    with pytest.raises(ValueError, match="give steps= or epochs="):
        fit(**kw)
    with pytest.raises(ValueError, match="needs evaluations: give a val_loader"):
        fit(**kw, steps=2, target=0.5)
    with pytest.raises(ValueError, match="batch_size applies to a task"):
        fit(**kw, steps=2, batch_size=8)
    h = fit(**kw, steps=3)
    assert h.steps == 3 and h.eval_step == [] and h.final_metric is None


# -- checkpoints and resume -------------------------------------------------------------------


class _Interrupt(Exception):
    pass


def test_resume_after_an_exception_is_bitwise_exact(tmp_path: Path) -> None:
    task = get_task("digits-cnn")
    common: dict[str, Any] = {
        "lr": S.one_cycle(0.2, 40),
        "steps": 40,
        "batch_size": 100,
        "eval_every": 10,
        "seed": 7,
    }
    reference = task.make_model(7)
    h_ref = fit(task, model=reference, **common)

    calls = {"n": 0}

    def failing_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 27:
            raise _Interrupt
        return task.loss_fn(output, target)

    with pytest.raises(_Interrupt):
        fit(task, loss_fn=failing_loss, checkpoint_every=8, checkpoint_dir=tmp_path, **common)
    assert load_checkpoint(checkpoint_path(tmp_path))["step"] == 24
    resumed = task.make_model(123)  # overwritten by the checkpoint
    h = fit(task, model=resumed, checkpoint_every=8, checkpoint_dir=tmp_path, resume=True, **common)
    _assert_bitwise_equal(_state(reference), _state(resumed))
    assert h.to_dict(timing=False) == h_ref.to_dict(timing=False)
    assert h.steps == 40 and len(h.eval_step) == 4


def test_resume_refuses_another_configuration(tmp_path: Path) -> None:
    fit("wine-mlp", steps=6, checkpoint_every=3, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="another run configuration"):
        fit("wine-mlp", steps=7, checkpoint_every=3, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="another run configuration"):
        fit("wine-mlp", steps=6, seed=1, checkpoint_every=3, checkpoint_dir=tmp_path, resume=True)


def test_resume_without_a_checkpoint_starts_afresh(tmp_path: Path) -> None:
    a = fit("wine-mlp", steps=6, checkpoint_dir=tmp_path / "new", resume=True)
    b = fit("wine-mlp", steps=6)
    assert a.to_dict(timing=False) == b.to_dict(timing=False)
    assert checkpoint_path(tmp_path / "new").is_file()


def test_atomic_save_keeps_the_old_file_when_a_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ck.pt"
    save_atomic({"v": 1}, path)

    def broken_save(obj: object, f: Any) -> None:
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_atomic({"v": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]


def test_unreadable_checkpoint_gives_a_clear_error(tmp_path: Path) -> None:
    checkpoint_path(tmp_path).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        fit("wine-mlp", steps=3, checkpoint_dir=tmp_path, resume=True)


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import torch
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    from torch import nn
    from lrkit import schedules as S
    from lrkit.tasks import get_task
    from lrkit.train import fit

    out, ckdir, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    task = get_task("digits-cnn")

    def loss_fn(output, target):
        if delay:
            time.sleep(delay)
        return nn.functional.cross_entropy(output, target)

    with torch.random.fork_rng():
        torch.manual_seed(11)
        model = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
            nn.Dropout(0.3), nn.Linear(8 * 64, 10),
        )
    history = fit(
        task, model=model, loss_fn=loss_fn, lr=S.one_cycle(0.2, 60), steps=60,
        batch_size=32, accumulation_steps=2, eval_every=10, seed=3,
        checkpoint_every=None if ckdir == "-" else 7,
        checkpoint_dir=None if ckdir == "-" else ckdir,
        resume=ckdir != "-",
    )
    torch.save({"model": model.state_dict(), "history": history.to_dict(timing=False)}, out)
    """
)


def _launch(tmp_path: Path, out: str, ckdir: str, delay: float) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path / out), ckdir, str(delay)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _checkpoint_step(path: Path) -> int:
    return int(load_checkpoint(path)["step"]) if path.is_file() else 0


def _kill_after_checkpoint(proc: subprocess.Popen[bytes], path: Path, beyond: int) -> int:
    """SIGKILL ``proc`` shortly after its checkpoint passes step ``beyond``."""
    deadline = time.monotonic() + 120
    while _checkpoint_step(path) <= beyond:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    time.sleep(0.15)  # let it train on past the checkpoint
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return _checkpoint_step(path)


@pytest.mark.slow
def test_sigkill_and_resume_gives_bitwise_identical_weights_and_history(tmp_path: Path) -> None:
    ckdir = tmp_path / "ck"
    path = checkpoint_path(ckdir)
    reference = _launch(tmp_path, "reference.pt", "-", 0.0)
    first = _launch(tmp_path, "killed.pt", str(ckdir), 0.01)
    step1 = _kill_after_checkpoint(first, path, 0)
    second = _launch(tmp_path, "killed.pt", str(ckdir), 0.01)
    step2 = _kill_after_checkpoint(second, path, step1)
    assert 0 < step1 < step2 < 60
    last = _launch(tmp_path, "killed.pt", str(ckdir), 0.0)
    for proc in (reference, last):
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err.decode()
    ref = torch.load(tmp_path / "reference.pt", weights_only=True)
    got = torch.load(tmp_path / "killed.pt", weights_only=True)
    _assert_bitwise_equal(ref["model"], got["model"])
    assert got["history"] == ref["history"]
    assert len(got["history"]["loss"]) == 60 and got["history"]["eval_step"][-1] == 60
    assert load_checkpoint(path)["finished"]


# -- settings in one place --------------------------------------------------------------------


def test_a_config_with_overrides_trains_like_the_keywords() -> None:
    config = lrkit.train.TrainConfig("wine-mlp", optimizer="sgd", steps=12, eval_every=6)
    by_config = fit(config, seed=3)
    by_keywords = fit("wine-mlp", optimizer="sgd", steps=12, eval_every=6, seed=3)
    assert by_config.loss == by_keywords.loss and by_config.metric == by_keywords.metric
    assert config.seed == 0  # the config itself is unchanged


def test_a_config_is_checked_when_made_and_names_unknown_settings() -> None:
    with pytest.raises(ValueError, match="give steps or epochs, not both"):
        lrkit.train.TrainConfig("wine-mlp", steps=3, epochs=2)
    config = lrkit.train.TrainConfig("wine-mlp", steps=3)
    with pytest.raises(ValueError, match="accumulation_steps must be a positive int"):
        config.with_overrides(accumulation_steps=0)
    with pytest.raises(TypeError, match=r"unknown training setting.*learning_rate"):
        fit(config, learning_rate=0.1)


@pytest.mark.parametrize(
    ("name", "has", "cycles"),
    [
        ("sgd", True, True),
        ("adamw", True, True),
        ("rmsprop", True, False),
        ("adagrad", False, False),
    ],
)
def test_one_table_knows_each_optimizers_momentum(name: str, has: bool, cycles: bool) -> None:
    assert lrkit.train.has_momentum(name) is has
    assert lrkit.train.cycles_momentum(name) is cycles
    opt = lrkit.train.build_optimizer(name, [torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    if cycles:  # built with momentum in use, so the driver can schedule it
        drv = lrkit.Scheduler(opt, lr=S.constant(0.1), momentum=S.constant(0.5))
        assert drv.values()["momentum"] == [0.5]
    elif has:  # RMSprop: built with momentum 0, which a schedule must not switch on silently
        with pytest.raises(ValueError, match="built with momentum=0"):
            lrkit.Scheduler(opt, lr=S.constant(0.1), momentum=S.constant(0.5))
    else:
        with pytest.raises(ValueError, match="neither momentum nor betas"):
            lrkit.Scheduler(opt, lr=S.constant(0.1), momentum=S.constant(0.5))
