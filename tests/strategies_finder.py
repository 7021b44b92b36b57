"""Shared pieces for the finder tests: synthetic range-test curves (plain and as Hypothesis
strategies), tiny models and data, and a full capture of training state for restore checks."""

from __future__ import annotations

import copy
import random
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from torch import nn

# -------------------------------------------------------------------------------------------------
# Synthetic curves (x = log10(lr))


def exp_lrs(n: int = 100, start: float = 1e-7, end: float = 10.0) -> np.ndarray:
    return start * (end / start) ** (np.arange(n) / (n - 1))


def u_curve(
    lrs: np.ndarray,
    *,
    start: float = 2.3,
    bottom: float = 0.4,
    descent_at: float = -2.0,
    width: float = 0.35,
    rise_at: float = -0.3,
    rise_width: float = 0.15,
) -> np.ndarray:
    """Flat at ``start``, a sigmoid descent to ``bottom`` centred at 10**descent_at, then an
    exponential blow-up that starts around 10**rise_at."""
    x = np.log10(lrs)
    fall = (start - bottom) / (1.0 + np.exp(-(x - descent_at) / width))
    rise = np.exp((x - rise_at) / rise_width) * 0.05
    return start - fall + rise


def with_noise(y: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    return y + np.random.default_rng(seed).normal(0.0, sigma, y.shape)


@st.composite
def curves(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Range-test-like curves with a clear descent: random position, depth, width and noise."""
    n = draw(st.integers(40, 200))
    lrs = exp_lrs(n, 10.0 ** draw(st.floats(-8, -6)), 10.0 ** draw(st.floats(0, 1.5)))
    descent = draw(st.floats(-4.5, -2.0))
    start = draw(st.floats(0.5, 5.0))
    depth = draw(st.floats(0.3, 0.9)) * start
    y = u_curve(
        lrs,
        start=start,
        bottom=start - depth,
        descent_at=descent,
        width=draw(st.floats(0.15, 0.6)),
        rise_at=descent + draw(st.floats(1.0, 2.5)),
    )
    sigma = draw(st.floats(0.002, 0.05)) * depth
    return lrs, with_noise(y, sigma, draw(st.integers(0, 1000)))


# -------------------------------------------------------------------------------------------------
# Tiny models and data


def make_data(
    n: int = 512, d: int = 8, classes: int = 3, batch: int = 32, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, classes, generator=g)
    y = (x @ w).argmax(dim=1)
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


class BNNet(nn.Module):
    """Linear -> BatchNorm -> ReLU -> Dropout -> Linear, with a non-persistent buffer."""

    def __init__(self, d: int = 8, hidden: int = 16, classes: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(hidden, classes)
        self.register_buffer("calls", torch.zeros(()), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fc2(self.drop(torch.relu(self.bn(self.fc1(x)))))


def mlp(d: int = 8, hidden: int = 16, classes: int = 3) -> nn.Module:
    return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def pretrain(model: nn.Module, opt: torch.optim.Optimizer, data: list[Any], steps: int = 3) -> None:
    """A few real steps so the optimizer has state (Adam moments, momentum buffers)."""
    loss_fn = nn.CrossEntropyLoss()
    for x, y in data[:steps]:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()


# -------------------------------------------------------------------------------------------------
# Capturing everything a range test may touch


def capture(model: nn.Module, opt: torch.optim.Optimizer, scaler: Any = None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "params": [p.detach().clone() for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "buffers": {
            f"{mname}.{bname}": (None if b is None else b.clone())
            for mname, m in model.named_modules()
            for bname, b in m._buffers.items()
        },
        "training": [m.training for m in model.modules()],
        "opt": copy.deepcopy(opt.state_dict()),
        "opt_state_len": len(opt.state),
        "groups": [
            {k: copy.deepcopy(v) for k, v in g.items() if k != "params"} for g in opt.param_groups
        ],
        "py_rng": random.getstate(),
        "np_rng": np.random.get_state(),
        "torch_rng": torch.get_rng_state().clone(),
    }
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
        state["scaler_lazy"] = scaler._scale is None
    return state


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def assert_same_state(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before.keys() == after.keys()
    for key in before:
        assert _same(before[key], after[key]), f"{key} changed"
