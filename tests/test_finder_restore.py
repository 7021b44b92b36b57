"""The range test leaves every piece of training state exactly as it found it."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from lrkit.finder import TrainingSnapshot, range_test
from strategies_finder import BNNet, assert_same_state, capture, make_data, mlp, pretrain

pytestmark = pytest.mark.usefixtures("one_thread")


def _adam_setup(seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer, list[Any]]:
    torch.manual_seed(seed)
    model = BNNet()
    opt = torch.optim.AdamW(
        [
            {"params": [*model.fc1.parameters(), *model.bn.parameters()], "lr": 1e-3},
            {"params": model.fc2.parameters(), "lr": 5e-4, "betas": (0.8, 0.99)},
        ],
        weight_decay=0.01,
    )
    data = make_data()
    pretrain(model, opt, data)
    return model, opt, data


def _seed_globals() -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)


class _Raises:
    """A loss function that raises ``exc`` on call number ``at``."""

    def __init__(self, at: int, exc: BaseException) -> None:
        self.calls = 0
        self.at = at
        self.exc = exc

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.at:
            raise self.exc
        return nn.functional.cross_entropy(output, target)


@pytest.mark.parametrize("snapshot", ["cpu", "disk"])
def test_completed_sweep_restores_everything(snapshot: str) -> None:
    model, opt, data = _adam_setup()
    model.eval()  # the user's mode must come back too
    _seed_globals()
    before = capture(model, opt)
    res = range_test(
        model, opt, data, nn.CrossEntropyLoss(), end_lr=1e-2, steps=20, snapshot=snapshot, extend=1
    )
    assert res.stop_reason == "completed"
    assert len(res.lrs) == 20
    assert_same_state(before, capture(model, opt))


def test_diverged_sweep_restores_and_references_stay_valid() -> None:
    model, opt, data = _adam_setup()
    group0 = opt.param_groups[0]
    exp_avg = opt.state[model.fc1.weight]["exp_avg"]
    weight = model.fc1.weight
    before = capture(model, opt)
    res = range_test(model, opt, data, nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=1e4, steps=60)
    assert res.stop_reason == "diverged"
    assert_same_state(before, capture(model, opt))
    assert opt.param_groups[0] is group0
    assert opt.state[model.fc1.weight]["exp_avg"] is exp_avg
    assert model.fc1.weight is weight
    assert opt.param_groups[1]["betas"] == (0.8, 0.99)
    assert opt.param_groups[1]["lr"] == 5e-4


def test_user_exception_restores_and_reraises_with_partial_result() -> None:
    model, opt, data = _adam_setup()
    before = capture(model, opt)
    loss_fn = _Raises(at=7, exc=RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom") as info:
        range_test(model, opt, data, loss_fn, steps=20)
    assert_same_state(before, capture(model, opt))
    partial = info.value.range_test_result  # type: ignore[attr-defined]
    assert partial.stop_reason == "error"
    assert len(partial.lrs) == 6


def test_keyboard_interrupt_returns_partial_result_restored() -> None:
    model, opt, data = _adam_setup()
    before = capture(model, opt)
    res = range_test(model, opt, data, _Raises(at=9, exc=KeyboardInterrupt()), steps=20)
    assert res.stop_reason == "interrupted"
    assert len(res.losses) == 8
    assert_same_state(before, capture(model, opt))


def test_nan_at_step_one_restores() -> None:
    model, opt, data = _adam_setup()
    before = capture(model, opt)

    def nan_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(output, target) * float("nan")

    res = range_test(model, opt, data, nan_loss, steps=20)
    assert res.stop_reason == "nan"
    assert len(res.losses) == 1 and np.isnan(res.losses[0])
    assert res.suggestion is None
    assert_same_state(before, capture(model, opt))


def test_non_scalar_loss_raises_value_error_after_restore() -> None:
    model, opt, data = _adam_setup()
    before = capture(model, opt)
    with pytest.raises(ValueError, match="scalar"):
        range_test(model, opt, data, nn.CrossEntropyLoss(reduction="none"), steps=20)
    assert_same_state(before, capture(model, opt))


def test_gradients_present_before_are_restored() -> None:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    data = make_data()
    pretrain(model, opt, data)
    x, y = data[5]
    nn.functional.cross_entropy(model(x), y).backward()  # leaves .grad set
    model[2].bias.grad = None  # and one of them unset
    before = capture(model, opt)
    range_test(model, opt, data, nn.CrossEntropyLoss(), steps=15)
    after = capture(model, opt)
    assert_same_state(before, after)
    assert model[2].bias.grad is None


def test_fresh_optimizer_has_no_state_afterwards() -> None:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = capture(model, opt)
    range_test(model, opt, make_data(), nn.CrossEntropyLoss(), steps=12)
    assert len(opt.state) == 0
    assert_same_state(before, capture(model, opt))


def test_shuffling_dataloader_rng_and_repeats_restored() -> None:
    torch.manual_seed(0)
    model = BNNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    pretrain(model, opt, make_data())
    xs = torch.cat([b[0] for b in make_data()])
    ys = torch.cat([b[1] for b in make_data()])
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(xs, ys), batch_size=32, shuffle=True
    )
    _seed_globals()
    before = capture(model, opt)
    res = range_test(model, opt, loader, nn.CrossEntropyLoss(), steps=20, repeats=3)
    assert len(res.repeat_losses) == 3
    # different data orders give different curves
    assert not np.allclose(res.repeat_losses[0], res.repeat_losses[1])
    assert_same_state(before, capture(model, opt))
    # the global generators continue exactly as if nothing happened
    _seed_globals()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    _seed_globals()
    range_test(model, opt, loader, nn.CrossEntropyLoss(), steps=12)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def _scaler_setup() -> tuple[nn.Module, torch.optim.Optimizer, Any, list[Any]]:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=3)
    return model, opt, scaler, make_data()


def test_scaler_state_restored_lazy_and_used() -> None:
    model, opt, scaler, data = _scaler_setup()
    before = capture(model, opt, scaler)
    assert before["scaler_lazy"]
    range_test(model, opt, data, nn.CrossEntropyLoss(), steps=15, scaler=scaler)
    assert_same_state(before, capture(model, opt, scaler))
    # once the scaler has been used (scale tensor exists, tracker non-zero)
    for x, y in data[:4]:
        opt.zero_grad()
        scaler.scale(nn.functional.cross_entropy(model(x), y)).backward()
        scaler.step(opt)
        scaler.update()
    before = capture(model, opt, scaler)
    assert not before["scaler_lazy"]
    range_test(model, opt, data, nn.CrossEntropyLoss(), steps=15, scaler=scaler)
    assert_same_state(before, capture(model, opt, scaler))


def test_snapshot_restore_twice_does_not_alias() -> None:
    model, opt, data = _adam_setup()
    before = capture(model, opt)
    snap = TrainingSnapshot.take(model, opt)
    for _ in range(2):
        pretrain(model, opt, data, steps=2)
        snap.restore()
        assert_same_state(before, capture(model, opt))
    snap.close()


def test_snapshot_disk_file_removed() -> None:
    model, opt, _ = _adam_setup()
    snap = TrainingSnapshot.take(model, opt, mode="disk")
    path = snap._path
    assert path is not None
    import os

    assert os.path.exists(path)
    snap.restore()
    snap.close()
    assert not os.path.exists(path)


def test_tensor_lr_restored_in_place() -> None:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(1e-3))
    lr_tensor = opt.param_groups[0]["lr"]
    before = capture(model, opt)
    res = range_test(model, opt, make_data(), nn.CrossEntropyLoss(), end_lr=1.0, steps=12)
    assert len(res.lrs) >= 2
    assert opt.param_groups[0]["lr"] is lr_tensor
    assert_same_state(before, capture(model, opt))


@pytest.mark.parametrize("mode", ["cpu", "disk"])
def test_snapshot_undoes_entries_added_removed_and_replaced(mode: str) -> None:
    model, opt, data = _adam_setup()
    before = capture(model, opt)
    p0 = next(model.parameters())
    exp_avg = opt.state[p0]["exp_avg"]
    running_mean = model.bn.running_mean
    snap = TrainingSnapshot.take(model, opt, mode=mode)  # type: ignore[arg-type]
    pretrain(model, opt, data, steps=2)
    opt.param_groups[0]["added"] = 1.0
    del opt.param_groups[1]["betas"]
    opt.state[p0]["added"] = torch.ones(1)
    del opt.state[p0]["exp_avg_sq"]
    opt.state[p0]["exp_avg"] = torch.zeros(3)  # another shape: put back as a new tensor
    model.bn.running_var = None  # type: ignore[assignment]
    model.eval()
    snap.restore()
    assert "added" not in opt.param_groups[0] and opt.param_groups[1]["betas"] == (0.8, 0.99)
    assert "added" not in opt.state[p0] and "exp_avg_sq" in opt.state[p0]
    assert opt.state[p0]["exp_avg"] is not exp_avg
    assert model.bn.running_mean is running_mean  # the same shape: restored in place
    assert model.training and model.bn.running_var is not None
    assert_same_state(before, capture(model, opt))
    snap.close()
