"""The held-out tasks of ``benchmarks/heldout_tasks.py``: the split, and that each task of the
second batch builds, has the documented shapes and trains a few steps with a finite loss."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

import lrkit
from lrkit.tasks import Task, get_task

pytest.importorskip("mnist1d")
pytest.importorskip("sklearn")

pytestmark = pytest.mark.usefixtures("one_thread")

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

Shape = tuple[int, ...]

# function: (x_train shape, x dtype, y_train shape, x_val shape, model output on 5 samples)
NEW_TASKS: dict[str, tuple[Shape, torch.dtype, Shape, Shape, Shape]] = {
    "mnist1d_attention": ((4000, 40), torch.float32, (4000,), (1000, 40), (5, 10)),
    "mnist1d_resnet_bn": ((4000, 40), torch.float32, (4000,), (1000, 40), (5, 10)),
    "tabular_embed_mlp": ((4800, 12), torch.float32, (4800,), (1200, 12), (5, 4)),
    "digits_autoencoder": ((1437, 64), torch.float32, (1437, 64), (360, 64), (5, 64)),
    "mnist1d_deep_ln_adamw": ((4000, 40), torch.float32, (4000,), (1000, 40), (5, 10)),
    "chars_gru_lm": ((2998, 32), torch.int64, (2998, 32), (748, 32), (5, 32, 27)),
}


@pytest.fixture(scope="module")
def heldout() -> ModuleType:
    """The module, with MNIST-1D (shared by four tasks, a few seconds to generate) built once."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    module = importlib.import_module("heldout_tasks")
    module._mnist1d_data()
    return module


def test_split_is_disjoint_and_names_real_tasks(heldout: ModuleType) -> None:
    assert not set(heldout.DESIGN) & set(heldout.TEST)
    specs = [*heldout.DESIGN, *heldout.TEST]
    assert len(specs) == len(set(specs))
    for spec in specs:
        module, _, name = spec.partition(":")
        assert module == "heldout_tasks"
        assert callable(getattr(heldout, name))
    for name in NEW_TASKS:
        assert f"heldout_tasks:{name}" in specs


@pytest.mark.parametrize("name", list(NEW_TASKS))
def test_new_task_builds_and_trains(heldout: ModuleType, name: str) -> None:
    x_shape, x_dtype, y_shape, val_shape, out_shape = NEW_TASKS[name]
    task = getattr(heldout, name)()
    assert isinstance(task, Task)
    assert task.description and task.description != task.name
    d = task.data
    assert tuple(d.x_train.shape) == x_shape
    assert d.x_train.dtype == x_dtype
    assert tuple(d.y_train.shape) == y_shape
    assert tuple(d.x_val.shape) == val_shape
    assert len(d.y_val) == val_shape[0]
    assert 150 <= task.steps_per_epoch() * task.epochs <= 1000
    with torch.no_grad():
        out = task.make_model(0)(d.x_train[:5])
    assert tuple(out.shape) == out_shape
    history = lrkit.fit(task, steps=3)
    assert not history.diverged
    assert len(history.loss) == 3
    assert all(math.isfinite(v) for v in history.loss)


def test_new_task_data_is_what_it_says(heldout: ModuleType) -> None:
    chars = heldout.chars_gru_lm().data
    assert torch.equal(chars.x_train[:, 1:], chars.y_train[:, :-1])
    assert int(chars.x_train.max()) < len(heldout.CHARS_VOCAB)
    table = heldout.tabular_embed_mlp().data.x_train
    cards = heldout.TABULAR_CARDINALITIES
    codes = table[:, : len(cards)]
    assert torch.equal(codes, codes.round())
    for j, k in enumerate(cards):
        assert set(codes[:, j].long().tolist()) == set(range(k))
    auto = heldout.digits_autoencoder().data
    assert torch.equal(auto.x_train, auto.y_train)
    assert torch.equal(auto.x_val, auto.y_val)


def test_new_task_loads_by_spec(heldout: ModuleType) -> None:
    task = get_task("heldout_tasks:chars_gru_lm")
    assert task.name == "chars-gru-lm"
    assert task.metric_name == "accuracy"
