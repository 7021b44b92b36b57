"""The built-in tasks' models. Each builder returns a freshly initialized ``nn.Module`` drawn from
the global torch RNG; :meth:`lrkit.tasks.Task.make_model` seeds it."""

from __future__ import annotations

from torch import nn

__all__ = ["digits_cnn", "mlp", "mnist1d_cnn", "mnist1d_cnn_plain"]


def mlp(n_in: int, hidden: int, n_out: int) -> nn.Module:
    """Two hidden ReLU layers of width ``hidden``: ``n_in -> hidden -> hidden -> n_out``."""
    return nn.Sequential(
        nn.Linear(n_in, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_out),
    )


def mnist1d_cnn() -> nn.Module:
    """A 4-layer 1-D CNN with BatchNorm for ``(N, 40)`` sequences, 10 classes."""
    c = 32

    def block(c_in: int, stride: int, kernel: int) -> list[nn.Module]:
        return [
            nn.Conv1d(c_in, c, kernel, stride=stride, padding=kernel // 2),
            nn.BatchNorm1d(c),
            nn.ReLU(),
        ]

    return nn.Sequential(
        nn.Unflatten(1, (1, 40)),  # (N, 40) -> (N, 1, 40)
        *block(1, 1, 5),  # length 40
        *block(c, 2, 3),  # length 20
        *block(c, 2, 3),  # length 10
        *block(c, 1, 3),  # length 10
        nn.Flatten(),
        nn.Linear(c * 10, 10),
    )


def mnist1d_cnn_plain(channels: int = 25) -> nn.Module:
    """The CNN of the MNIST-1D paper (Greydanus 2020, arXiv 2011.14439) for ``(N, 40)`` sequences:
    three 1-D convolutions of ``channels`` channels (kernels 5, 3, 3; stride 2; padding 1), ReLU,
    no normalization, and a linear head on the flattened ``channels x 5`` features, 10 classes."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 40)),  # (N, 40) -> (N, 1, 40)
        nn.Conv1d(1, channels, 5, stride=2, padding=1),  # length 19
        nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1),  # length 10
        nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1),  # length 5
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(channels * 5, 10),
    )


def digits_cnn() -> nn.Module:
    """A 3-layer 2-D CNN with BatchNorm for ``(N, 1, 8, 8)`` images, 10 classes."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),  # 8x8
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 4x4
        nn.Conv2d(32, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )
