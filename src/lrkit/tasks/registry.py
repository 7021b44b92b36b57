"""The task registry: names of tasks, and tasks loaded from ``"module:function"`` specs.

:func:`get_task` looks a name up among the built-in tasks (:mod:`lrkit.tasks.builtin`) and those
added with :func:`register_task`, or imports a user's function from a module or a file.
"""

from __future__ import annotations

import copy
import functools
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from lrkit._optimizers import OPTIMIZERS, default_lr
from lrkit.tasks._base import SCORING, Task, TaskData, TaskKind
from lrkit.tasks.builtin import BUILTIN_TASKS, builtin_task

__all__ = ["TaskFactory", "get_task", "register_task", "task_names"]

TaskFactory = Callable[[], object]
"""``factory() -> Task`` (or the tuple form described in :func:`get_task`)."""

_REGISTRY: dict[str, TaskFactory] = {
    name: functools.partial(builtin_task, name) for name in BUILTIN_TASKS
}


def task_names() -> list[str]:
    """Names of the registered tasks, sorted."""
    return sorted(_REGISTRY)


def register_task(name: str, factory: TaskFactory, *, overwrite: bool = False) -> None:
    """Register ``factory`` under ``name`` so that ``get_task(name)`` calls it.

    ``factory`` takes no arguments and returns a :class:`Task` or a tuple as described in
    :func:`get_task`. Registering an existing name raises ``ValueError`` unless ``overwrite``.
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"task name must be a non-empty string without ':', got {name!r}")
    if not callable(factory):
        raise ValueError(f"factory for task {name!r} must be callable, got {factory!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"task {name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[name] = factory


def get_task(name_or_spec: str) -> Task:
    """Look up a task by registered name, or load one from ``"module:function"``.

    A spec ``"package.module:function"`` imports the module; ``"path/to/file.py:function"`` loads
    the file. The function is called with no arguments and returns either

    * a :class:`Task` (the fully supported form), or
    * a tuple ``(model, optimizer, data, loss_fn)`` where ``model`` is an ``nn.Module`` or a
      zero-argument callable returning one; ``optimizer`` is an optimizer name (``"sgd"``,
      ``"adamw"``, ...) or a ``torch.optim.Optimizer`` whose class and ``lr`` are reused;
      ``data`` is ``(x_train, y_train, x_val, y_val)`` or ``((x_train, y_train), (x_val,
      y_val))``; ``loss_fn(output, target)`` returns a scalar tensor. Floating-point targets make
      a regression task scored by :func:`~lrkit.tasks.r2_score`, integer targets a
      classification task scored by :func:`~lrkit.tasks.accuracy`. :meth:`Task.make_model` then
      builds a callable under the seed, or deep-copies a module instance and re-runs
      ``reset_parameters()`` of its layers under the seed. Batch size 64, 10 epochs and no
      target are assumed.

    Raises:
        ValueError: unknown name (the message lists the known names), a module that fails to
            import, a missing function, or a function returning something else.
    """
    if not isinstance(name_or_spec, str) or not name_or_spec:
        raise ValueError(f"task must be a task name or 'module:function', got {name_or_spec!r}")
    if name_or_spec in _REGISTRY:
        return _as_task(name_or_spec, _REGISTRY[name_or_spec]())
    if ":" not in name_or_spec:
        raise ValueError(
            f"unknown task {name_or_spec!r}; known tasks: {', '.join(task_names())} "
            "(or give 'module:function' returning a Task)"
        )
    module_name, _, attr = name_or_spec.rpartition(":")
    if not module_name or not attr:
        raise ValueError(f"task spec {name_or_spec!r} must look like 'module:function'")
    module = _import(module_name, name_or_spec)
    try:
        factory = getattr(module, attr)
    except AttributeError:
        raise ValueError(
            f"task spec {name_or_spec!r}: module {module_name!r} has no attribute {attr!r}"
        ) from None
    if not callable(factory):
        raise ValueError(f"task spec {name_or_spec!r}: {attr!r} is not callable")
    try:
        made = factory()
    except Exception as exc:
        raise ValueError(
            f"task spec {name_or_spec!r}: calling {attr}() failed: {_describe_error(exc)}"
        ) from exc
    return _as_task(name_or_spec, made)


def _import(module_name: str, spec: str) -> object:
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise ValueError(f"task spec {spec!r}: file {module_name!r} does not exist")
        _search_folder(path.resolve().parent)
        mod_name = f"_lrkit_task_{path.stem}"
        file_spec = importlib.util.spec_from_file_location(mod_name, path)
        if file_spec is None or file_spec.loader is None:
            raise ValueError(f"task spec {spec!r}: cannot load {module_name!r} as Python")
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[mod_name] = module
        try:
            file_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[mod_name]
            raise ValueError(
                f"task spec {spec!r}: loading {module_name!r} failed: {_describe_error(exc)}"
            ) from exc
        return module
    _search_folder(Path.cwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ValueError(
                f"task spec {spec!r}: no module named {missing!r} in the current folder "
                f"({Path.cwd()}) or on sys.path; check the name, or give the file instead, "
                f"e.g. 'path/to/{module_name.rsplit('.', 1)[-1]}.py:function'"
            ) from None
        raise ValueError(
            f"task spec {spec!r}: module {module_name!r} was found but importing it failed: "
            f"{_describe_error(exc)}"
        ) from exc
    except Exception as exc:
        raise ValueError(
            f"task spec {spec!r}: module {module_name!r} was found but importing it failed: "
            f"{_describe_error(exc)}"
        ) from exc


def _search_folder(folder: Path) -> None:
    """Make ``folder`` importable, first on ``sys.path``, as ``python -m`` does for the current
    folder and ``python file.py`` for the file's folder."""
    here = str(folder)
    if not any(os.path.abspath(p or ".") == here for p in sys.path):
        sys.path.insert(0, here)


def _describe_error(exc: BaseException) -> str:
    """``Type: message (file:line)``, pointing at the deepest frame of the user's code."""
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f" ({exc.filename}:{exc.lineno})"
    else:
        frames = [
            f
            for f in traceback.extract_tb(exc.__traceback__)
            if not f.filename.startswith("<frozen") and "importlib" not in f.filename
        ]
        if frames:
            where = f" ({frames[-1].filename}:{frames[-1].lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


def _as_task(name: str, obj: object) -> Task:
    if isinstance(obj, Task):
        return obj
    if isinstance(obj, tuple) and len(obj) == 4:
        return _task_from_tuple(name, obj)
    raise ValueError(
        f"task {name!r}: the factory returned {type(obj).__name__}; it must return a Task or "
        "a tuple (model, optimizer, data, loss_fn)"
    )


def _task_from_tuple(name: str, obj: tuple[object, object, object, object]) -> Task:
    model, opt, data, loss_fn = obj
    build_model = _model_builder(name, model)
    optimizer, lr = _optimizer_spec(name, opt)
    task_data = _task_data(name, data)
    if not callable(loss_fn):
        raise ValueError(f"task {name!r}: loss_fn (4th item) must be callable, got {loss_fn!r}")
    kind: TaskKind = "regression" if task_data.y_train.is_floating_point() else "classification"
    metric_name, metric_fn, _ = SCORING[kind]
    return Task(
        name=name,
        description=f"user task from {name}",
        kind=kind,
        build_model=build_model,
        build_data=lambda: task_data,
        loss_fn=loss_fn,
        metric_name=metric_name,
        metric_fn=metric_fn,
        batch_size=64,
        epochs=10,
        optimizer=optimizer,
        default_lr=lr,
        target=None,
    )


def _model_builder(name: str, model: object) -> Callable[[], nn.Module]:
    if isinstance(model, nn.Module):
        template = model

        def rebuild() -> nn.Module:
            m = copy.deepcopy(template)
            for layer in m.modules():
                reset = getattr(layer, "reset_parameters", None)
                if callable(reset):
                    reset()
            return m

        return rebuild
    if callable(model):

        def build() -> nn.Module:
            m = model()
            if not isinstance(m, nn.Module):
                raise ValueError(
                    f"task {name!r}: the model builder returned {type(m).__name__}, "
                    "not an nn.Module"
                )
            return m

        return build
    raise ValueError(
        f"task {name!r}: model (1st item) must be an nn.Module or a callable returning one, "
        f"got {type(model).__name__}"
    )


def _optimizer_spec(name: str, opt: object) -> tuple[str, float]:
    if isinstance(opt, str):
        key = opt.lower()
        if key not in OPTIMIZERS:
            raise ValueError(
                f"task {name!r}: unknown optimizer {opt!r}; known: {', '.join(OPTIMIZERS)}"
            )
        return key, default_lr(key)
    if isinstance(opt, torch.optim.Optimizer):
        key = type(opt).__name__.lower()
        if key not in OPTIMIZERS:
            raise ValueError(
                f"task {name!r}: optimizer class {type(opt).__name__} is not one of "
                f"{', '.join(OPTIMIZERS)}; return a Task instead"
            )
        lr = opt.defaults.get("lr")
        if not isinstance(lr, (int, float)):
            raise ValueError(f"task {name!r}: optimizer {type(opt).__name__} has no float lr")
        return key, float(lr)
    raise ValueError(
        f"task {name!r}: optimizer (2nd item) must be a name such as 'sgd' or a "
        f"torch.optim.Optimizer, got {type(opt).__name__}"
    )


def _task_data(name: str, data: object) -> TaskData:
    if isinstance(data, TaskData):
        items: tuple[object, ...] = tuple(data)
    elif isinstance(data, (tuple, list)) and len(data) == 4:
        items = tuple(data)
    elif (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in data)
    ):
        items = (data[0][0], data[0][1], data[1][0], data[1][1])
    else:
        raise ValueError(
            f"task {name!r}: data (3rd item) must be (x_train, y_train, x_val, y_val) or "
            "((x_train, y_train), (x_val, y_val)) of tensors"
        )
    tensors = [t for t in items if isinstance(t, Tensor)]
    if len(tensors) != 4:
        raise ValueError(f"task {name!r}: data items must all be torch tensors")
    x_train, y_train, x_val, y_val = tensors
    if len(x_train) != len(y_train) or len(x_val) != len(y_val):
        raise ValueError(
            f"task {name!r}: inputs and targets differ in length "
            f"(train {len(x_train)} vs {len(y_train)}, val {len(x_val)} vs {len(y_val)})"
        )
    return TaskData(x_train, y_train, x_val, y_val)
