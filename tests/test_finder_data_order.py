"""Every curve of a comparison sees the batches it is meant to see: a range test leaves a data
loader's private generator as it found it, so runs from the same state see the same order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrkit.finder import momentum_test, range_test, weight_decay_test
from strategies_finder import make_data, mlp

FAST = {"steps": 15, "end_lr": 1.0}

pytestmark = pytest.mark.usefixtures("one_thread")


def _loader(**kwargs: object) -> DataLoader[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 8, generator=g)
    y = torch.randint(0, 3, (96,), generator=g)
    shuffle = torch.Generator().manual_seed(1)
    return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=shuffle, **kwargs)


def _setup() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = mlp()
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def test_range_test_leaves_the_loader_generator_as_it_found_it() -> None:
    model, opt = _setup()
    loader = _loader()
    assert loader.generator is not None
    before = loader.generator.get_state()
    first = range_test(model, opt, loader, nn.functional.cross_entropy, **FAST)
    assert torch.equal(loader.generator.get_state(), before)
    second = range_test(model, opt, loader, nn.functional.cross_entropy, **FAST)
    np.testing.assert_array_equal(first.losses, second.losses)


def test_sampler_generator_is_restored_too() -> None:
    model, opt = _setup()
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    sampler = torch.utils.data.RandomSampler(range(64), generator=g)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, sampler=sampler)
    before = g.get_state()
    range_test(model, opt, loader, nn.functional.cross_entropy, **FAST)
    assert torch.equal(g.get_state(), before)


def test_each_pass_over_a_distributed_sampler_draws_the_next_epoch_and_the_epoch_is_restored() -> (
    None
):
    model, opt = _setup()
    n, batch = 16, 4
    x, y = torch.randn(n, 8), torch.arange(n) % 3
    ids = torch.arange(n)
    sampler = torch.utils.data.DistributedSampler(range(n), num_replicas=1, rank=0, seed=5)
    sampler.set_epoch(7)
    loader = DataLoader(TensorDataset(x, y, ids), batch_size=batch, sampler=sampler)
    seen: list[list[int]] = []

    def step(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        xb, yb, ib = batch
        seen.append(ib.tolist())
        return nn.functional.cross_entropy(model(xb), yb)

    range_test(model, opt, loader, step_fn=step, steps=3 * n // batch, end_lr=1.0, extend=1)
    flat = [i for ids in seen for i in ids]
    passes = [flat[k : k + n] for k in range(0, len(flat), n)]
    assert len(passes) == 3 and all(sorted(p) == list(range(n)) for p in passes)
    expected = []
    for epoch in (7, 8, 9):  # the sampler's own order for each epoch, in turn
        sampler.set_epoch(epoch)
        expected.append(list(sampler))
    sampler.set_epoch(7)
    assert passes == expected and passes[0] != passes[1]
    range_test(model, opt, loader, step_fn=step, steps=3 * n // batch, end_lr=1.0, extend=1)
    assert sampler.epoch == 7


def test_repeats_see_different_orders_and_the_same_ones_each_time() -> None:
    model, opt = _setup()
    loader = _loader()
    a = range_test(model, opt, loader, nn.functional.cross_entropy, repeats=2, **FAST)
    b = range_test(model, opt, loader, nn.functional.cross_entropy, repeats=2, **FAST)
    assert not np.array_equal(a.repeat_losses[0], a.repeat_losses[1])
    for ra, rb in zip(a.repeat_losses, b.repeat_losses, strict=True):
        np.testing.assert_array_equal(ra, rb)


def test_identical_weight_decays_give_identical_curves() -> None:
    model, opt = _setup()
    res = weight_decay_test(
        model, opt, _loader(), nn.functional.cross_entropy, weight_decays=(0, 0, 0), **FAST
    )
    for other in res.results[1:]:
        np.testing.assert_array_equal(other.losses, res.results[0].losses)


def test_identical_momentums_give_identical_curves() -> None:
    model, opt = _setup()
    res = momentum_test(
        model, opt, _loader(), nn.functional.cross_entropy, momentums=(0.9, 0.9), **FAST
    )
    np.testing.assert_array_equal(res.results[0].losses, res.results[1].losses)


@pytest.mark.slow
def test_cli_weight_decay_test_with_identical_values_gives_identical_curves(
    tmp_path: Path,
) -> None:
    args = ["find", "--task", "wine-mlp", "--test", "weight-decay", "--values", "0,0,0"]
    proc = subprocess.run(
        [sys.executable, "-m", "lrkit", *args, "--steps", "40", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((tmp_path / "out" / "weight_decay_test.json").read_text())
    curves = [r["losses"] for r in saved["results"]]
    assert len(curves) == 3
    assert curves[1] == curves[0] and curves[2] == curves[0]


# -- a sweep that finds no clear descent extends itself -----------------------------------------


class _SlowLearner(nn.Module):
    """A one-weight model whose gradient is scaled down: it learns only over many steps."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x * 0.03


def _slow_data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(40):
        x = torch.randn(32, 1, generator=g)
        out.append((x, 3 * x + 0.5 * torch.randn(32, 1, generator=g)))
    return out


def test_a_sweep_without_clear_descent_extends_itself_once() -> None:
    model = _SlowLearner()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    kwargs = {"steps": 40, "start_lr": 1e-3, "end_lr": 30.0}
    short = range_test(model, opt, _slow_data(), nn.functional.mse_loss, extend=1, **kwargs)
    assert short.suggestion is None and short.suggestion_reason.startswith("no clear descent")
    assert short.extended_from is None and len(short.lrs) == 40
    longer = range_test(model, opt, _slow_data(), nn.functional.mse_loss, **kwargs)
    assert longer.extended_from == 40 and len(longer.lrs) == 120
    assert longer.suggestion is not None and 1.0 < longer.suggestion < 30.0
    assert longer.lrs[0] == 1e-3 and longer.lrs[-1] == 30.0
    assert float(model.w.detach()) == 0.0 and not opt.state  # restored after both sweeps


def test_a_sweep_with_a_clear_descent_is_not_extended() -> None:
    model, opt = _setup()
    res = range_test(model, opt, make_data(), nn.functional.cross_entropy, steps=60)
    assert res.suggestion is not None
    assert res.extended_from is None and len(res.lrs) <= 60
