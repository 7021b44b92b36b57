"""The training loop: schedules stepped per update, evaluations, checkpoints, exact resume."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from lrkit._threads import torch_threads
from lrkit.driver import Scheduler, read_value
from lrkit.engine import (
    Engine,
    RngState,
    checked,
    checkpoint_path,
    data_generators,
    load_checkpoint,
    save_atomic,
    validate_batch,
)
from lrkit.schedules import Hyper, Schedule
from lrkit.schedules import constant as _constant
from lrkit.tasks import LossFn, MetricFn, Task, get_task
from lrkit.train.history import History
from lrkit.train.optimizers import OptimizerFactory, build_optimizer, default_lr

__all__ = ["fit"]

logger = logging.getLogger("lrkit.train")

Observe = Literal["val_loss", "metric"]

_HAS_MOMENTUM = ("sgd", "rmsprop", "adam", "adamw", "adamax")
_MAX_SKIPS = 50


def fit(
    task: Task | str | None = None,
    *,
    model: nn.Module | None = None,
    train_loader: Iterable[Any] | None = None,
    val_loader: Iterable[Any] | None = None,
    loss_fn: LossFn | None = None,
    metric_fn: MetricFn | None = None,
    metric_name: str | None = None,
    optimizer: str | OptimizerFactory | None = None,
    lr: float | Schedule | Hyper | None = None,
    momentum: float | Schedule | None = None,
    weight_decay: float | Schedule = 0.0,
    nesterov: bool = False,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    accumulation_steps: int = 1,
    max_grad_norm: float | None = None,
    amp: bool = False,
    device: str | torch.device = "cpu",
    eval_every: int | None = None,
    observe: Observe = "val_loss",
    target: float | None = None,
    stop_at_target: bool = False,
    stop_at_cycle_end: int | None = None,
    checkpoint_every: int | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    seed: int = 0,
    num_threads: int | None = None,
    progress: bool = False,
) -> History:
    """Train a model with an optimizer driven by lrkit schedules, and record what happened.

    Give a :class:`~lrkit.tasks.Task` (or its name) for the model, data, loss, metric and
    defaults, or give ``model``, ``train_loader``, ``loss_fn`` (and ``val_loader``,
    ``metric_fn``) yourself; anything given explicitly overrides the task's. With a task and no
    ``model``, the model is ``task.make_model(seed)`` and is discarded afterwards; pass
    ``model=task.make_model(seed)`` to keep the trained one (it is trained in place).

    Each optimizer update consumes ``accumulation_steps`` batches; the schedules advance once per
    update (:class:`lrkit.Scheduler`). The model is evaluated every ``eval_every`` updates, at
    every cycle end when ``stop_at_cycle_end`` is set, and after the last update.

    Args:
        task: A task or a name accepted by :func:`lrkit.tasks.get_task`.
        model: The model to train (in place).
        train_loader: Iterable of ``(inputs, targets)`` batches. When it is a ``DataLoader``
            with a ``torch.Generator`` (on the loader or its sampler), that generator is reseeded
            from ``(seed, epoch)`` at the start of every epoch, so the order of each epoch is
            reproducible and resuming mid-epoch is exact.
        val_loader: Iterable of ``(inputs, targets)`` batches for evaluation.
        loss_fn: ``loss_fn(output, target) -> scalar tensor``.
        metric_fn: ``metric_fn(output, target) -> float``, higher is better, called once on the
            concatenated validation outputs. Without one (and no task) the metric is the negated
            validation loss, named ``"neg_val_loss"``.
        metric_name: Name recorded in the history (default: the task's, or ``"metric"``).
        optimizer: A name from :data:`lrkit.train.OPTIMIZERS` (``"sgd"`` has momentum 0.9) or
            ``factory(params) -> Optimizer``. Default: the task's, else ``"sgd"``.
        lr: A float (constant), a schedule, or a :class:`~lrkit.schedules.Hyper` such as
            ``one_cycle(...)`` (which also schedules momentum). Default: the task's
            ``default_lr`` when the optimizer is the task's, else :func:`lrkit.train.default_lr`
            of the optimizer. With an optimizer factory and ``lr=None`` the factory's learning
            rate is left alone.
        momentum: A float (fixed; SGD/RMSprop momentum or Adam-family beta1) or a schedule.
        weight_decay: A float or a schedule (ignored by an optimizer factory unless a schedule).
        nesterov: Nesterov momentum (SGD only).
        steps: Number of optimizer updates. Give ``steps`` or ``epochs``, not both.
        epochs: Passes over the training data; ``steps = ceil(epochs * batches_per_epoch /
            accumulation_steps)``. Default (neither given): the task's ``epochs``.
        batch_size: Training batch size for a task's loaders (default: the task's).
        accumulation_steps: Batches whose gradients are summed (as a mean) per update.
        max_grad_norm: Clip the global gradient norm to this value before each update.
        amp: Mixed precision: ``torch.autocast`` with float16 and a ``GradScaler`` on CUDA,
            bfloat16 without a scaler on the CPU.
        device: Where the model and batches go.
        eval_every: Evaluate every this many updates (default: once per epoch, or only at the
            end when the loader has no length).
        observe: What metric-driven schedule pieces (``reduce_on_plateau``) are fed after each
            evaluation: ``"val_loss"`` (use ``mode="min"``) or ``"metric"`` (``mode="max"``).
        target: Metric value for ``steps_to_target`` (default: the task's target).
        stop_at_target: Stop at the first evaluation that reaches ``target``.
        stop_at_cycle_end: A cycle length in updates. The model is evaluated at every cycle end,
            and the run stops at a cycle end whose metric is not better than at the previous one
            (Smith 2015: stop at the end of a cycle, where the LR is at its minimum).
        checkpoint_every: Write a checkpoint every this many updates (needs ``checkpoint_dir``).
        checkpoint_dir: Directory of the checkpoint (``checkpoint.pt``, replaced atomically). A
            final checkpoint is also written when the run ends.
        resume: Continue from the checkpoint in ``checkpoint_dir`` (start afresh when there is
            none). The resumed run ends with bitwise the same weights and history as an
            uninterrupted one on the same device, as far as the operations used are
            deterministic (see ``torch.use_deterministic_algorithms``). A checkpoint of a
            finished run returns its history at once.
        seed: Seeds the model (for a task), the Python, NumPy and torch global RNGs during the
            run, and the data order. The caller's global RNG states are restored on return.
        num_threads: Torch intra-op threads during the run (restored afterwards); ``None``
            leaves the setting alone. Small models such as the built-in tasks often run fastest
            with 1, and many times slower with several threads on a busy machine.
        progress: Show a progress bar (loss, lr, ETA) on stderr. Otherwise nothing is printed;
            the module logs to the ``"lrkit.train"`` logger.

    Returns:
        The :class:`History` of the run. A NaN or infinite loss does not raise: the run stops
        before applying that update, with ``diverged=True`` and the step in ``stop_reason``.

    Raises:
        ValueError: inconsistent or missing arguments, or a checkpoint from another
            configuration.
    """
    run = _setup(
        task=task,
        model=model,
        train_loader=train_loader,
        val_loader=val_loader,
        loss_fn=loss_fn,
        metric_fn=metric_fn,
        metric_name=metric_name,
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        nesterov=nesterov,
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        accumulation_steps=accumulation_steps,
        max_grad_norm=max_grad_norm,
        amp=amp,
        device=device,
        eval_every=eval_every,
        observe=observe,
        target=target,
        stop_at_target=stop_at_target,
        stop_at_cycle_end=stop_at_cycle_end,
        checkpoint_every=checkpoint_every,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        seed=seed,
    )
    threads = _positive_int_or_none("num_threads", num_threads)
    caller_rng = RngState.capture()
    try:
        with torch_threads(threads):
            return _Trainer(run).train(progress=progress)
    finally:
        caller_rng.restore()


# -- configuration ----------------------------------------------------------------------------


@dataclass
class _Run:
    """Everything :func:`fit` resolved from its arguments."""

    task_name: str | None
    model: nn.Module
    train_loader: Iterable[Any]
    val_loader: Iterable[Any] | None
    loss_fn: LossFn
    metric_fn: MetricFn | None
    metric_name: str
    optimizer_name: str
    build: Callable[[], tuple[torch.optim.Optimizer, Scheduler | None]]
    total_steps: int
    accumulation_steps: int
    max_grad_norm: float | None
    amp: bool
    device: torch.device
    eval_every: int | None
    observe: Observe
    target: float | None
    stop_at_target: bool
    cycle: int | None
    checkpoint_every: int | None
    checkpoint_dir: str | os.PathLike[str] | None
    resume: bool
    seed: int
    fingerprint: dict[str, Any]


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _positive_int_or_none(name: str, value: object) -> int | None:
    return None if value is None else _positive_int(name, value)


def _setup(
    *,
    task: Task | str | None,
    model: nn.Module | None,
    train_loader: Iterable[Any] | None,
    val_loader: Iterable[Any] | None,
    loss_fn: LossFn | None,
    metric_fn: MetricFn | None,
    metric_name: str | None,
    optimizer: str | OptimizerFactory | None,
    lr: float | Schedule | Hyper | None,
    momentum: float | Schedule | None,
    weight_decay: float | Schedule,
    nesterov: bool,
    steps: int | None,
    epochs: int | None,
    batch_size: int | None,
    accumulation_steps: int,
    max_grad_norm: float | None,
    amp: bool,
    device: str | torch.device,
    eval_every: int | None,
    observe: Observe,
    target: float | None,
    stop_at_target: bool,
    stop_at_cycle_end: int | None,
    checkpoint_every: int | None,
    checkpoint_dir: str | os.PathLike[str] | None,
    resume: bool,
    seed: int,
) -> _Run:
    if isinstance(task, str):
        task = get_task(task)
    if task is not None and not isinstance(task, Task):
        raise ValueError(f"task must be a Task, a task name or None, got {type(task).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    accum = _positive_int("accumulation_steps", accumulation_steps)
    if observe not in ("val_loss", "metric"):
        raise ValueError(f"observe must be 'val_loss' or 'metric', got {observe!r}")
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be > 0 or None, got {max_grad_norm!r}")

    # model and data
    if batch_size is not None and train_loader is not None:
        raise ValueError(
            "batch_size applies to a task's loaders; set the batch size of your own train_loader"
        )
    if task is not None:
        if train_loader is None or val_loader is None:
            t_train, t_val = task.loaders(batch_size=batch_size, seed=seed)
            train_loader = t_train if train_loader is None else train_loader
            val_loader = t_val if val_loader is None else val_loader
        model = task.make_model(seed) if model is None else model
        loss_fn = task.loss_fn if loss_fn is None else loss_fn
        if metric_fn is None:
            metric_fn = task.metric_fn
            metric_name = task.metric_name if metric_name is None else metric_name
        target = task.target if target is None else target
    elif batch_size is not None:
        raise ValueError(
            "batch_size applies to a task's loaders; set the batch size of your own train_loader"
        )
    if model is None or train_loader is None or loss_fn is None:
        missing = [
            n
            for n, v in (("model", model), ("train_loader", train_loader), ("loss_fn", loss_fn))
            if v is None
        ]
        raise ValueError(f"give a task, or {', '.join(missing)} (no task was given)")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if metric_name is None:
        metric_name = "metric" if metric_fn is not None else "neg_val_loss"
    needs_eval = [
        n
        for n, on in (("target", target is not None), ("stop_at_cycle_end", stop_at_cycle_end))
        if on
    ]
    if val_loader is None and (needs_eval or eval_every is not None):
        raise ValueError(
            f"{', '.join(needs_eval) or 'eval_every'} needs evaluations: give a val_loader"
        )
    if stop_at_target and target is None:
        raise ValueError("stop_at_target=True needs a target (the task has none; pass target=)")

    # length
    batches = _len_or_none(train_loader)
    if steps is not None and epochs is not None:
        raise ValueError(f"give steps or epochs, not both (got steps={steps}, epochs={epochs})")
    if steps is None:
        if epochs is None:
            if task is None:
                raise ValueError("give steps= or epochs= (no task to take the default from)")
            epochs = task.epochs
        _positive_int("epochs", epochs)
        if batches is None:
            raise ValueError("epochs= needs a train_loader with a length; give steps= instead")
        total_steps = math.ceil(epochs * batches / accum)
    else:
        _positive_int("steps", steps)
        total_steps = steps
    updates_per_epoch = None if batches is None else max(1, batches // accum)
    if eval_every is None:
        eval_every = updates_per_epoch if val_loader is not None else None
    else:
        _positive_int("eval_every", eval_every)
    cycle = _positive_int_or_none("stop_at_cycle_end", stop_at_cycle_end)
    _positive_int_or_none("checkpoint_every", checkpoint_every)
    if checkpoint_every is not None and checkpoint_dir is None:
        raise ValueError("checkpoint_every needs checkpoint_dir (where to write checkpoints)")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir (where the checkpoint is)")

    # optimizer and schedules
    if optimizer is None:
        optimizer = task.optimizer if task is not None else "sgd"
    if isinstance(optimizer, str):
        opt_name = optimizer.lower()
        default_lr(opt_name)  # rejects unknown names, listing the known ones
        if lr is None:
            same = task is not None and task.optimizer.lower() == opt_name
            lr = task.default_lr if task is not None and same else default_lr(opt_name)
    elif callable(optimizer):
        opt_name = getattr(optimizer, "__qualname__", type(optimizer).__name__)
        fixed = [
            n
            for n, v in (
                ("momentum", isinstance(momentum, (int, float))),
                ("weight_decay", isinstance(weight_decay, (int, float)) and weight_decay != 0),
                ("nesterov", nesterov),
            )
            if v
        ]
        if fixed:
            raise ValueError(
                f"an optimizer factory sets {', '.join(fixed)} itself; drop "
                f"{', '.join(n + '=' for n in fixed)} or pass a schedule"
            )
    else:
        raise ValueError(
            f"optimizer must be a name or a callable(params) -> Optimizer, got {optimizer!r}"
        )
    lr_sched = _as_schedule("lr", lr)
    mom_sched: Schedule | None = None
    mom_value: float | None = None
    if isinstance(momentum, Schedule):
        mom_sched = momentum
    elif isinstance(momentum, (int, float)) and not isinstance(momentum, bool):
        mom_value = float(momentum)
        if isinstance(lr_sched, Hyper) and lr_sched.momentum is not None:
            raise ValueError(
                "momentum is given twice: by lr (a Hyper with a momentum schedule) and as a "
                "float; drop momentum= or build the Hyper with momentum=None"
            )
    elif momentum is not None:
        raise ValueError(f"momentum must be a float, a schedule or None, got {momentum!r}")
    wd_sched: Schedule | None = None
    wd_value = 0.0
    if isinstance(weight_decay, Schedule):
        wd_sched = weight_decay
    elif isinstance(weight_decay, (int, float)) and not isinstance(weight_decay, bool):
        wd_value = float(weight_decay)
    else:
        raise ValueError(f"weight_decay must be a float or a schedule, got {weight_decay!r}")
    dev = torch.device(device)
    named_model = model
    opt_spec = optimizer

    def build() -> tuple[torch.optim.Optimizer, Scheduler | None]:
        first_lr = _first(lr_sched)
        first_mom = mom_value
        if mom_sched is not None:
            first_mom = mom_sched(0)
        elif (
            isinstance(lr_sched, Hyper)
            and lr_sched.momentum is not None
            and opt_name in _HAS_MOMENTUM
        ):
            first_mom = lr_sched.momentum(0)
        opt = build_optimizer(
            opt_spec,
            named_model.parameters(),
            lr=first_lr if first_lr is not None and first_lr > 0 else 1.0,
            weight_decay=wd_sched(0) if wd_sched is not None else wd_value,
            momentum=first_mom,
            nesterov=nesterov,
        )
        if lr_sched is None and mom_sched is None and wd_sched is None:
            return opt, None
        return opt, Scheduler(opt, lr=lr_sched, momentum=mom_sched, weight_decay=wd_sched)

    fingerprint = {
        "task": None if task is None else task.name,
        "optimizer": opt_name,
        "total_steps": total_steps,
        "accumulation_steps": accum,
        "batches_per_epoch": batches,
        "eval_every": eval_every,
        "stop_at_cycle_end": cycle,
        "seed": seed,
        "lr": _describe(lr_sched),
        "momentum": _describe(mom_sched),
        "weight_decay": _describe(wd_sched),
    }
    return _Run(
        task_name=None if task is None else task.name,
        model=model,
        train_loader=train_loader,
        val_loader=val_loader,
        loss_fn=loss_fn,
        metric_fn=metric_fn,
        metric_name=metric_name,
        optimizer_name=opt_name,
        build=build,
        total_steps=total_steps,
        accumulation_steps=accum,
        max_grad_norm=max_grad_norm,
        amp=bool(amp),
        device=dev,
        eval_every=eval_every,
        observe=observe,
        target=None if target is None else float(target),
        stop_at_target=stop_at_target,
        cycle=cycle,
        checkpoint_every=checkpoint_every,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        seed=seed,
        fingerprint=fingerprint,
    )


def _as_schedule(name: str, value: float | Schedule | Hyper | None) -> Schedule | Hyper | None:
    if value is None or isinstance(value, (Schedule, Hyper)):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a float, a schedule or a Hyper, got {value!r}")
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return _constant(float(value))


def _describe(sched: Schedule | Hyper | None) -> object:
    if sched is None:
        return None
    try:
        return sched.to_dict()
    except TypeError:
        return repr(sched)


def _first(sched: Schedule | Hyper | None) -> float | None:
    if sched is None:
        return None
    return (sched.lr if isinstance(sched, Hyper) else sched)(0)


def _len_or_none(loader: Iterable[Any]) -> int | None:
    try:
        n = len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None
    if n == 0:
        raise ValueError("train_loader is empty")
    return n


# -- data position ----------------------------------------------------------------------------


def _derive(seed: int, *tags: int) -> int:
    """A well-mixed 63-bit seed for one purpose (``tags``) of a run with ``seed``."""
    state = np.random.SeedSequence([seed, *tags]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> 1)


_DATA_ORDER, _GLOBAL_RNG = 0, 1


class _Stream:
    """An endless stream of training batches that knows its (epoch, batch) position.

    At the start of every epoch the loader's generator(s) are reseeded from ``(seed, epoch)``
    and the torch RNG state is remembered, so a resumed run can rebuild the same epoch iterator
    and skip to the same batch.
    """

    def __init__(self, loader: Iterable[Any], seed: int) -> None:
        self.loader = loader
        self.seed = seed
        self.epoch = 0
        self.batch = 0
        self.epoch_rng: Tensor | None = None
        self._it: Iterator[Any] | None = None

    def _start_epoch(self, rng: Tensor | None = None) -> None:
        if rng is None:
            self.epoch_rng = torch.get_rng_state()
        else:
            self.epoch_rng = rng
            torch.set_rng_state(rng)
        for g in data_generators(self.loader):
            g.manual_seed(_derive(self.seed, _DATA_ORDER, self.epoch))
        self._it = iter(self.loader)

    def next(self) -> Any:
        if self._it is None:
            self._start_epoch()
        assert self._it is not None
        try:
            item = next(self._it)
        except StopIteration:
            if self.batch == 0:
                raise ValueError("train_loader yielded no batches") from None
            self.epoch += 1
            self.batch = 0
            self._start_epoch()
            try:
                item = next(self._it)
            except StopIteration:
                raise ValueError("train_loader yielded no batches") from None
        self.batch += 1
        return item

    def state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch": self.batch, "epoch_rng": self.epoch_rng}

    def seek(self, state: dict[str, Any]) -> None:
        """Rebuild the iterator of ``state['epoch']`` and skip ``state['batch']`` batches.

        Changes the global torch RNG; restore it afterwards.
        """
        self.epoch = int(state["epoch"])
        self.batch = int(state["batch"])
        rng = state.get("epoch_rng")
        if rng is None:
            self._it = None
            return
        self._start_epoch(rng)
        assert self._it is not None
        for i in range(self.batch):
            try:
                next(self._it)
            except StopIteration:
                raise ValueError(
                    f"cannot resume: the train loader has fewer than {self.batch} batches in "
                    f"epoch {self.epoch} (stopped at {i})"
                ) from None


# -- the loop ---------------------------------------------------------------------------------


class _Batches:
    """The training stream as an iterator for :meth:`Engine.update`, its first batch checked."""

    def __init__(self, stream: _Stream) -> None:
        self.stream = stream
        self.checked = False

    def __iter__(self) -> _Batches:
        return self

    def __next__(self) -> Any:
        batch = self.stream.next()
        if not self.checked:
            validate_batch(batch, has_step_fn=False, has_loss_fn=True, what="train_loader")
            self.checked = True
        return batch


def _momentum_of(group: dict[str, Any]) -> float:
    if "momentum" in group:
        return read_value(group, "momentum")
    if "betas" in group:
        return read_value(group, "betas", 0)
    return math.nan


class _Trainer:
    def __init__(self, run: _Run) -> None:
        self.run = run
        self.model = run.model.to(run.device)
        self.history = History(
            task=run.task_name,
            metric_name=run.metric_name,
            optimizer=run.optimizer_name,
            seed=run.seed,
            total_steps=run.total_steps,
            target=run.target,
        )
        self.stream = _Stream(run.train_loader, run.seed)
        self.step = 0
        self.finished = False
        cuda = run.device.type == "cuda"
        self.autocast_dtype = torch.float16 if cuda else torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda") if run.amp and cuda else None

    # -- evaluation -------------------------------------------------------------------------
    def _evaluate(self, engine: Engine) -> tuple[float, float]:
        run = self.run
        assert run.val_loader is not None
        batches = checked(run.val_loader, has_step_fn=False, has_loss_fn=True, what="val_loader")
        found = engine.evaluate(batches, run.metric_fn, pooled=True)
        metric = -found.loss if run.metric_fn is None else found.metric
        return found.loss, metric

    def _record_eval(self, engine: Engine, sched: Scheduler | None) -> None:
        val_loss, metric = self._evaluate(engine)
        h = self.history
        h.eval_step.append(self.step)
        h.val_loss.append(val_loss)
        h.metric.append(metric)
        h.eval_seconds.append(h.seconds)
        h.final_metric = metric
        if h.target is not None and h.steps_to_target is None and metric >= h.target:
            h.steps_to_target = self.step
            h.seconds_to_target = h.seconds
        if sched is not None:
            sched.observe(val_loss if self.run.observe == "val_loss" else metric)

    # -- checkpoints ------------------------------------------------------------------------
    def _save(self, opt: torch.optim.Optimizer, sched: Scheduler | None) -> None:
        run = self.run
        assert run.checkpoint_dir is not None
        state = {
            "format": "lrkit.train/1",
            "fingerprint": run.fingerprint,
            "step": self.step,
            "finished": self.finished,
            "model": self.model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": None if sched is None else sched.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "rng": RngState.capture().to_dict(),
            "data": self.stream.state(),
            "history": self.history.to_dict(),
        }
        save_atomic(state, checkpoint_path(run.checkpoint_dir))

    def _load(self, opt: torch.optim.Optimizer, sched: Scheduler | None) -> bool:
        run = self.run
        assert run.checkpoint_dir is not None
        path = checkpoint_path(run.checkpoint_dir)
        if not path.is_file():
            logger.info("no checkpoint at %s; starting afresh", path)
            return False
        ckpt = load_checkpoint(path)
        saved = ckpt["fingerprint"]
        if saved != run.fingerprint:
            diff = {k: (saved.get(k), v) for k, v in run.fingerprint.items() if saved.get(k) != v}
            raise ValueError(
                f"the checkpoint in {str(run.checkpoint_dir)!r} belongs to another run "
                f"configuration (checkpoint vs now: {diff}); use another checkpoint_dir or "
                "resume=False"
            )
        self.model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if sched is not None:
            sched.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt["scaler"] is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.history = History.from_dict(ckpt["history"])
        self.step = int(ckpt["step"])
        self.finished = bool(ckpt["finished"])
        self.stream.seek(ckpt["data"])
        RngState.from_dict(ckpt["rng"]).restore()
        logger.info("resumed from %s at step %d", path, self.step)
        return True

    # -- training ---------------------------------------------------------------------------
    def train(self, *, progress: bool) -> History:
        run = self.run
        rng_seed = _derive(run.seed, _GLOBAL_RNG)
        random.seed(rng_seed)
        np.random.seed(rng_seed % 2**32)
        torch.manual_seed(rng_seed)
        self.model.train()
        opt, sched = run.build()
        if run.resume and self._load(opt, sched) and self.finished:
            return self.history
        bar = _ProgressBar(run.total_steps, self.step) if progress else None
        wall0 = time.perf_counter()
        wall_before = self.history.wall_seconds
        engine = Engine(
            self.model,
            opt,
            loss_fn=run.loss_fn,
            accumulation_steps=run.accumulation_steps,
            scaler=self.scaler,
            autocast_dtype=self.autocast_dtype if run.amp else None,
            max_grad_norm=run.max_grad_norm,
            device=run.device,
        )
        try:
            with engine, bar if bar is not None else contextlib.nullcontext():
                self._loop(engine, sched, bar, wall0, wall_before)
        finally:
            self.history.wall_seconds = wall_before + time.perf_counter() - wall0
        self.finished = True
        if run.checkpoint_dir is not None:
            self._save(opt, sched)
        logger.info("training stopped: %s", self.history.stop_reason)
        return self.history

    def _loop(
        self,
        engine: Engine,
        sched: Scheduler | None,
        bar: _ProgressBar | None,
        wall0: float,
        wall_before: float,
    ) -> None:
        run, h = self.run, self.history
        stream = _Batches(self.stream)
        skips = 0
        while self.step < run.total_steps:
            t0 = time.perf_counter()
            group = engine.optimizer.param_groups[0]
            lr, momentum = read_value(group, "lr"), _momentum_of(group)
            update = engine.update(stream)
            h.seconds += time.perf_counter() - t0
            if update.status == "skipped":
                skips += 1
                if skips < _MAX_SKIPS:
                    continue  # retried on the next batches; the schedule does not move
                self._diverge(engine, f"the GradScaler skipped {skips} updates in a row")
                return
            skips = 0
            h.lr.append(lr)
            h.momentum.append(momentum)
            h.loss.append(update.loss)
            if update.status == "nonfinite":
                self._diverge(
                    engine,
                    f"training loss is {update.loss} at step {self.step} (update "
                    f"{self.step + 1} of {run.total_steps}); the update was not applied",
                )
                return
            if sched is not None:
                sched.step()
            self.step += 1
            if bar is not None:
                bar.update(self.step, h.loss[-1], h.lr[-1])
            if self._after_step(engine, sched):
                return
            if run.checkpoint_every is not None and self.step % run.checkpoint_every == 0:
                h.wall_seconds = wall_before + time.perf_counter() - wall0
                self._save(engine.optimizer, sched)
        h.stop_reason = f"completed {run.total_steps} steps"

    def _diverge(self, engine: Engine, why: str) -> None:
        """Stop the run as diverged, with a last evaluation at the current step."""
        h = self.history
        h.diverged = True
        h.stop_reason = f"diverged: {why}"
        logger.warning(h.stop_reason)
        if self.run.val_loader is not None and (not h.eval_step or h.eval_step[-1] != self.step):
            self._record_eval(engine, None)

    def _after_step(self, engine: Engine, sched: Scheduler | None) -> bool:
        """Evaluate when due; return ``True`` when the run should stop."""
        run, h, step = self.run, self.history, self.step
        at_cycle_end = run.cycle is not None and step % run.cycle == 0
        due = (
            (run.eval_every is not None and step % run.eval_every == 0)
            or at_cycle_end
            or step == run.total_steps
        )
        if run.val_loader is None or not due:
            return False
        self._record_eval(engine, sched)
        metric = h.metric[-1]
        if not math.isfinite(h.val_loss[-1]):
            h.diverged = True
            h.stop_reason = f"diverged: validation loss is {h.val_loss[-1]} at step {step}"
            logger.warning(h.stop_reason)
            return True
        if run.stop_at_target and h.steps_to_target is not None:
            h.stop_reason = f"reached target {h.target} at step {step}"
            return True
        if at_cycle_end and run.cycle is not None and step >= 2 * run.cycle:
            previous = h.metric[h.eval_step.index(step - run.cycle)]
            if not metric > previous:
                h.stop_reason = (
                    f"metric stopped improving: {metric:.6g} at the cycle end at step {step} "
                    f"is not better than {previous:.6g} at step {step - run.cycle}"
                )
                return True
        return False


class _ProgressBar:
    """A rich progress bar with loss, lr and ETA."""

    def __init__(self, total: int, done: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task("train", total=total, completed=done, loss="-", lr="-")

    def __enter__(self) -> _ProgressBar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, step: int, loss: float, lr: float) -> None:
        self._progress.update(self._task, completed=step, loss=f"{loss:.4g}", lr=f"{lr:.3g}")
