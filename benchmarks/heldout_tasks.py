"""Tasks outside lrkit's six built-in ones, for judging LR-finder rules on models they were not
designed on (`benchmarks/suggestion_heldout.py`).

They vary what changes where the best one-cycle peak sits: depth, normalization (none, BatchNorm,
LayerNorm), activation (ReLU, tanh), recurrent layers, SGD vs AdamW, classification vs
regression, batch size and data set size. All data is offline: mnist1d's generator and
scikit-learn's bundled sets and generators. Each is named ``"heldout_tasks:<function>"`` for
:func:`lrkit.tasks.get_task` (with this directory on ``sys.path``).

``DESIGN`` and ``TEST`` split them in two, fixed before any of them was trained: a rule may be
chosen by looking at the design half; the test half judges it.

The second batch (issue 10) adds kinds none of the suites had: self-attention on a sequence
(``mnist1d_attention``), a 1-D ResNet with BatchNorm (``mnist1d_resnet_bn``), embeddings of
categorical columns (``tabular_embed_mlp``), an autoencoder (``digits_autoencoder``), a deep
LayerNorm MLP with AdamW (``mnist1d_deep_ln_adamw``) and a character-level language model
(``chars_gru_lm``). Their split was fixed by rule before any was trained: the six function names,
sorted, shuffled with ``random.Random(10).shuffle`` (10 is the issue's number); the first three
went to ``DESIGN``, the other three to ``TEST``.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lrkit.tasks import LossFn, MetricFn, Task, TaskData, accuracy, r2_score
from lrkit.tasks._base import cross_entropy
from lrkit.tasks._base import mse as _mse
from lrkit.tasks.data import mnist1d_data as _mnist1d_data
from lrkit.tasks.data import table_data as _table_data

__all__ = ["DESIGN", "TEST"]


# -- data --------------------------------------------------------------------------------------


@functools.cache
def _digits_flat() -> TaskData:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return _table_data(x, y, classify=True)


@functools.cache
def _moons() -> TaskData:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=3000, noise=0.3, random_state=1)
    return _table_data(x, y, classify=True)


@functools.cache
def _circles() -> TaskData:
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=3000, noise=0.15, factor=0.5, random_state=2)
    return _table_data(x, y, classify=True)


@functools.cache
def _classification() -> TaskData:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=5000,
        n_features=20,
        n_informative=12,
        n_redundant=4,
        n_classes=6,
        n_clusters_per_class=2,
        class_sep=1.0,
        random_state=3,
    )
    return _table_data(x, y, classify=True)


@functools.cache
def _hastie() -> TaskData:
    from sklearn.datasets import make_hastie_10_2

    x, y = make_hastie_10_2(n_samples=4000, random_state=4)
    return _table_data(x, (y > 0).astype(np.int64), classify=True)


@functools.cache
def _diabetes() -> TaskData:
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    return _table_data(x, y, classify=False)


@functools.cache
def _friedman3() -> TaskData:
    from sklearn.datasets import make_friedman3

    x, y = make_friedman3(n_samples=3000, noise=0.05, random_state=5)
    return _table_data(x, y, classify=False)


@functools.cache
def _regression() -> TaskData:
    from sklearn.datasets import make_regression

    x, y = make_regression(
        n_samples=3000, n_features=30, n_informative=15, noise=10.0, random_state=6
    )
    return _table_data(x, np.tanh(y / 100.0) * 100.0, classify=False)


@functools.cache
def _digits_autoencoder() -> TaskData:
    """Digits, standardized per pixel, with the input as the target: ``(N, 64)`` both."""
    d = _digits_flat()
    return TaskData(d.x_train, d.x_train, d.x_val, d.x_val)


TABULAR_CARDINALITIES = (6, 10, 16, 24)
"""Categories of the categorical columns of ``tabular_embed_mlp``, which come first."""
TABULAR_NUMERIC = 8
"""Numeric columns of ``tabular_embed_mlp``, after the categorical ones."""


@functools.cache
def _tabular_mixed() -> TaskData:
    """``make_classification`` (6000 samples, 12 features, 4 classes) with its first four
    features cut at quantiles into :data:`TABULAR_CARDINALITIES` categories whose codes are then
    shuffled (so their order means nothing). Inputs ``(N, 12)`` float32: the category codes
    (whole numbers) first, then the eight numeric features standardized with training
    statistics; stratified 80/20 split."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    x, y = make_classification(
        n_samples=6000,
        n_features=len(TABULAR_CARDINALITIES) + TABULAR_NUMERIC,
        n_informative=8,
        n_redundant=2,
        n_classes=4,
        n_clusters_per_class=2,
        class_sep=1.0,
        random_state=11,
    )
    rng = np.random.RandomState(12)
    columns = []
    for j, k in enumerate(TABULAR_CARDINALITIES):
        edges = np.quantile(x[:, j], np.linspace(0.0, 1.0, k + 1)[1:-1])
        columns.append(rng.permutation(k)[np.searchsorted(edges, x[:, j])])
    codes = np.stack(columns, axis=1).astype(np.float64)
    table = np.concatenate([codes, x[:, len(TABULAR_CARDINALITIES) :]], axis=1)
    xtr, xva, ytr, yva = train_test_split(table, y, test_size=0.2, random_state=0, stratify=y)
    n_cat = len(TABULAR_CARDINALITIES)
    mu = xtr[:, n_cat:].mean(axis=0)
    sd = xtr[:, n_cat:].std(axis=0)
    xtr[:, n_cat:] = (xtr[:, n_cat:] - mu) / sd
    xva[:, n_cat:] = (xva[:, n_cat:] - mu) / sd
    return TaskData(
        torch.tensor(xtr, dtype=torch.float32),
        torch.tensor(ytr, dtype=torch.int64),
        torch.tensor(xva, dtype=torch.float32),
        torch.tensor(yva, dtype=torch.int64),
    )


_SUBJECTS = (
    "the cat",
    "a dog",
    "the old man",
    "my sister",
    "a small bird",
    "the teacher",
    "our neighbour",
    "the river",
)
_VERBS = ("sees", "likes", "follows", "finds", "draws", "remembers", "carries", "watches")
_OBJECTS = (
    "the garden",
    "a red ball",
    "the quiet town",
    "an apple",
    "the bright moon",
    "a wooden box",
    "the long road",
)
_ENDINGS = ("", " every day", " at night", " in the rain", " slowly", " again")
_JOINS = (". ", ". ", ". ", ", and ", " because ")

CHARS_SEQ_LEN = 32
"""Characters per sequence of ``chars_gru_lm``."""


def _grammar_text(n_chars: int, seed: int) -> str:
    """Sentences of a small hand-written grammar, drawn with a fixed seed, up to ``n_chars``."""
    rng = np.random.RandomState(seed)
    parts: list[str] = []
    total = 0
    while total < n_chars:
        piece = " ".join(
            (
                _SUBJECTS[rng.randint(len(_SUBJECTS))],
                _VERBS[rng.randint(len(_VERBS))],
                _OBJECTS[rng.randint(len(_OBJECTS))],
            )
        )
        piece += _ENDINGS[rng.randint(len(_ENDINGS))] + _JOINS[rng.randint(len(_JOINS))]
        parts.append(piece)
        total += len(piece)
    return "".join(parts)[:n_chars]


CHARS_VOCAB = "".join(sorted(set(_grammar_text(60_000, seed=13))))
"""The characters of ``chars_gru_lm``'s text, sorted; a character's code is its index here."""


@functools.cache
def _chars() -> TaskData:
    """60,000 characters of :func:`_grammar_text` (seed 13): the first 80% for training, the
    rest for validation. Windows of :data:`CHARS_SEQ_LEN` + 1 characters, 16 apart; inputs
    ``(N, 32)`` int64 codes, targets ``(N, 32)``: the same window shifted by one character."""
    codes = np.array([CHARS_VOCAB.index(c) for c in _grammar_text(60_000, seed=13)])
    cut = int(0.8 * len(codes))
    x_train, y_train = text_windows(codes[:cut], CHARS_SEQ_LEN)
    x_val, y_val = text_windows(codes[cut:], CHARS_SEQ_LEN)
    return TaskData(x_train, y_train, x_val, y_val)


def text_windows(codes: np.ndarray, length: int, stride: int = 16) -> tuple[Tensor, Tensor]:
    """Windows of ``length + 1`` codes, ``stride`` apart: inputs ``(N, length)`` and targets,
    the same windows shifted by one position."""
    starts = np.arange(0, len(codes) - length, stride)
    w = torch.tensor(np.stack([codes[i : i + length + 1] for i in starts]))
    return w[:, :-1].contiguous(), w[:, 1:].contiguous()


def _token_cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy of per-position scores ``(N, L, C)`` against codes ``(N, L)``."""
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))


def _token_accuracy(output: Tensor, target: Tensor) -> float:
    """Fraction of positions whose next character is predicted right (0..1)."""
    return float((output.argmax(dim=-1) == target).float().mean().item())


# -- models ------------------------------------------------------------------------------------


def _mlp(sizes: list[int], act: type[nn.Module] = nn.ReLU, norm: str | None = None) -> nn.Module:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes[:-1]):
        layers.append(nn.Linear(a, b))
        if norm == "bn":
            layers.append(nn.BatchNorm1d(b))
        elif norm == "ln":
            layers.append(nn.LayerNorm(b))
        layers.append(act())
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class _ResidualMLP(nn.Module):
    def __init__(self, n_in: int, width: int, depth: int, n_out: int) -> None:
        super().__init__()
        self.inp = nn.Linear(n_in, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width)
            )
            for _ in range(depth)
        )
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, n_out))

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


class _GRU(nn.Module):
    def __init__(self, hidden: int = 48) -> None:
        super().__init__()
        self.gru = nn.GRU(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x: Tensor) -> Tensor:
        _, h = self.gru(x.unsqueeze(-1))
        return self.head(h[-1])


def _cnn_plain() -> nn.Module:
    c = 32
    return nn.Sequential(
        nn.Unflatten(1, (1, 40)),
        nn.Conv1d(1, c, 5, padding=2),
        nn.ReLU(),
        nn.Conv1d(c, c, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(c, c, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(c * 10, 10),
    )


class _PatchAttention(nn.Module):
    """A length-40 signal as 10 patches of 4, embedded to 32, plus learned positions; two pre-norm
    self-attention layers (``nn.TransformerEncoderLayer``: 4 heads, feed-forward 64, no dropout);
    mean over patches; a linear head."""

    def __init__(self, patch: int = 4, d_model: int = 32, n_out: int = 10) -> None:
        super().__init__()
        self.patch = patch
        self.embed = nn.Linear(patch, d_model)
        self.pos = nn.Parameter(torch.randn(40 // patch, d_model) * 0.02)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d_model,
                nhead=4,
                dim_feedforward=2 * d_model,
                dropout=0.0,
                batch_first=True,
                norm_first=True,
            )
            for _ in range(2)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_out)

    def forward(self, x: Tensor) -> Tensor:
        h = self.embed(x.reshape(x.shape[0], -1, self.patch)) + self.pos
        for layer in self.layers:
            h = layer(h)
        return self.head(self.norm(h).mean(dim=1))


class _ResBlock1d(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm1d(c_out),
            nn.ReLU(),
            nn.Conv1d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm1d(c_out),
        )
        self.skip: nn.Module = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out)
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.skip(x))


def _resnet1d() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 40)),
        nn.Conv1d(1, 16, 5, padding=2, bias=False),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        _ResBlock1d(16, 16, 1),
        _ResBlock1d(16, 32, 2),
        _ResBlock1d(32, 32, 2),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


class _EmbedMLP(nn.Module):
    """One ``nn.Embedding`` per categorical column (codes first in the input, as whole-number
    floats), concatenated with the numeric columns, into an MLP."""

    def __init__(
        self, cardinalities: tuple[int, ...], n_numeric: int, width: int, n_out: int
    ) -> None:
        super().__init__()
        dims = [min(8, (k + 1) // 2) for k in cardinalities]
        self.embeds = nn.ModuleList(
            nn.Embedding(k, d) for k, d in zip(cardinalities, dims, strict=True)
        )
        self.mlp = _mlp([sum(dims) + n_numeric, width, width, n_out])

    def forward(self, x: Tensor) -> Tensor:
        n_cat = len(self.embeds)
        codes = x[:, :n_cat].long()
        parts = [emb(codes[:, j]) for j, emb in enumerate(self.embeds)]
        return self.mlp(torch.cat([*parts, x[:, n_cat:]], dim=1))


class _CharGRU(nn.Module):
    """Character embedding (16) into a one-layer GRU (64) with a linear head at every position:
    output ``(N, L, vocab)``."""

    def __init__(self, vocab: int, embed: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.gru(self.embed(x))
        return self.head(h)


# -- tasks -------------------------------------------------------------------------------------


def _task(
    name: str,
    model: Callable[[], nn.Module],
    data: Callable[[], TaskData],
    *,
    classify: bool,
    batch_size: int,
    epochs: int,
    optimizer: str,
    description: str | None = None,
    loss_fn: LossFn | None = None,
    metric_fn: MetricFn | None = None,
) -> Task:
    default_loss: LossFn = cross_entropy if classify else _mse
    default_metric: MetricFn = accuracy if classify else r2_score
    return Task(
        name=name,
        description=description or name,
        kind="classification" if classify else "regression",
        build_model=model,
        build_data=data,
        loss_fn=loss_fn or default_loss,
        metric_name="accuracy" if classify else "r2",
        metric_fn=metric_fn or default_metric,
        batch_size=batch_size,
        epochs=epochs,
        optimizer=optimizer,
        default_lr=0.1 if optimizer == "sgd" else 1e-3,
    )


def digits_mlp() -> Task:
    return _task(
        "digits-mlp",
        functools.partial(_mlp, [64, 128, 128, 10]),
        _digits_flat,
        classify=True,
        batch_size=64,
        epochs=8,
        optimizer="sgd",
    )


def mnist1d_deep_mlp() -> Task:
    return _task(
        "mnist1d-deep-mlp",
        functools.partial(_mlp, [40, 128, 128, 128, 128, 10]),
        _mnist1d_data,
        classify=True,
        batch_size=64,
        epochs=15,
        optimizer="sgd",
    )


def mnist1d_cnn_plain() -> Task:
    return _task(
        "mnist1d-cnn-plain",
        _cnn_plain,
        _mnist1d_data,
        classify=True,
        batch_size=128,
        epochs=15,
        optimizer="sgd",
    )


def mnist1d_mlp_adamw() -> Task:
    return _task(
        "mnist1d-mlp-adamw",
        functools.partial(_mlp, [40, 100, 100, 10]),
        _mnist1d_data,
        classify=True,
        batch_size=128,
        epochs=20,
        optimizer="adamw",
    )


def mnist1d_resmlp() -> Task:
    return _task(
        "mnist1d-resmlp",
        functools.partial(_ResidualMLP, 40, 128, 3, 10),
        _mnist1d_data,
        classify=True,
        batch_size=128,
        epochs=15,
        optimizer="adamw",
    )


def mnist1d_bn_mlp() -> Task:
    return _task(
        "mnist1d-bn-mlp",
        functools.partial(_mlp, [40, 128, 128, 10], nn.ReLU, "bn"),
        _mnist1d_data,
        classify=True,
        batch_size=128,
        epochs=15,
        optimizer="sgd",
    )


def mnist1d_gru() -> Task:
    return _task(
        "mnist1d-gru",
        _GRU,
        _mnist1d_data,
        classify=True,
        batch_size=128,
        epochs=10,
        optimizer="adamw",
    )


def moons_mlp() -> Task:
    return _task(
        "moons-mlp",
        functools.partial(_mlp, [2, 64, 64, 2]),
        _moons,
        classify=True,
        batch_size=32,
        epochs=6,
        optimizer="sgd",
    )


def circles_tanh() -> Task:
    return _task(
        "circles-tanh",
        functools.partial(_mlp, [2, 64, 64, 2], nn.Tanh),
        _circles,
        classify=True,
        batch_size=32,
        epochs=6,
        optimizer="sgd",
    )


def classification_mlp() -> Task:
    return _task(
        "classification-mlp",
        functools.partial(_mlp, [20, 128, 128, 6]),
        _classification,
        classify=True,
        batch_size=64,
        epochs=10,
        optimizer="sgd",
    )


def hastie_mlp() -> Task:
    return _task(
        "hastie-mlp",
        functools.partial(_mlp, [10, 64, 64, 2]),
        _hastie,
        classify=True,
        batch_size=64,
        epochs=10,
        optimizer="adamw",
    )


def diabetes_mlp() -> Task:
    return _task(
        "diabetes-mlp",
        functools.partial(_mlp, [10, 64, 64, 1]),
        _diabetes,
        classify=False,
        batch_size=32,
        epochs=30,
        optimizer="adamw",
    )


def friedman3_sgd() -> Task:
    return _task(
        "friedman3-mlp",
        functools.partial(_mlp, [4, 64, 64, 1]),
        _friedman3,
        classify=False,
        batch_size=64,
        epochs=15,
        optimizer="sgd",
    )


def regression_tanh() -> Task:
    return _task(
        "regression-tanh",
        functools.partial(_mlp, [30, 128, 128, 1], nn.Tanh),
        _regression,
        classify=False,
        batch_size=64,
        epochs=10,
        optimizer="sgd",
    )


def mnist1d_attention() -> Task:
    return _task(
        "mnist1d-attention",
        _PatchAttention,
        _mnist1d_data,
        classify=True,
        batch_size=128,
        epochs=10,
        optimizer="adamw",
        description="MNIST-1D as 10 patches of 4 through two pre-norm self-attention layers",
    )


def mnist1d_resnet_bn() -> Task:
    return _task(
        "mnist1d-resnet-bn",
        _resnet1d,
        _mnist1d_data,
        classify=True,
        batch_size=128,
        epochs=10,
        optimizer="sgd",
        description="MNIST-1D with a 1-D ResNet: three residual Conv1d+BatchNorm blocks",
    )


def tabular_embed_mlp() -> Task:
    return _task(
        "tabular-embed-mlp",
        functools.partial(_EmbedMLP, TABULAR_CARDINALITIES, TABULAR_NUMERIC, 128, 4),
        _tabular_mixed,
        classify=True,
        batch_size=64,
        epochs=12,
        optimizer="sgd",
        description="make_classification with four categorical columns fed through embeddings",
    )


def digits_autoencoder() -> Task:
    return _task(
        "digits-autoencoder",
        functools.partial(_mlp, [64, 128, 16, 128, 64]),
        _digits_autoencoder,
        classify=False,
        batch_size=64,
        epochs=40,
        optimizer="sgd",
        description="digits reconstructed through a 16-unit MLP bottleneck, scored by r2",
    )


def mnist1d_deep_ln_adamw() -> Task:
    return _task(
        "mnist1d-deep-ln-adamw",
        functools.partial(_mlp, [40, *[96] * 7, 10], nn.GELU, "ln"),
        _mnist1d_data,
        classify=True,
        batch_size=128,
        epochs=15,
        optimizer="adamw",
        description="MNIST-1D with an 8-layer LayerNorm+GELU MLP (no residuals) and AdamW",
    )


def chars_gru_lm() -> Task:
    return _task(
        "chars-gru-lm",
        functools.partial(_CharGRU, len(CHARS_VOCAB)),
        _chars,
        classify=True,
        batch_size=64,
        epochs=6,
        optimizer="adamw",
        description="next-character GRU language model on text from a small fixed grammar",
        loss_fn=_token_cross_entropy,
        metric_fn=_token_accuracy,
    )


DESIGN = [
    "heldout_tasks:digits_mlp",
    "heldout_tasks:mnist1d_cnn_plain",
    "heldout_tasks:mnist1d_resmlp",
    "heldout_tasks:moons_mlp",
    "heldout_tasks:hastie_mlp",
    "heldout_tasks:friedman3_sgd",
    "heldout_tasks:mnist1d_gru",
    "heldout_tasks:mnist1d_attention",
    "heldout_tasks:tabular_embed_mlp",
    "heldout_tasks:digits_autoencoder",
]
TEST = [
    "heldout_tasks:mnist1d_deep_mlp",
    "heldout_tasks:mnist1d_mlp_adamw",
    "heldout_tasks:mnist1d_bn_mlp",
    "heldout_tasks:circles_tanh",
    "heldout_tasks:classification_mlp",
    "heldout_tasks:diabetes_mlp",
    "heldout_tasks:regression_tanh",
    "heldout_tasks:mnist1d_deep_ln_adamw",
    "heldout_tasks:chars_gru_lm",
    "heldout_tasks:mnist1d_resnet_bn",
]
