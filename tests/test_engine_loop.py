"""The one update loop (engine.drive), the setup as one value (engine.Session), and mixed
precision and gradient clipping in the finder: a probe and a step of the range test are the
user's own update."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

import lrkit
from lrkit.engine import Engine, NoHooks, Session, Update, drive
from strategies_finder import assert_same_state, capture, make_data, mlp

pytestmark = pytest.mark.usefixtures("one_thread")


class _Recorder(NoHooks):
    def __init__(self, stop_at: int | None = None) -> None:
        self.events: list[tuple[str, int, str]] = []
        self.stop_at = stop_at

    def before(self, step: int) -> None:
        self.events.append(("before", step, ""))

    def skipped(self, step: int, update: Update) -> None:
        self.events.append(("skipped", step, update.status))

    def after(self, step: int, update: Update) -> bool:
        self.events.append(("after", step, update.status))
        return self.stop_at is not None and step + 1 >= self.stop_at


class _ScriptedEngine:
    """An engine whose updates follow a script of statuses."""

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)

    def update(self, stream: Any) -> Update:
        status = self.script.pop(0)
        return Update(math.nan if status == "nonfinite" else 1.0, status)  # type: ignore[arg-type]


class _CountingScheduler:
    def __init__(self) -> None:
        self.steps = 0

    def step(self) -> None:
        self.steps += 1


def _drive(script: list[str], steps: int, **kwargs: Any) -> tuple[Any, _Recorder, int]:
    hooks = _Recorder(kwargs.pop("stop_at", None))
    sched = _CountingScheduler()
    done = drive(_ScriptedEngine(script), iter(()), steps, hooks, scheduler=sched, **kwargs)  # type: ignore[arg-type]
    return done, hooks, sched.steps


def test_drive_retries_skipped_updates_at_the_same_step_and_steps_the_schedule_once_each() -> None:
    done, hooks, stepped = _drive(["applied", "skipped", "skipped", "applied", "applied"], 3)
    assert (done.applied, done.updates, done.stop) == (3, 5, "completed")
    assert stepped == 3  # a skipped update does not move the schedule
    assert hooks.events == [
        ("before", 0, ""), ("after", 0, "applied"),
        ("before", 1, ""), ("skipped", 1, "skipped"),
        ("before", 1, ""), ("skipped", 1, "skipped"),
        ("before", 1, ""), ("after", 1, "applied"),
        ("before", 2, ""), ("after", 2, "applied"),
    ]  # fmt: skip


def test_drive_stops_on_a_nonfinite_loss_after_the_hook_saw_it_without_stepping() -> None:
    done, hooks, stepped = _drive(["applied", "nonfinite", "applied"], 3)
    assert (done.applied, done.updates, done.stop) == (1, 2, "nonfinite")
    assert hooks.events[-1] == ("after", 1, "nonfinite")
    assert stepped == 1


def test_drive_gives_up_after_max_skips_in_a_row_and_when_a_hook_says_stop() -> None:
    done, _, stepped = _drive(["applied"] + ["skipped"] * 4, 3, max_skips=4)
    assert (done.applied, done.updates, done.skips, done.stop) == (1, 5, 4, "skipped")
    assert stepped == 1
    done, _, stepped = _drive(["applied"] * 5, 5, stop_at=2)
    assert (done.applied, done.stop, stepped) == (2, "stopped", 2)


# -- the session ----------------------------------------------------------------------------------


def _model_opt() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = mlp()
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"autocast": torch.float32}, "autocast must be torch.bfloat16, torch.float16 or None"),
        ({"max_grad_norm": 0.0}, "max_grad_norm must be a finite number > 0"),
        ({"max_grad_norm": math.inf}, "max_grad_norm must be a finite number > 0"),
        ({"loss_fn": None}, "pass loss_fn"),
        ({"metric_fn": lambda o, t: 0.0}, "metric_fn needs val_data"),
        ({"accumulation_steps": 0}, "accumulation_steps must be a positive int"),
    ],
)
def test_session_check_says_what_to_change(changes: dict[str, Any], match: str) -> None:
    model, opt = _model_opt()
    settings: dict[str, Any] = {"loss_fn": nn.functional.cross_entropy, **changes}
    with pytest.raises(ValueError, match=match):
        Session(model, opt, **settings).check("range_test")


def test_session_engine_carries_autocast_and_clipping() -> None:
    model, opt = _model_opt()
    session = Session(
        model, opt, nn.functional.cross_entropy, autocast=torch.bfloat16, max_grad_norm=0.5
    )
    engine = session.engine()
    assert isinstance(engine, Engine)
    assert (engine.autocast_dtype, engine.max_grad_norm) == (torch.bfloat16, 0.5)
    fp = session.fingerprint()
    assert fp["autocast"] == "torch.bfloat16" and fp["max_grad_norm"] == 0.5


# -- mixed precision and clipping in the finder ----------------------------------------------------


class _Watch:
    """Records the dtype of every training forward pass and the gradient norm at every
    optimizer step."""

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer) -> None:
        self.dtypes: list[torch.dtype] = []
        self.norms: list[float] = []
        self.model = model
        model[0].register_forward_hook(self._forward)  # type: ignore[index]
        opt.register_step_pre_hook(self._step)

    def _forward(self, module: nn.Module, args: Any, out: torch.Tensor) -> None:
        if self.model.training:
            self.dtypes.append(out.dtype)

    def _step(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))


def test_range_test_trains_under_autocast_with_clipping_and_restores_exactly() -> None:
    model, opt = _model_opt()
    data = make_data(n=512)
    watch = _Watch(model, opt)
    before = capture(model, opt)
    kwargs: dict[str, Any] = {"steps": 40, "end_lr": 1.0}
    plain = lrkit.range_test(model, opt, data, nn.functional.cross_entropy, **kwargs)
    assert set(watch.dtypes) == {torch.float32}
    assert max(watch.norms) > 0.3
    watch.dtypes.clear()
    watch.norms.clear()
    mixed = lrkit.range_test(
        model, opt, data, nn.functional.cross_entropy, autocast=torch.bfloat16,
        max_grad_norm=0.3, **kwargs,
    )  # fmt: skip
    assert watch.dtypes and set(watch.dtypes) == {torch.bfloat16}
    assert watch.norms and max(watch.norms) <= 0.3 * (1 + 1e-4)  # clipped before every step
    assert not torch.equal(torch.as_tensor(plain.losses), torch.as_tensor(mixed.losses))
    assert_same_state(before, capture(model, opt))


def test_tune_lr_probes_train_the_users_update_under_autocast_with_clipping() -> None:
    model, opt = _model_opt()
    data = make_data(n=768)
    train, val = data[:16], data[16:]
    watch = _Watch(model, opt)
    before = capture(model, opt)
    # eight validation batches: probes of (320 - 100 - 6 * 8/3) // 5 = 40 = 640 / 16 updates
    result = lrkit.tune_lr(
        model, opt, train, nn.functional.cross_entropy, val_data=val, total_steps=640,
        autocast=torch.bfloat16, max_grad_norm=0.3,
    )  # fmt: skip
    assert result.probes and math.isfinite(result.peak)
    # the range test and every probe: bf16 forward passes, gradients clipped at every step
    assert len(watch.dtypes) == len(watch.norms) > len(result.range_test.lrs)
    assert set(watch.dtypes) == {torch.bfloat16}
    assert max(watch.norms) <= 0.3 * (1 + 1e-4)
    assert_same_state(before, capture(model, opt))


def test_fit_takes_the_same_autocast_as_the_finder() -> None:
    from lrkit.tasks import get_task
    from lrkit.train import fit

    task = get_task("wine-mlp")
    seen: list[torch.dtype] = []

    def model() -> nn.Module:
        m = task.make_model(0)
        first = next(x for x in m.modules() if isinstance(x, nn.Linear))
        first.register_forward_hook(lambda mod, a, out: seen.append(out.dtype))
        return m

    plain = fit(task, model=model(), steps=20, seed=0)
    assert set(seen) == {torch.float32}
    seen.clear()
    mixed = fit(task, model=model(), steps=20, seed=0, autocast=torch.bfloat16)
    assert seen and set(seen) == {torch.bfloat16}
    amp = fit(task, model=model(), steps=20, seed=0, amp=True)  # on the CPU: bf16 too
    assert mixed.loss == amp.loss and mixed.loss != plain.loss
    with pytest.raises(ValueError, match=r"autocast must be torch\.bfloat16, torch\.float16"):
        fit(task, steps=20, autocast=torch.float64)
