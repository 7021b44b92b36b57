"""The range test's sweep: LR sequence, smoothing, stopping, accumulation, AMP scaler, repeats,
validation, progress and bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from lrkit.finder import RangeTestResult, ema, lr_sequence, range_test
from strategies_finder import assert_same_state, capture, make_data, mlp

pytestmark = pytest.mark.usefixtures("one_thread")


def _setup(seed: int = 0, lr: float = 0.01) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = mlp()
    return model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


class _LrRecorder:
    """Records the LR of every param group at each real optimizer step."""

    def __init__(self, opt: torch.optim.Optimizer) -> None:
        self.lrs: list[list[float]] = []
        self.handle = opt.register_step_post_hook(self)

    def __call__(self, opt: torch.optim.Optimizer, *_: Any) -> None:
        self.lrs.append([float(g["lr"]) for g in opt.param_groups])


# -- LR sequence ----------------------------------------------------------------------------------


def test_lr_sequence_exp_golden() -> None:
    lrs = lr_sequence(1e-3, 10.0, 5, "exp")
    np.testing.assert_allclose(lrs, [1e-3, 1e-2, 1e-1, 1.0, 10.0], rtol=1e-12)
    assert lrs[0] == 1e-3 and lrs[-1] == 10.0


def test_lr_sequence_linear_golden() -> None:
    np.testing.assert_allclose(lr_sequence(0.0, 1.0, 5, "linear"), [0, 0.25, 0.5, 0.75, 1.0])


def test_sweep_applies_the_sequence_to_the_optimizer() -> None:
    model, opt = _setup()
    rec = _LrRecorder(opt)
    res = range_test(
        model, opt, make_data(), nn.CrossEntropyLoss(), end_lr=1e-2, steps=12, extend=1
    )
    rec.handle.remove()
    expected = lr_sequence(1e-7, 1e-2, 12)
    np.testing.assert_allclose([r[0] for r in rec.lrs], expected, rtol=1e-12)
    np.testing.assert_allclose(res.lrs, expected, rtol=1e-12)


def test_param_groups_keep_their_ratios() -> None:
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(
        [
            {"params": model[0].parameters(), "lr": 0.01},
            {"params": model[2].parameters(), "lr": 0.04},
        ],
        momentum=0.9,
    )
    rec = _LrRecorder(opt)
    range_test(model, opt, make_data(), nn.CrossEntropyLoss(), end_lr=1e-2, steps=10, extend=1)
    rec.handle.remove()
    seen = np.array(rec.lrs)
    np.testing.assert_allclose(seen[:, 1], lr_sequence(1e-7, 1e-2, 10), rtol=1e-12)
    np.testing.assert_allclose(seen[:, 0], seen[:, 1] / 4, rtol=1e-12)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.04]


def test_linear_mode() -> None:
    model, opt = _setup()
    res = range_test(
        model,
        opt,
        make_data(),
        nn.CrossEntropyLoss(),
        start_lr=0.0,
        end_lr=0.1,
        mode="linear",
        steps=11,
    )
    np.testing.assert_allclose(res.lrs, np.linspace(0, 0.1, 11), atol=1e-15)


# -- smoothing and stopping -----------------------------------------------------------------------


def test_ema_bias_correction_golden() -> None:
    # avg1 = 0.5*2 = 1 -> 1/(1-0.5) = 2; avg2 = 0.5*1 + 0.5*4 = 2.5 -> 2.5/0.75
    np.testing.assert_allclose(ema([2.0, 4.0], 0.5), [2.0, 2.5 / 0.75])
    np.testing.assert_allclose(ema([3.0, 3.0, 3.0], 0.98), [3.0, 3.0, 3.0])
    np.testing.assert_array_equal(ema([1.0, 5.0], 0.0), [1.0, 5.0])


def test_smoothed_is_bias_corrected_ema_of_losses() -> None:
    model, opt = _setup()
    res = range_test(model, opt, make_data(), nn.CrossEntropyLoss(), end_lr=1.0, steps=30)
    np.testing.assert_allclose(res.smoothed, ema(res.losses, 0.98), rtol=1e-12)


def test_diverges_and_says_so() -> None:
    model, opt = _setup()
    res = range_test(
        model,
        opt,
        make_data(),
        nn.CrossEntropyLoss(),
        start_lr=1e-3,
        end_lr=1e5,
        steps=60,
        smoothing=0.5,
    )
    assert res.stop_reason == "diverged"
    assert len(res.lrs) < 60
    best = np.min(res.smoothed[:-1])
    assert res.smoothed[-1] > 4.0 * best
    assert np.all(res.smoothed[:-1] <= 4.0 * np.minimum.accumulate(res.smoothed[:-1]))


def test_nan_stops() -> None:
    model, opt = _setup()
    calls = {"n": 0}

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        loss = nn.functional.cross_entropy(out, y)
        return loss * math.inf if calls["n"] == 5 else loss

    res = range_test(model, opt, make_data(), loss_fn, steps=20)
    assert res.stop_reason == "nan"
    assert len(res.losses) == 5 and math.isinf(res.losses[-1])


def test_data_shorter_than_steps_is_cycled() -> None:
    model, opt = _setup()
    seen: list[int] = []
    data = make_data(n=96, batch=32)  # 3 batches

    def step_fn(m: nn.Module, batch: Any) -> torch.Tensor:
        seen.append(int(batch[1][0]) * 1000 + int(batch[0][0, 0] * 100))
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    range_test(model, opt, data, step_fn=step_fn, end_lr=1e-3, steps=10, extend=1)
    assert len(seen) == 10
    assert seen[:3] == seen[3:6] == seen[6:9]


def test_one_shot_iterator_that_runs_out_is_a_clear_error() -> None:
    model, opt = _setup()
    before = capture(model, opt)
    with pytest.raises(ValueError, match="ran out"):
        range_test(model, opt, iter(make_data(n=96)), nn.CrossEntropyLoss(), steps=10)
    assert_same_state(before, capture(model, opt))


# -- batches --------------------------------------------------------------------------------------


def test_dict_batches_with_step_fn() -> None:
    model, opt = _setup()
    data = [{"x": x, "y": y} for x, y in make_data()]

    def step_fn(m: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.cross_entropy(m(batch["x"]), batch["y"])

    res = range_test(model, opt, data, step_fn=step_fn, end_lr=1.0, steps=15)
    assert len(res.losses) == 15 and np.all(np.isfinite(res.losses))


def test_multi_input_tuples() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(8, 3)
            self.b = nn.Linear(8, 3)

        def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
            return self.a(x1) + self.b(x2)

    torch.manual_seed(0)
    model = Two()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(x, x * 2, y) for x, y in make_data()]
    res = range_test(model, opt, data, nn.CrossEntropyLoss(), end_lr=1.0, steps=10, extend=1)
    assert len(res.losses) == 10


# -- accumulation and AMP scaler ------------------------------------------------------------------


def test_gradient_accumulation_matches_a_big_batch() -> None:
    data = make_data(n=256, batch=16)
    big = [
        (torch.cat([data[i][0], data[i + 1][0]]), torch.cat([data[i][1], data[i + 1][1]]))
        for i in range(0, len(data), 2)
    ]
    model_a, opt_a = _setup()
    res_a = range_test(
        model_a,
        opt_a,
        data,
        nn.CrossEntropyLoss(),
        end_lr=0.5,
        steps=16,
        accumulation_steps=2,
        smoothing=0.0,
    )
    model_b, opt_b = _setup()
    res_b = range_test(model_b, opt_b, big, nn.CrossEntropyLoss(), end_lr=0.5, steps=16)
    assert len(res_a.losses) == 16
    np.testing.assert_allclose(res_a.losses, res_b.losses, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(res_a.lrs, res_b.lrs)


def test_scaler_skipped_steps_do_not_advance_the_lr() -> None:
    model, opt = _setup()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    micro = {"n": 0}
    poison = {3, 4, 9}

    def hook(grad: torch.Tensor) -> torch.Tensor:
        micro["n"] += 1
        return torch.full_like(grad, math.inf) if micro["n"] in poison else grad

    handle = model[0].weight.register_hook(hook)
    rec = _LrRecorder(opt)
    before = capture(model, opt, scaler)
    res = range_test(
        model,
        opt,
        make_data(),
        nn.CrossEntropyLoss(),
        end_lr=1e-2,
        steps=12,
        scaler=scaler,
        extend=1,
    )
    handle.remove()
    rec.handle.remove()
    assert micro["n"] == 12 + len(poison)
    assert len(rec.lrs) == 12  # real steps only
    np.testing.assert_allclose([r[0] for r in rec.lrs], lr_sequence(1e-7, 1e-2, 12))
    assert len(res.losses) == 12
    assert_same_state(before, capture(model, opt, scaler))


def test_scaler_that_always_skips_stops_with_nan() -> None:
    model, opt = _setup()
    scaler = torch.amp.GradScaler("cpu")
    handle = model[0].weight.register_hook(lambda g: torch.full_like(g, math.nan))
    res = range_test(model, opt, make_data(), nn.CrossEntropyLoss(), steps=10, scaler=scaler)
    handle.remove()
    assert res.stop_reason == "nan"
    assert len(res.losses) == 0
    assert res.suggestion is None


# -- repeats, validation, progress ----------------------------------------------------------------


def test_repeats_permute_a_list_and_average() -> None:
    model, opt = _setup()
    res = range_test(
        model, opt, make_data(), nn.CrossEntropyLoss(), end_lr=1.0, steps=20, repeats=3
    )
    assert len(res.repeat_losses) == 3
    assert len(res.repeat_stop_reasons) == 3
    n = len(res.losses)
    mean = np.mean([c[:n] for c in res.repeat_losses], axis=0)
    np.testing.assert_allclose(res.losses, mean)
    assert not np.allclose(res.repeat_losses[0][:n], res.repeat_losses[1][:n])
    # the first repeat is the plain, unpermuted sweep
    model2, opt2 = _setup()
    single = range_test(model2, opt2, make_data(), nn.CrossEntropyLoss(), end_lr=1.0, steps=20)
    np.testing.assert_allclose(res.repeat_losses[0], single.losses)


def test_val_data_and_metric() -> None:
    model, opt = _setup()
    val = make_data(n=64, seed=1)

    def accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
        return float((out.argmax(1) == y).float().mean())

    res = range_test(
        model,
        opt,
        make_data(),
        nn.CrossEntropyLoss(),
        end_lr=1.0,
        steps=15,
        val_data=val,
        metric_fn=accuracy,
    )
    assert res.val_losses is not None and res.metrics is not None
    assert len(res.val_losses) == len(res.metrics) == len(res.losses)
    assert np.all((res.metrics >= 0) & (res.metrics <= 1))
    np.testing.assert_allclose(res.smoothed, ema(res.val_losses, 0.98))
    # the first recorded validation loss is that of the model after one tiny step
    model2, _ = _setup()
    with torch.no_grad():
        first = np.mean([nn.functional.cross_entropy(model2(x), y).item() for x, y in val])
    assert res.val_losses[0] == pytest.approx(first, rel=1e-4)


def test_progress_callback() -> None:
    model, opt = _setup()
    calls: list[tuple[int, int, float, float]] = []
    range_test(
        model,
        opt,
        make_data(),
        nn.CrossEntropyLoss(),
        end_lr=1e-2,
        steps=10,
        repeats=2,
        progress=lambda *a: calls.append(a),
    )
    assert [c[0] for c in calls] == list(range(1, 21))
    assert all(c[1] == 20 for c in calls)
    assert calls[0][2] == pytest.approx(1e-7)


def test_result_type() -> None:
    model, opt = _setup()
    res = range_test(
        model, opt, make_data(), nn.CrossEntropyLoss(), end_lr=1e-2, steps=10, extend=1
    )
    assert isinstance(res, RangeTestResult)
    assert res.start_lr == 1e-7 and res.end_lr == 1e-2 and res.mode == "exp"


# -- bad input: a clear ValueError and nothing changed --------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start_lr": 1.0, "end_lr": 1.0}, "smaller than end_lr"),
        ({"start_lr": 0.0}, "> 0"),
        ({"start_lr": -1.0, "mode": "linear"}, ">= 0"),
        ({"steps": 9}, "steps"),
        ({"mode": "cosine"}, "mode"),
        ({"smoothing": 1.0}, "smoothing"),
        ({"diverge": 1.0}, "diverge"),
        ({"accumulation_steps": 0}, "accumulation_steps"),
        ({"repeats": 0}, "repeats"),
        ({"snapshot": "gpu"}, "snapshot"),
        ({"metric_fn": lambda o, t: 0.0}, "val_data"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    model, opt = _setup()
    before = capture(model, opt)
    with pytest.raises(ValueError, match=match):
        range_test(model, opt, make_data(), nn.CrossEntropyLoss(), **kwargs)
    assert_same_state(before, capture(model, opt))


def test_empty_data() -> None:
    model, opt = _setup()
    with pytest.raises(ValueError, match="empty"):
        range_test(model, opt, [], nn.CrossEntropyLoss())


def test_empty_data_that_draws_random_numbers_leaves_rng_alone() -> None:
    class Empty:
        def __iter__(self) -> Any:
            torch.rand(3)  # like a shuffling sampler
            np.random.rand()
            return iter([])

    model, opt = _setup()
    loader = Empty()
    before = capture(model, opt)
    with pytest.raises(ValueError, match="empty"):
        range_test(model, opt, loader, nn.CrossEntropyLoss())
    assert_same_state(before, capture(model, opt))


def test_missing_loss_fn_and_bad_batches() -> None:
    model, opt = _setup()
    with pytest.raises(ValueError, match="loss_fn"):
        range_test(model, opt, make_data())
    with pytest.raises(ValueError, match="step_fn"):
        range_test(model, opt, [{"x": torch.zeros(2, 8)}], nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match="tuples"):
        range_test(model, opt, [torch.zeros(2, 8)], nn.CrossEntropyLoss())


def test_optimizer_params_not_in_model() -> None:
    model, _ = _setup()
    other = nn.Linear(2, 2)
    opt = torch.optim.SGD([*model.parameters(), *other.parameters()], lr=0.1)
    with pytest.raises(ValueError, match="not parameters of the model"):
        range_test(model, opt, make_data(), nn.CrossEntropyLoss())


def test_model_without_parameters() -> None:
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="no parameters"):
        range_test(nn.ReLU(), opt, make_data(), nn.CrossEntropyLoss())


def test_non_scalar_step_fn_loss() -> None:
    model, opt = _setup()
    before = capture(model, opt)

    def step_fn(m: nn.Module, batch: Any) -> torch.Tensor:
        return nn.functional.cross_entropy(m(batch[0]), batch[1], reduction="none")

    with pytest.raises(ValueError, match="scalar"):
        range_test(model, opt, make_data(), step_fn=step_fn)
    assert_same_state(before, capture(model, opt))


def test_repeats_of_different_lengths_share_the_common_range() -> None:
    model, opt = _setup()
    calls = {"n": 0}

    def step_fn(m: nn.Module, batch: Any) -> torch.Tensor:
        calls["n"] += 1
        loss = nn.functional.cross_entropy(m(batch[0]), batch[1])
        return loss * math.nan if calls["n"] == 12 else loss

    res = range_test(
        model, opt, make_data(), step_fn=step_fn, end_lr=1.0, steps=20, repeats=2, extend=1
    )
    assert res.repeat_stop_reasons == ["nan", "completed"]
    assert res.stop_reason == "nan"
    assert len(res.lrs) == len(res.losses) == 12
    assert [len(c) for c in res.repeat_losses] == [12, 12]
    assert res.suggest("minimum").lr is not None


@pytest.mark.parametrize(
    "val_data",
    [[], torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(0, 8)))],
    ids=["list", "DataLoader"],
)
def test_empty_val_data_is_named_before_anything_changes(val_data: Any) -> None:
    model, opt = _setup()
    before = capture(model, opt)
    with pytest.raises(ValueError, match=r"^val_data is empty: .*leave val_data out"):
        range_test(model, opt, make_data(), nn.CrossEntropyLoss(), val_data=val_data)
    assert_same_state(before, capture(model, opt))
