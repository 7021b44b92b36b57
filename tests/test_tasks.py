"""Built-in tasks: data, determinism, loaders, registry and that each one actually trains."""

from __future__ import annotations

import ast
import random
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import lrkit.tasks as tasks_package
from lrkit.tasks import (
    Task,
    TaskData,
    accuracy,
    get_task,
    r2_score,
    register_task,
    registry,
    task_names,
)
from lrkit.tasks import data as task_data
from lrkit.tasks.builtin import BUILTIN_TASKS
from lrkit.train.optimizers import build_optimizer

pytestmark = pytest.mark.usefixtures("one_thread")


BUILTIN = [
    "breast-cancer-mlp",
    "digits-cnn",
    "friedman-mlp",
    "mnist1d-0to4-paper",
    "mnist1d-5to9-paper",
    "mnist1d-cnn",
    "mnist1d-cnn-paper",
    "mnist1d-mlp",
    "wine-mlp",
]


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.state_dict().values()]


# -- data -------------------------------------------------------------------------------------


def test_builtin_names_are_registered() -> None:
    assert set(BUILTIN) <= set(task_names())
    assert task_names() == sorted(task_names())


def test_mnist1d_shapes_and_labels() -> None:
    for name in ("mnist1d-mlp", "mnist1d-cnn"):
        task = get_task(name)
        (x, y), (xv, yv) = task.train_data, task.val_data
        assert x.shape == (4000, 40) and y.shape == (4000,)
        assert xv.shape == (1000, 40) and yv.shape == (1000,)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert sorted(y.unique().tolist()) == list(range(10))
        assert task.kind == "classification" and task.metric_name == "accuracy"
    assert get_task("mnist1d-mlp").train_data[0] is get_task("mnist1d-cnn").train_data[0]


def test_digits_shapes_and_stratified_split() -> None:
    task = get_task("digits-cnn")
    d = task.data
    assert len(d.x_train) + len(d.x_val) == 1797
    assert d.x_train.shape[1:] == (1, 8, 8)
    assert len(d.x_val) == 360
    train_frac = torch.bincount(d.y_train, minlength=10).double() / len(d.y_train)
    val_frac = torch.bincount(d.y_val, minlength=10).double() / len(d.y_val)
    assert torch.allclose(train_frac, val_frac, atol=0.01)
    assert abs(float(d.x_train.mean())) < 1e-4
    assert float(d.x_train.std()) == pytest.approx(1.0, abs=1e-3)


def test_friedman_is_standardized_regression() -> None:
    task = get_task("friedman-mlp")
    d = task.data
    assert task.kind == "regression" and task.metric_name == "r2"
    assert d.x_train.shape == (2000, 10) and d.x_val.shape == (500, 10)
    assert d.y_train.dtype == torch.float32
    assert abs(float(d.y_train.mean())) < 1e-4
    assert float(d.y_train.std()) == pytest.approx(1.0, abs=1e-3)
    assert torch.allclose(d.x_train.mean(0), torch.zeros(10), atol=1e-4)


def test_building_data_leaves_global_rngs_alone() -> None:
    builders = [
        task_data.mnist1d_data,
        task_data.digits_data,
        task_data.friedman_data,
        task_data.wine_data,
        task_data.breast_cancer_data,
    ]
    before = [b() for b in builders]
    for b in builders:
        b.cache_clear()
    random.seed(1234)
    np.random.seed(4321)
    torch.manual_seed(99)
    py_state, np_state, torch_state = (
        random.getstate(),
        np.random.get_state(),
        torch.get_rng_state(),
    )
    after = [b() for b in builders]
    assert random.getstate() == py_state
    np_after = np.random.get_state()
    assert np_after[0] == np_state[0]
    assert np.array_equal(np_after[1], np_state[1])
    assert np_after[2:] == np_state[2:]
    assert torch.equal(torch.get_rng_state(), torch_state)
    for old, new in zip(before, after, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(old, new, strict=True))
    assert builders[0]() is after[0]


# -- models -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILTIN)
def test_make_model_is_deterministic_per_seed(name: str) -> None:
    task = get_task(name)
    state = torch.get_rng_state()
    a, b, c = _params(task.make_model(3)), _params(task.make_model(3)), _params(task.make_model(4))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a, c, strict=True))
    x = task.val_data[0][:5]
    model = task.make_model(0).eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape[0] == 5


# -- loaders ----------------------------------------------------------------------------------


def _order(task: Task, seed: int, batch_size: int | None = None) -> list[torch.Tensor]:
    train, _ = task.loaders(batch_size=batch_size, seed=seed)
    return [y.clone() for _, y in train]


def test_loaders_are_reproducible_for_a_seed() -> None:
    task = get_task("mnist1d-mlp")
    torch.manual_seed(0)
    first = _order(task, seed=5)
    torch.manual_seed(123)
    second = _order(task, seed=5)
    other = _order(task, seed=6)
    assert len(first) == task.steps_per_epoch() == 32
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    assert torch.equal(torch.cat(first).sort().values, task.train_data[1].sort().values)


def test_loader_batch_sizes_and_validation_order() -> None:
    task = get_task("wine-mlp")
    train, val = task.loaders(batch_size=50, seed=0)
    assert [len(y) for _, y in train] == [50, 50, 42]
    assert task.steps_per_epoch(50) == 3
    assert torch.equal(torch.cat([y for _, y in val]), task.val_data[1])
    with pytest.raises(ValueError, match="batch_size"):
        task.loaders(batch_size=0)


# -- metrics ----------------------------------------------------------------------------------


def test_accuracy_and_r2_golden_values() -> None:
    scores = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.1, 0.2]])
    assert accuracy(scores, torch.tensor([0, 1, 1, 0])) == pytest.approx(0.5)
    assert accuracy(torch.tensor([1.5, -2.0, 0.3]), torch.tensor([1, 0, 0])) == pytest.approx(2 / 3)
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert r2_score(y.clone(), y) == pytest.approx(1.0)
    assert r2_score(torch.full((4,), 2.5), y) == pytest.approx(0.0)
    # SSE = 4 * 1 = 4, SST = 5  ->  1 - 4/5
    assert r2_score((y + 1).reshape(4, 1), y) == pytest.approx(0.2)


# -- registry ---------------------------------------------------------------------------------


def test_unknown_task_lists_known_names() -> None:
    with pytest.raises(ValueError, match="unknown task 'nope'") as info:
        get_task("nope")
    for name in BUILTIN:
        assert name in str(info.value)


def _write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, src: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(src))
    monkeypatch.syspath_prepend(str(tmp_path))


USER_TASK = """
    import torch
    from torch import nn
    import lrkit.tasks as T

    def make_task():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 3, generator=g)
        y = (x[:, 0] > 0).long()
        return T.Task(
            name="user", description="toy", kind="classification",
            build_model=lambda: nn.Linear(3, 2),
            build_data=lambda: T.TaskData(x[:48], y[:48], x[48:], y[48:]),
            loss_fn=nn.functional.cross_entropy, metric_name="accuracy",
            metric_fn=T.accuracy, batch_size=16, epochs=2, optimizer="sgd",
            default_lr=0.1, target=0.8,
        )

    def make_tuple():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(40, 2, generator=g)
        y = x.sum(1)
        model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
        opt = torch.optim.Adam(model.parameters(), lr=0.02)
        return model, opt, ((x[:30], y[:30]), (x[30:], y[30:])), nn.functional.mse_loss

    def not_a_task():
        return 42

    VALUE = 3
"""


def test_module_function_spec_task_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_module(tmp_path, monkeypatch, "lrkit_user_tasks", USER_TASK)
    task = get_task("lrkit_user_tasks:make_task")
    assert task.name == "user" and task.target == 0.8
    assert task.train_data[0].shape == (48, 3)
    assert task.steps_per_epoch() == 3
    same = get_task(str(tmp_path / "lrkit_user_tasks.py") + ":make_task")
    assert torch.equal(same.val_data[0], task.val_data[0])


def test_module_function_spec_tuple_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_module(tmp_path, monkeypatch, "lrkit_user_tuple", USER_TASK)
    task = get_task("lrkit_user_tuple:make_tuple")
    assert task.kind == "regression" and task.metric_name == "r2"
    assert task.optimizer == "adam" and task.default_lr == pytest.approx(0.02)
    assert task.target is None
    assert task.train_data[0].shape == (30, 2) and task.val_data[0].shape == (10, 2)
    a, b, c = (_params(task.make_model(s)) for s in (1, 1, 2))
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a, c, strict=True))


def test_bad_specs_say_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_module(tmp_path, monkeypatch, "lrkit_user_bad", USER_TASK)
    with pytest.raises(ValueError, match="no module named 'lrkit_no_such_module' in the current"):
        get_task("lrkit_no_such_module:make_task")
    (tmp_path / "lrkit_user_raises.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ValueError, match="RuntimeError: boom"):
        get_task("lrkit_user_raises:make_task")
    with pytest.raises(ValueError, match="has no attribute 'missing'"):
        get_task("lrkit_user_bad:missing")
    with pytest.raises(ValueError, match="not callable"):
        get_task("lrkit_user_bad:VALUE")
    with pytest.raises(ValueError, match="returned int"):
        get_task("lrkit_user_bad:not_a_task")
    with pytest.raises(ValueError, match="does not exist"):
        get_task(str(tmp_path / "absent.py") + ":make_task")
    (tmp_path / "broken_task_file.py").write_text("import lrkit_definitely_missing\n")
    with pytest.raises(ValueError, match="lrkit_definitely_missing"):
        get_task(str(tmp_path / "broken_task_file.py") + ":f")


def test_module_in_the_current_folder_imports_as_python_m_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lrkit_cwd_task.py").write_text(textwrap.dedent(USER_TASK))
    monkeypatch.chdir(tmp_path)
    here = {"", ".", str(tmp_path)}
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in here])
    assert get_task("lrkit_cwd_task:make_task").name == "user"


def test_a_missing_dependency_is_reported_as_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = "import os\nimport lrkit_absent_dependency\n\ndef make():\n    pass\n"
    (tmp_path / "lrkit_needs_dep.py").write_text(src)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError) as info:
        get_task("lrkit_needs_dep:make")
    msg = str(info.value)
    assert "module 'lrkit_needs_dep' was found but importing it failed" in msg
    assert "ModuleNotFoundError: No module named 'lrkit_absent_dependency'" in msg
    assert f"{tmp_path / 'lrkit_needs_dep.py'}:2" in msg  # where the import failed
    assert "cannot import module" not in msg
    (tmp_path / "lrkit_factory_raises.py").write_text("def make():\n    raise KeyError('x')\n")
    with pytest.raises(ValueError, match=r"calling make\(\) failed: KeyError: 'x'"):
        get_task("lrkit_factory_raises:make")


def test_register_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    base = get_task("wine-mlp")
    register_task("wine-again", lambda: base)
    assert "wine-again" in task_names()
    assert get_task("wine-again") is base
    with pytest.raises(ValueError, match="already registered"):
        register_task("wine-again", lambda: base)
    register_task("wine-again", lambda: get_task("digits-cnn"), overwrite=True)
    assert get_task("wine-again").name == "digits-cnn"
    with pytest.raises(ValueError, match="without ':'"):
        register_task("a:b", lambda: base)


def test_task_rejects_bad_fields() -> None:
    base = get_task("wine-mlp")
    fields = {f: getattr(base, f) for f in base.__dataclass_fields__}
    for key, value, msg in [
        ("kind", "ranking", "kind"),
        ("batch_size", 0, "batch_size"),
        ("epochs", -1, "epochs"),
        ("default_lr", 0.0, "default_lr"),
    ]:
        with pytest.raises(ValueError, match=msg):
            Task(**{**fields, key: value})
    assert isinstance(base.data, TaskData)


# -- each task trains -------------------------------------------------------------------------

# (epochs of the task's default optimizer at its default lr, metric it must beat)
TRAINING = {
    "breast-cancer-mlp": (1, 0.85),  # majority class is 63%
    "digits-cnn": (3, 0.8),  # chance 10%
    "friedman-mlp": (2, 0.6),  # predicting the mean gives 0
    "mnist1d-0to4-paper": (5, 0.6),  # five digits: chance 20%
    "mnist1d-5to9-paper": (5, 0.6),  # five digits: chance 20%
    "mnist1d-cnn": (2, 0.5),  # chance 10%
    "mnist1d-cnn-paper": (5, 0.5),  # chance 10%
    "mnist1d-mlp": (2, 0.3),  # chance 10%
    "wine-mlp": (20, 0.8),  # majority class is 40%
}


def _train(task: Task, epochs: int, seed: int = 0) -> tuple[float, float]:
    model = task.make_model(seed)
    x_val, y_val = task.val_data
    model.eval()
    with torch.no_grad():
        before = task.metric_fn(model(x_val), y_val)
    opt = build_optimizer(task.optimizer, model.parameters(), lr=task.default_lr)
    train, _ = task.loaders(seed=seed)
    model.train()
    for _ in range(epochs):
        for x, y in train:
            opt.zero_grad()
            task.loss_fn(model(x), y).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return before, task.metric_fn(model(x_val), y_val)


@pytest.mark.parametrize("name", BUILTIN)
def test_each_task_trains_past_chance(name: str) -> None:
    task = get_task(name)
    epochs, floor = TRAINING[name]
    before, after = _train(task, epochs)
    assert after > floor, f"{name}: {after:.3f} after {epochs} epochs"
    assert after > before + 0.2
    assert task.target is not None and task.target > floor


# -- the package ------------------------------------------------------------------------------


def test_builtin_tasks_come_from_their_table_row() -> None:
    for name, row in BUILTIN_TASKS.items():
        task = get_task(name)
        assert task.description == row.description and task.kind == row.kind
        assert task.build_data is row.data and task.build_model is row.model
        assert (task.optimizer, task.default_lr, task.target) == (
            row.optimizer,
            row.default_lr,
            row.target,
        )
        assert (task.epochs, task.batch_size) == (row.epochs, row.batch_size)
        assert task.metric_name == ("accuracy" if row.kind == "classification" else "r2")
        assert task.metric_fn is (accuracy if row.kind == "classification" else r2_score)
    assert sorted(BUILTIN_TASKS) == BUILTIN


def _lrkit_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ["lrkit", "tasks"][: max(0, 3 - node.level)] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.update(f"{module}.{a.name}" for a in node.names)
    return {n for n in names if n.split(".")[0] == "lrkit"}


def test_tasks_import_nothing_above_them() -> None:
    allowed = ("lrkit._extras", "lrkit._optimizers", "lrkit.engine", "lrkit.tasks")
    package = Path(tasks_package.__file__).parent
    for path in sorted(package.glob("*.py")):
        for name in _lrkit_imports(path):
            assert name.startswith(allowed), f"{path.name} imports {name}"


def test_tasks_use_the_engines_loss_and_metric_types() -> None:
    import lrkit.engine
    import lrkit.tasks
    from lrkit.tasks import _base

    assert lrkit.tasks.LossFn is _base.LossFn is lrkit.engine.LossFn
    assert lrkit.tasks.MetricFn is _base.MetricFn is lrkit.engine.MetricFn
