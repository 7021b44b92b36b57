"""A distribution of training tasks for judging learning-rate finders on models they were not
shaped on (`benchmarks/distribution.py`).

:func:`draw` generates task specifications from a seeded generator: a model family (MLPs with
and without BatchNorm, LayerNorm or dropout, residual MLPs, linear models, 1-D and 2-D CNNs with
and without BatchNorm, a 1-D ResNet, GRU/LSTM classifiers, an LSTM on a long-dependency
regression, transformer encoders, causal character-level transformer and GRU language models on
the Python standard library's source, embeddings and matrix factorisation, autoencoders,
fine-tuning from a backbone pretrained here, and a long-horizon family), a dataset compatible
with it (scikit-learn's bundled sets and generators at drawn sizes and noise, MNIST-1D variants,
label noise, text), an optimizer family (SGD with momentum 0.9, AdamW, Adam, RMSprop, each with
or without weight decay), a run length (200 to 20,000 updates, log-uniform within the family's
range) and a batch size (16 to 512, at most a quarter of the training set).

Every task is cheap on one CPU thread (a short run costs a few seconds; the long-horizon family
more). A task's name spells its draw, so a name is its own specification.

**The split** (:func:`half`) is a fixed rule on the names alone: sorted by the SHA-256 of their
names, the first half of the tasks is the design half, the rest the test half. It was fixed
before any task was trained; a fresh test half comes from :func:`draw` with another ``seed``
(new names, same rule, its test half taken).

Importing the module registers every task of :data:`TASKS` with :func:`lrkit.tasks.register_task`,
so ``get_task(name)`` finds it in any process that imported this module.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import math
import random
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lrkit._threads import torch_threads
from lrkit.tasks import Task, TaskData, accuracy, r2_score, register_task
from lrkit.tasks._base import cross_entropy
from lrkit.tasks._base import mse as _mse
from lrkit.tasks.data import digits_data, mnist1d_data, table_data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heldout_tasks import (
    _mlp,
    _PatchAttention,
    _ResBlock1d,
    _ResidualMLP,
    _token_accuracy,
    _token_cross_entropy,
    text_windows,
)

__all__ = ["SEED", "TASKS", "Spec", "draw", "half", "spec_of"]

SEED = 21
"""The generator's seed for :data:`TASKS` (21 is the issue's number)."""
COUNT = 64
"""Tasks drawn."""
DEFAULT_LR = {"sgd": 0.1, "adamw": 1e-3, "adam": 1e-3, "rmsprop": 1e-3}
"""The optimizer's usual learning rate: the centre of the ground-truth grid and the peer
"usual LR"."""
WEIGHT_DECAY = {"sgd": 5e-4, "adamw": 0.05, "adam": 5e-4, "rmsprop": 5e-4}
"""Weight decay of a task drawn with it (L2 for all but AdamW, where it is decoupled)."""


@dataclasses.dataclass(frozen=True)
class Spec:
    """One drawn task: what its name spells."""

    index: int
    family: str
    data: str
    optimizer: str
    weight_decay: float
    steps: int
    batch_size: int

    @property
    def name(self) -> str:
        wd = "-wd" if self.weight_decay else ""
        return (
            f"d{self.index:02d}-{self.family}-{self.data}-{self.optimizer}{wd}"
            f"-b{self.batch_size}-n{self.steps}"
        )

    @property
    def default_lr(self) -> float:
        return DEFAULT_LR[self.optimizer]


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def half(name: str) -> str:
    """``"design"`` or ``"test"``: the tasks of :data:`TASKS` sorted by the SHA-256 of their
    names; the first half (rounded down) is the design half."""
    if name not in TASKS:
        raise ValueError(f"{name!r} is not a task of the distribution")
    return "design" if name in _design() else "test"


@functools.cache
def _design() -> frozenset[str]:
    ranked = sorted(TASKS, key=_digest)
    return frozenset(ranked[: len(ranked) // 2])


# -- data ---------------------------------------------------------------------------------------


def _sk(name: str) -> object:
    import sklearn.datasets

    return getattr(sklearn.datasets, name)


@functools.cache
def _tabular(data: str) -> TaskData:
    """Tabular sets by name: ``<source>[_<size>][_noise<pct>][_flip<pct>]``."""
    source, *opts = data.split("_")
    size = next((int(o) for o in opts if o.isdigit()), 3000)
    noise = next((int(o[5:]) / 100 for o in opts if o.startswith("noise")), 0.2)
    flip = next((int(o[4:]) / 100 for o in opts if o.startswith("flip")), 0.0)
    classify = True
    if source == "moons":
        x, y = _sk("make_moons")(n_samples=size, noise=noise, random_state=1)
    elif source == "circles":
        x, y = _sk("make_circles")(n_samples=size, noise=noise / 2, factor=0.5, random_state=2)
    elif source == "blobs":
        x, y = _sk("make_classification")(
            n_samples=size, n_features=20, n_informative=10, n_redundant=4, n_classes=5,
            class_sep=1.0 + noise, random_state=3,
        )  # fmt: skip
    elif source == "hastie":
        x, y = _sk("make_hastie_10_2")(n_samples=size, random_state=4)
        y = (y > 0).astype(np.int64)
    elif source == "digits":
        x, y = _sk("load_digits")(return_X_y=True)
    elif source == "cancer":
        x, y = _sk("load_breast_cancer")(return_X_y=True)
    elif source == "wine":
        x, y = _sk("load_wine")(return_X_y=True)
    elif source == "iris":
        x, y = _sk("load_iris")(return_X_y=True)
    elif source in ("friedman1", "friedman2", "friedman3", "regression", "diabetes"):
        classify = False
        if source == "diabetes":
            x, y = _sk("load_diabetes")(return_X_y=True)
        elif source == "regression":
            x, y = _sk("make_regression")(
                n_samples=size, n_features=30, n_informative=15, noise=100 * noise, random_state=6
            )
        else:
            kw = {"n_samples": size, "noise": noise * (1 if source == "friedman1" else 0.1)}
            x, y = _sk(f"make_{source}")(**kw, random_state=5)
    else:
        raise ValueError(f"unknown tabular data {data!r}")
    d = table_data(np.asarray(x), np.asarray(y), classify=classify)
    if flip:
        d = _flip_labels(d, flip, int(d.y_train.max()) + 1)
    return d


def _flip_labels(d: TaskData, fraction: float, classes: int) -> TaskData:
    """A fraction of the training labels replaced by a uniformly drawn class (fixed seed)."""
    g = torch.Generator().manual_seed(7)
    flip = torch.rand(len(d.y_train), generator=g) < fraction
    noisy = torch.where(flip, torch.randint(classes, d.y_train.shape, generator=g), d.y_train)
    return TaskData(d.x_train, noisy, d.x_val, d.y_val)


@functools.cache
def _mnist1d(data: str) -> TaskData:
    """MNIST-1D variants: ``mnist1d[_noise<pct>][_flip<pct>][_<size>]``; noise scales the
    correlated noise of the generator (default 25%)."""
    import mnist1d.data

    opts = data.split("_")[1:]
    noise = next((int(o[5:]) / 100 for o in opts if o.startswith("noise")), None)
    flip = next((int(o[4:]) / 100 for o in opts if o.startswith("flip")), 0.0)
    size = next((int(o) for o in opts if o.isdigit()), None)
    if noise is None and size is None:
        d = mnist1d_data()
    else:
        args = mnist1d.data.get_dataset_args()
        if noise is not None:
            args.corr_noise_scale = noise
        if size is not None:
            args.num_samples = size
        state = (random.getstate(), np.random.get_state())
        try:
            ds = mnist1d.data.make_dataset(args)
        finally:
            random.setstate(state[0])
            np.random.set_state(state[1])
        d = TaskData(
            torch.tensor(ds["x"], dtype=torch.float32),
            torch.tensor(ds["y"], dtype=torch.int64),
            torch.tensor(ds["x_test"], dtype=torch.float32),
            torch.tensor(ds["y_test"], dtype=torch.int64),
        )
    return _flip_labels(d, flip, 10) if flip else d


TEXT_SEQ = 32
TEXT_VOCAB = 64


@functools.cache
def _stdlib_text() -> TaskData:
    """Characters of the Python standard library's source (a fixed list of modules, 120,000
    characters): the 63 most common characters keep their own code, the rest share one. Windows
    of 33 characters, 16 apart; the first 85% trains, the rest validates."""
    root = Path(sysconfig.get_paths()["stdlib"])
    text = ""
    for name in ("textwrap", "fractions", "string", "heapq", "bisect", "shlex", "calendar"):
        text += (root / f"{name}.py").read_text(encoding="utf-8")
        if len(text) >= 120_000:
            break
    text = text[:120_000]
    counts: dict[str, int] = {}
    for c in text:
        counts[c] = counts.get(c, 0) + 1
    common = sorted(counts, key=lambda c: (-counts[c], c))[: TEXT_VOCAB - 1]
    index = {c: i for i, c in enumerate(common)}
    codes = np.array([index.get(c, TEXT_VOCAB - 1) for c in text])
    cut = int(0.85 * len(codes))
    xt, yt = text_windows(codes[:cut], TEXT_SEQ)
    xv, yv = text_windows(codes[cut:], TEXT_SEQ)
    return TaskData(xt, yt, xv, yv)


@functools.cache
def _adding(size: int) -> TaskData:
    """The adding problem (Hochreiter & Schmidhuber 1997), length 30: two marked numbers in a
    sequence of uniform noise; the target is their sum, standardized. Inputs ``(N, 30, 2)``."""
    g = torch.Generator().manual_seed(11)
    n = size + size // 4
    values = torch.rand(n, 30, generator=g)
    marks = torch.zeros(n, 30)
    first = torch.randint(0, 15, (n,), generator=g)
    second = torch.randint(15, 30, (n,), generator=g)
    marks[torch.arange(n), first] = 1.0
    marks[torch.arange(n), second] = 1.0
    y = (values * marks).sum(dim=1)
    y = (y - y[:size].mean()) / y[:size].std()
    x = torch.stack([values, marks], dim=-1)
    return TaskData(x[:size], y[:size], x[size:], y[size:])


RATINGS_USERS, RATINGS_ITEMS = 300, 200


@functools.cache
def _ratings(noise: float) -> TaskData:
    """A rank-4 ratings matrix (300 users × 200 items) with Gaussian noise; 12,000 observed
    (user, item) pairs train, 3,000 validate; targets standardized. Inputs ``(N, 2)`` codes."""
    g = torch.Generator().manual_seed(13)
    u = torch.randn(RATINGS_USERS, 4, generator=g)
    v = torch.randn(RATINGS_ITEMS, 4, generator=g)
    pairs = torch.stack(
        [
            torch.randint(RATINGS_USERS, (15_000,), generator=g),
            torch.randint(RATINGS_ITEMS, (15_000,), generator=g),
        ],
        dim=1,
    )
    y = (u[pairs[:, 0]] * v[pairs[:, 1]]).sum(1) + noise * torch.randn(15_000, generator=g)
    y = (y - y[:12_000].mean()) / y[:12_000].std()
    return TaskData(pairs[:12_000], y[:12_000], pairs[12_000:], y[12_000:])


def _autoencode(d: TaskData) -> TaskData:
    x_train, x_val = d.x_train.flatten(1), d.x_val.flatten(1)
    return TaskData(x_train, x_train, x_val, x_val)


def load(data: str) -> TaskData:
    """The dataset a spec's ``data`` names."""
    if data.startswith("mnist1d"):
        return _mnist1d(data)
    if data == "digits8x8":
        return digits_data()
    if data == "stdlib":
        return _stdlib_text()
    if data.startswith("adding"):
        return _adding(int(data.split("_")[1]))
    if data.startswith("ratings"):
        return _ratings(int(data.split("_")[1][5:]) / 100)
    if data.startswith("ae-"):
        return _autoencode(load(data[3:]))
    return _tabular(data)


# -- models -------------------------------------------------------------------------------------


class _SeqRNN(nn.Module):
    """A GRU or LSTM over a sequence (``(N, L)`` scalars or ``(N, L, F)``), a linear head on the
    last state."""

    def __init__(self, cell: str, n_in: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.rnn = (nn.GRU if cell == "gru" else nn.LSTM)(n_in, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2:
            x = x.unsqueeze(-1)
        out, _ = self.rnn(x)
        y = self.head(out[:, -1])
        return y.squeeze(-1) if y.shape[-1] == 1 else y


class _CharLM(nn.Module):
    """A causal character model: embedding, then a GRU or pre-norm causal transformer layers
    with learned positions, a linear head at every position."""

    def __init__(self, kind: str, width: int, layers: int) -> None:
        super().__init__()
        self.kind = kind
        self.embed = nn.Embedding(TEXT_VOCAB, width)
        if kind == "gru":
            self.body: nn.Module = nn.GRU(width, width, batch_first=True)
        else:
            self.pos = nn.Parameter(torch.randn(TEXT_SEQ, width) * 0.02)
            layer = nn.TransformerEncoderLayer(
                width, 4, 2 * width, dropout=0.0, batch_first=True, norm_first=True
            )
            self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.register_buffer(
                "mask", nn.Transformer.generate_square_subsequent_mask(TEXT_SEQ), persistent=False
            )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, TEXT_VOCAB)

    def forward(self, x: Tensor) -> Tensor:
        h = self.embed(x)
        if self.kind == "gru":
            h, _ = self.body(h)
        else:
            h = self.body(h + self.pos[: x.shape[1]], mask=self.mask, is_causal=True)
        return self.head(self.norm(h))


class _Factorisation(nn.Module):
    """User and item embeddings (rank 8) with biases; the prediction is their dot product."""

    def __init__(self) -> None:
        super().__init__()
        self.u = nn.Embedding(RATINGS_USERS, 8)
        self.v = nn.Embedding(RATINGS_ITEMS, 8)
        self.bu = nn.Embedding(RATINGS_USERS, 1)
        self.bv = nn.Embedding(RATINGS_ITEMS, 1)
        for e in (self.u, self.v):
            nn.init.normal_(e.weight, std=0.3)
        for e in (self.bu, self.bv):
            nn.init.zeros_(e.weight)

    def forward(self, x: Tensor) -> Tensor:
        u, v = x[:, 0], x[:, 1]
        return (self.u(u) * self.v(v)).sum(1) + self.bu(u).squeeze(1) + self.bv(v).squeeze(1)


class _RatingsMLP(nn.Module):
    """User and item embeddings (16 each) concatenated into a two-layer MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.u = nn.Embedding(RATINGS_USERS, 16)
        self.v = nn.Embedding(RATINGS_ITEMS, 16)
        self.mlp = _mlp([32, 64, 1])

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(torch.cat([self.u(x[:, 0]), self.v(x[:, 1])], 1)).squeeze(1)


def _dropout_mlp(sizes: list[int], p: float) -> nn.Module:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes[:-1]):
        layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(p)]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def _cnn1d(width: int, bn: bool, n_out: int = 10) -> nn.Module:
    def block(a: int, b: int, stride: int) -> list[nn.Module]:
        k, pad = (3, 1) if stride > 1 else (5, 2)
        conv = nn.Conv1d(a, b, k, stride=stride, padding=pad)
        return [conv, *([nn.BatchNorm1d(b)] if bn else []), nn.ReLU()]

    return nn.Sequential(
        nn.Unflatten(1, (1, 40)),
        *block(1, width, 1),
        *block(width, width, 2),
        *block(width, width, 2),
        nn.Flatten(),
        nn.Linear(width * 10, n_out),
    )


def _cnn2d(width: int, bn: bool) -> nn.Module:
    def block(a: int, b: int) -> list[nn.Module]:
        return [nn.Conv2d(a, b, 3, padding=1), *([nn.BatchNorm2d(b)] if bn else []), nn.ReLU()]

    return nn.Sequential(
        *block(1, width),
        nn.MaxPool2d(2),
        *block(width, 2 * width),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * width, 10),
    )


def _resnet1d(width: int) -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 40)),
        nn.Conv1d(1, width, 5, padding=2, bias=False),
        nn.BatchNorm1d(width),
        nn.ReLU(),
        _ResBlock1d(width, width, 1),
        _ResBlock1d(width, 2 * width, 2),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(2 * width, 10),
    )


@functools.cache
def _backbone_state() -> dict[str, Tensor]:
    """An MLP (40-128-128-10) pretrained here on MNIST-1D digits 0-4 (AdamW 1e-3, 1,500 updates
    of 64, seed 0), for the fine-tuning family; built once per process, deterministically."""
    with torch_threads(1), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = _mlp([40, 128, 128, 10])
        d = _mnist1d("mnist1d")
        keep = d.y_train <= 4
        x, y = d.x_train[keep], d.y_train[keep]
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(0)
        for _ in range(1500):
            i = torch.randint(len(x), (64,), generator=g)
            loss = F.cross_entropy(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _finetuned(frozen: bool) -> nn.Module:
    """The pretrained backbone with a fresh last layer, its first layer frozen or not."""
    model = _mlp([40, 128, 128, 10])
    state = {k: v for k, v in _backbone_state().items() if not k.startswith("4.")}
    model.load_state_dict(state, strict=False)
    if frozen:
        for p in model[0].parameters():
            p.requires_grad_(False)
    return model


@functools.cache
def _finetune_data(data: str) -> TaskData:
    """MNIST-1D digits 5-9 (labels unchanged), optionally a smaller training set."""
    d = _mnist1d("mnist1d")
    train, val = d.y_train >= 5, d.y_val >= 5
    x, y = d.x_train[train], d.y_train[train]
    size = next((int(o) for o in data.split("_")[1:] if o.isdigit()), len(x))
    return TaskData(x[:size], y[:size], d.x_val[val], d.y_val[val])


# -- families -----------------------------------------------------------------------------------

TABULAR_CLASSIFY = (
    "moons_3000_noise30", "circles_2000_noise30", "blobs_4000_noise20", "hastie_3000",
    "digits", "cancer", "wine", "iris", "blobs_2000_noise0_flip30", "moons_1500_noise20_flip20",
)  # fmt: skip
TABULAR_REGRESS = (
    "friedman1_3000_noise100", "friedman2_2000_noise50", "friedman3_2000_noise50",
    "regression_3000_noise20", "diabetes",
)  # fmt: skip
MNIST1D = ("mnist1d", "mnist1d_noise10", "mnist1d_noise40", "mnist1d_flip20", "mnist1d_2500")


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family: the datasets it trains on, its run lengths (log-uniform) and batch sizes,
    and its model for a dataset's input width and outputs."""

    data: tuple[str, ...]
    steps: tuple[int, int]
    batches: tuple[int, ...]
    build: Callable[[int, int, random.Random], Callable[[], nn.Module]]
    weight: float = 1.0


def _width(rng: random.Random) -> int:
    return rng.choice((64, 128, 256))


FAMILIES: dict[str, Family] = {
    "mlp": Family(
        TABULAR_CLASSIFY + TABULAR_REGRESS + MNIST1D, (200, 3000), (16, 32, 64, 128, 256),
        lambda i, o, r: functools.partial(_mlp, [i, *[_width(r)] * r.choice((1, 2, 3)), o]),
        3.0,
    ),
    "mlp-bn": Family(
        TABULAR_CLASSIFY + TABULAR_REGRESS + MNIST1D, (200, 3000), (32, 64, 128, 256),
        lambda i, o, r: functools.partial(_mlp, [i, *[_width(r)] * r.choice((2, 3)), o], norm="bn"),
        2.0,
    ),
    "mlp-ln": Family(
        TABULAR_CLASSIFY + TABULAR_REGRESS + MNIST1D, (200, 3000), (16, 32, 64, 128),
        lambda i, o, r: functools.partial(_mlp, [i, *[_width(r)] * r.choice((2, 3)), o], norm="ln"),
        1.5,
    ),
    "mlp-drop": Family(
        TABULAR_CLASSIFY + MNIST1D, (300, 3000), (32, 64, 128),
        lambda i, o, r: functools.partial(
            _dropout_mlp, [i, *[_width(r)] * r.choice((2, 3)), o], r.choice((0.2, 0.5))
        ),
        1.5,
    ),
    "resmlp-ln": Family(
        TABULAR_CLASSIFY + TABULAR_REGRESS + MNIST1D, (200, 2000), (32, 64, 128),
        lambda i, o, r: functools.partial(
            _ResidualMLP, i, r.choice((64, 128)), r.choice((2, 3)), o
        ),
    ),
    "linear": Family(
        TABULAR_CLASSIFY + TABULAR_REGRESS + MNIST1D, (200, 2000), (16, 32, 64, 128, 512),
        lambda i, o, r: functools.partial(nn.Linear, i, o),
    ),
    "cnn1d": Family(
        MNIST1D, (300, 2500), (32, 64, 128),
        lambda i, o, r: functools.partial(_cnn1d, r.choice((16, 32)), False),
    ),
    "cnn1d-bn": Family(
        MNIST1D, (300, 2500), (32, 64, 128),
        lambda i, o, r: functools.partial(_cnn1d, r.choice((16, 32)), True),
    ),
    "resnet1d-bn": Family(
        MNIST1D, (200, 900), (32, 64, 128), lambda i, o, r: functools.partial(_resnet1d, 16)
    ),
    "cnn2d": Family(
        ("digits8x8",), (200, 1500), (16, 32, 64, 128),
        lambda i, o, r: functools.partial(_cnn2d, r.choice((8, 16)), False),
        0.7,
    ),
    "cnn2d-bn": Family(
        ("digits8x8",), (200, 1500), (16, 32, 64, 128),
        lambda i, o, r: functools.partial(_cnn2d, r.choice((8, 16)), True),
        0.7,
    ),
    "gru": Family(
        MNIST1D, (200, 800), (32, 64, 128),
        lambda i, o, r: functools.partial(_SeqRNN, "gru", 1, r.choice((24, 32)), 10),
    ),
    "lstm-adding": Family(
        ("adding_4000", "adding_8000"), (300, 1500), (32, 64, 128),
        lambda i, o, r: functools.partial(_SeqRNN, "lstm", 2, 32, 1),
        0.7,
    ),
    "transformer": Family(
        MNIST1D, (200, 900), (32, 64, 128), lambda i, o, r: functools.partial(_PatchAttention)
    ),
    "lm-transformer": Family(
        ("stdlib",), (200, 800), (16, 32, 64),
        lambda i, o, r: functools.partial(_CharLM, "transformer", 64, r.choice((1, 2))),
    ),
    "lm-gru": Family(
        ("stdlib",), (200, 700), (16, 32, 64),
        lambda i, o, r: functools.partial(_CharLM, "gru", 64, 1),
        0.7,
    ),
    "embed": Family(
        ("ratings_noise30", "ratings_noise100"), (300, 3000), (32, 64, 128, 256),
        lambda i, o, r: _Factorisation if r.random() < 0.5 else _RatingsMLP,
    ),
    "autoencoder": Family(
        ("ae-digits", "ae-mnist1d"), (300, 3000), (32, 64, 128),
        lambda i, o, r: functools.partial(_mlp, [i, 64, r.choice((8, 16)), 64, i]),
        0.7,
    ),
    "finetune": Family(
        ("ft_2500", "ft_500"), (200, 1500), (16, 32, 64),
        lambda i, o, r: functools.partial(_finetuned, r.random() < 0.5),
    ),
    "long": Family(
        ("moons_3000_noise30", "blobs_4000_noise20", "friedman1_3000_noise100", "mnist1d"),
        (5000, 20000), (16, 32, 64),
        lambda i, o, r: functools.partial(_mlp, [i, 32, o]) if r.random() < 0.5
        else functools.partial(nn.Linear, i, o),
        0.8,
    ),
}  # fmt: skip
"""The model families and what each draws."""

OPTIMIZERS = ("sgd", "adamw", "adam", "rmsprop")
_OPT_WEIGHTS = (0.35, 0.3, 0.2, 0.15)


def _dims(data: TaskData) -> tuple[int, int]:
    x, y = data.x_train, data.y_train
    n_in = int(x.shape[1]) if x.ndim == 2 else int(x.shape[-1])
    if y.dtype == torch.int64 and y.ndim == 1:
        return n_in, int(y.max()) + 1
    return n_in, int(y.shape[1]) if y.ndim == 2 else 1


def _family_data(family: str, data: str) -> TaskData:
    if family == "finetune":
        return _finetune_data(data)
    return load(data)


def draw(seed: int = SEED, count: int = COUNT) -> list[Spec]:
    """``count`` task specifications from the generator seeded by ``seed``: every family twice,
    the rest drawn with the families' weights, in a shuffled order; deterministic."""
    rng = random.Random(seed)
    names = sorted(FAMILIES)
    weights = [FAMILIES[n].weight for n in names]
    # every family twice, then the rest drawn by weight; the order shuffled
    families = [*names, *names]
    families += rng.choices(names, weights, k=max(0, count - len(families)))
    rng.shuffle(families)
    specs = []
    for index, family in enumerate(families[:count]):
        fam = FAMILIES[family]
        data = rng.choice(fam.data)
        optimizer = rng.choices(OPTIMIZERS, _OPT_WEIGHTS)[0]
        wd = WEIGHT_DECAY[optimizer] if rng.random() < 0.4 else 0.0
        lo, hi = fam.steps
        steps = int(round(math.exp(rng.uniform(math.log(lo), math.log(hi))), -1))
        n_train = len(_family_data(family, data).x_train)
        batches = [b for b in fam.batches if b <= n_train // 4] or [min(fam.batches)]
        batch = rng.choice(batches)
        specs.append(Spec(index, family, data, optimizer, wd, steps, batch))
    return specs


@functools.cache
def _model_seed_rng(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[1:5], "little")


def make_task(spec: Spec) -> Task:
    """The :class:`~lrkit.tasks.Task` of a specification (its model's architecture choices are
    drawn from the name's hash, so the same name gives the same task)."""
    data = _family_data(spec.family, spec.data)
    n_in, n_out = _dims(data)
    classify = data.y_train.dtype == torch.int64
    lm = spec.family.startswith("lm-")
    build = FAMILIES[spec.family].build(n_in, n_out, random.Random(_model_seed_rng(spec.name)))
    loss, metric = (cross_entropy, accuracy) if classify else (_mse, r2_score)
    if lm:
        loss, metric = _token_cross_entropy, _token_accuracy
    steps_per_epoch = math.ceil(len(data.x_train) / spec.batch_size)
    return Task(
        name=spec.name,
        description=f"{spec.family} on {spec.data}, {spec.optimizer}",
        kind="classification" if classify else "regression",
        build_model=build,
        build_data=lambda: data,
        loss_fn=loss,
        metric_name="accuracy" if classify else "r2",
        metric_fn=metric,
        batch_size=spec.batch_size,
        epochs=max(1, math.ceil(spec.steps / steps_per_epoch)),
        optimizer=spec.optimizer,
        default_lr=spec.default_lr,
    )


TASKS: dict[str, Spec] = {s.name: s for s in draw()}
"""The distribution: every drawn task by name."""


def spec_of(name: str) -> Spec:
    """The specification of a task of :data:`TASKS`."""
    return TASKS[name]


for _spec in TASKS.values():
    register_task(_spec.name, functools.partial(make_task, _spec), overwrite=True)
