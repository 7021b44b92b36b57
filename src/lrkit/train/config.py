"""The settings of a training run in one place: :class:`TrainConfig`, validated once, and the
plan :func:`lrkit.train.fit` resolves from it (the task merged in, lengths counted, the optimizer
and its schedules ready to build)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from lrkit._checks import positive_int, positive_int_or_none
from lrkit.driver import Scheduler
from lrkit.engine import AUTOCAST_DTYPES, distributed
from lrkit.schedules import Hyper, Schedule
from lrkit.schedules import constant as _constant
from lrkit.tasks import LossFn, MetricFn, Task, get_task
from lrkit.train.optimizers import OptimizerFactory, build_optimizer, default_lr, has_momentum

__all__ = ["DATA_ORDER", "GLOBAL_RNG", "Observe", "Plan", "TrainConfig", "derive_seed", "resolve"]

Observe = Literal["val_loss", "metric"]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs, checked when the config is made.

    Build it from a task plus overrides, ``TrainConfig("wine-mlp", steps=200, lr=0.05)``, and
    pass it to :func:`lrkit.train.fit` (which also takes the same fields as keywords, and a
    config plus overrides: ``fit(config, seed=1)``). ``dataclasses.replace(config, ...)`` makes a
    new, re-checked config.

    Attributes:
        task: A :class:`~lrkit.tasks.Task` or a name accepted by :func:`lrkit.tasks.get_task`:
            the model, data, loss, metric and defaults. Anything given explicitly overrides the
            task's. With a task and no ``model``, the model is ``task.make_model(seed)`` and is
            discarded afterwards; pass ``model=task.make_model(seed)`` to keep the trained one
            (it is trained in place).
        model: The model to train (in place). Parameters with ``requires_grad=False`` (frozen)
            are left out of the optimizer.
        train_loader: Iterable of ``(inputs..., target)`` batches. When it is a ``DataLoader``
            with a ``torch.Generator`` (on the loader or its sampler), that generator is reseeded
            from ``(seed, epoch)`` at the start of every epoch, so the order of each epoch is
            reproducible and resuming mid-epoch is exact.
        val_loader: Iterable of ``(inputs..., target)`` batches for evaluation.
        loss_fn: ``loss_fn(output, target) -> scalar tensor``.
        metric_fn: ``metric_fn(output, target) -> float``, higher is better, called once on the
            concatenated validation outputs. Without one (and no task) the metric is the negated
            validation loss, named ``"neg_val_loss"``.
        metric_name: Name recorded in the history (default: the task's, or ``"metric"``).
        optimizer: A name from :data:`lrkit.train.OPTIMIZERS` (``"sgd"`` has momentum 0.9),
            ``factory(params) -> Optimizer``, or a ``torch.optim.Optimizer`` built over
            ``model``'s parameters (give ``model=`` too), which is trained as it is: its class,
            param groups and state (continued, for example after a range test). With one
            schedule its param groups keep the ratios of their values, as
            :class:`lrkit.Scheduler` does (discriminative learning rates). Default: the task's,
            else ``"sgd"``.
        lr: A float (constant), a schedule, or a :class:`~lrkit.schedules.Hyper` such as
            ``one_cycle(...)`` (which also schedules momentum). Default: the task's
            ``default_lr`` when the optimizer is the task's, else :func:`lrkit.train.default_lr`
            of the optimizer. With an optimizer factory or instance and ``lr=None`` its
            learning rates are left alone.
        momentum: A float (fixed; SGD/RMSprop momentum or Adam-family beta1) or a schedule
            (an optimizer factory or instance sets a fixed one itself).
        weight_decay: A float or a schedule (an optimizer factory or instance sets a fixed one
            itself).
        nesterov: Nesterov momentum (SGD only).
        steps: Number of optimizer updates. Give ``steps`` or ``epochs``, not both.
        epochs: Passes over the training data; ``steps = ceil(epochs * batches_per_epoch /
            accumulation_steps)``. Default (neither given): the task's ``epochs``.
        batch_size: Training batch size for a task's loaders (default: the task's); under
            ``torchrun`` the batch size of each process.
        accumulation_steps: Batches whose gradients are summed (as a mean) per update.
        max_grad_norm: Clip the global gradient norm to this value before each update.
        amp: Mixed precision: ``torch.autocast`` with float16 and a ``GradScaler`` on CUDA,
            bfloat16 without a scaler on the CPU. An update the scaler skips (inf/NaN
            gradients) is retried on the next batches and does not count as a step.
        autocast: The autocast dtype itself, ``torch.bfloat16`` or ``torch.float16`` (with a
            ``GradScaler`` on CUDA), as :func:`lrkit.range_test` and :func:`lrkit.tune_lr`
            take it, so a run trains the update its range test and search measured; it
            implies ``amp`` and overrides its choice of dtype.
        device: Where the model and batches go. Under ``torchrun``, ``"cuda"`` means this
            process's current CUDA device (``torch.cuda.set_device(LOCAL_RANK)``, which
            :func:`lrkit.engine.distributed.init_from_env` does).
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
            final checkpoint is also written when the run ends. Under ``torchrun`` rank 0 writes
            it (with every rank's RNG and data position) while the others wait, and every rank
            reads it to resume, so it must be a folder they all see.
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

    Raises:
        ValueError: inconsistent or invalid settings (checked again when :func:`fit` resolves
            the task and the data).
    """

    task: Task | str | None = None
    model: nn.Module | None = None
    train_loader: Iterable[Any] | None = None
    val_loader: Iterable[Any] | None = None
    loss_fn: LossFn | None = None
    metric_fn: MetricFn | None = None
    metric_name: str | None = None
    optimizer: str | OptimizerFactory | torch.optim.Optimizer | None = None
    lr: float | Schedule | Hyper | None = None
    momentum: float | Schedule | None = None
    weight_decay: float | Schedule = 0.0
    nesterov: bool = False
    steps: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    accumulation_steps: int = 1
    max_grad_norm: float | None = None
    amp: bool = False
    autocast: torch.dtype | None = None
    device: str | torch.device = "cpu"
    eval_every: int | None = None
    observe: Observe = "val_loss"
    target: float | None = None
    stop_at_target: bool = False
    stop_at_cycle_end: int | None = None
    checkpoint_every: int | None = None
    checkpoint_dir: str | os.PathLike[str] | None = None
    resume: bool = False
    seed: int = 0
    num_threads: int | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        if self.task is not None and not isinstance(self.task, (Task, str)):
            raise ValueError(
                f"task must be a Task, a task name or None, got {type(self.task).__name__}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        positive_int("accumulation_steps", self.accumulation_steps)
        if self.observe not in ("val_loss", "metric"):
            raise ValueError(f"observe must be 'val_loss' or 'metric', got {self.observe!r}")
        if self.autocast is not None and self.autocast not in AUTOCAST_DTYPES:
            raise ValueError(
                f"autocast must be torch.bfloat16, torch.float16 or None, got {self.autocast!r}"
            )
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0 or None, got {self.max_grad_norm!r}")
        if self.batch_size is not None and (self.train_loader is not None or self.task is None):
            raise ValueError(
                "batch_size applies to a task's loaders; set the batch size of your own "
                "train_loader"
            )
        if self.steps is not None and self.epochs is not None:
            raise ValueError(
                f"give steps or epochs, not both (got steps={self.steps}, epochs={self.epochs})"
            )
        for name in ("steps", "epochs", "eval_every", "stop_at_cycle_end", "checkpoint_every"):
            positive_int_or_none(name, getattr(self, name))
        if self.checkpoint_every is not None and self.checkpoint_dir is None:
            raise ValueError("checkpoint_every needs checkpoint_dir (where to write checkpoints)")
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir (where the checkpoint is)")
        positive_int_or_none("num_threads", self.num_threads)
        self._check_optimizer_settings()

    def _check_optimizer_settings(self) -> None:
        _as_schedule("lr", self.lr)
        momentum, wd = self.momentum, self.weight_decay
        if _is_number(momentum):
            if isinstance(self.lr, Hyper) and self.lr.momentum is not None:
                raise ValueError(
                    "momentum is given twice: by lr (a Hyper with a momentum schedule) and as a "
                    "float; drop momentum= or build the Hyper with momentum=None"
                )
        elif momentum is not None and not isinstance(momentum, Schedule):
            raise ValueError(f"momentum must be a float, a schedule or None, got {momentum!r}")
        if not (_is_number(wd) or isinstance(wd, Schedule)):
            raise ValueError(f"weight_decay must be a float or a schedule, got {wd!r}")
        opt = self.optimizer
        if opt is None or isinstance(opt, str):
            if isinstance(opt, str):
                default_lr(opt.lower())  # rejects unknown names, listing the known ones
            return
        instance = isinstance(opt, torch.optim.Optimizer)
        if not instance and not callable(opt):
            raise ValueError(
                "optimizer must be a name, a callable(params) -> Optimizer or a "
                f"torch.optim.Optimizer, got {opt!r}"
            )
        fixed = [
            n
            for n, v in (
                ("momentum", _is_number(momentum)),
                ("weight_decay", _is_number(wd) and wd != 0),
                ("nesterov", self.nesterov),
            )
            if v
        ]
        if fixed:
            raise ValueError(
                f"an optimizer {'instance' if instance else 'factory'} sets {', '.join(fixed)} "
                f"itself; drop {', '.join(n + '=' for n in fixed)} or pass a schedule"
            )
        if instance and self.model is None:
            raise ValueError(
                f"optimizer is a {type(opt).__name__} instance: give model= too, the model whose "
                "parameters it holds"
            )

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The names of the settings (the keywords :func:`lrkit.train.fit` takes)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A new config with ``overrides`` applied (and checked); unknown names raise."""
        unknown = sorted(set(overrides) - set(self.fields()))
        if unknown:
            raise TypeError(
                f"unknown training setting(s) {', '.join(unknown)}; the settings are the fields "
                f"of TrainConfig: {', '.join(self.fields())}"
            )
        return dataclasses.replace(self, **overrides) if overrides else self


def _as_schedule(name: str, value: float | Schedule | Hyper | None) -> Schedule | Hyper | None:
    if value is None or isinstance(value, (Schedule, Hyper)):
        return value
    if not _is_number(value):
        raise ValueError(f"{name} must be a float, a schedule or a Hyper, got {value!r}")
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return _constant(float(value))


# -- the plan ---------------------------------------------------------------------------------


def derive_seed(seed: int, *tags: int) -> int:
    """A well-mixed 63-bit seed for one purpose (``tags``) of a run with ``seed``."""
    state = np.random.SeedSequence([seed, *tags]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> 1)


DATA_ORDER, GLOBAL_RNG = 0, 1
"""The purposes (``tags`` of :func:`derive_seed`) of a run's seeds: each epoch's data order, and
the global RNGs during the run."""


@dataclass
class _Parts:
    """The task merged with the explicit settings."""

    task: Task | None
    model: nn.Module
    train_loader: Iterable[Any]
    val_loader: Iterable[Any] | None
    loss_fn: LossFn
    metric_fn: MetricFn | None
    metric_name: str
    target: float | None


@dataclass
class Plan(_Parts):
    """A :class:`TrainConfig` resolved against its task and data: what the trainer runs."""

    config: TrainConfig
    optimizer_name: str
    build: Callable[[], tuple[torch.optim.Optimizer, Scheduler | None]]
    total_steps: int
    eval_every: int | None
    device: torch.device
    fingerprint: dict[str, Any]

    @property
    def task_name(self) -> str | None:
        return None if self.task is None else self.task.name


def _merge_task(c: TrainConfig) -> _Parts:
    task = get_task(c.task) if isinstance(c.task, str) else c.task
    model, train, val, loss_fn = c.model, c.train_loader, c.val_loader, c.loss_fn
    metric_fn, metric_name, target = c.metric_fn, c.metric_name, c.target
    if task is not None:
        if train is None or val is None:
            t_train, t_val = task.loaders(batch_size=c.batch_size, seed=c.seed)
            train = t_train if train is None else train
            val = t_val if val is None else val
        model = task.make_model(c.seed) if model is None else model
        loss_fn = task.loss_fn if loss_fn is None else loss_fn
        if metric_fn is None:
            metric_fn = task.metric_fn
            metric_name = task.metric_name if metric_name is None else metric_name
        target = task.target if target is None else target
    if model is None or train is None or loss_fn is None:
        given = (("model", model), ("train_loader", train), ("loss_fn", loss_fn))
        missing = [n for n, v in given if v is None]
        raise ValueError(f"give a task, or {', '.join(missing)} (no task was given)")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if metric_name is None:
        metric_name = "metric" if metric_fn is not None else "neg_val_loss"
    needs_eval = [
        n
        for n, on in (("target", target is not None), ("stop_at_cycle_end", c.stop_at_cycle_end))
        if on
    ]
    if val is None and (needs_eval or c.eval_every is not None):
        raise ValueError(
            f"{', '.join(needs_eval) or 'eval_every'} needs evaluations: give a val_loader"
        )
    if c.stop_at_target and target is None:
        raise ValueError("stop_at_target=True needs a target (the task has none; pass target=)")
    return _Parts(
        task, model, train, val, loss_fn, metric_fn, metric_name,
        None if target is None else float(target),
    )  # fmt: skip


def _len_or_none(loader: Iterable[Any]) -> int | None:
    try:
        n = len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None
    if n == 0:
        raise ValueError("train_loader is empty")
    return n


def _length(c: TrainConfig, parts: _Parts) -> tuple[int, int | None, int | None]:
    """``(total_steps, batches_per_epoch, eval_every)``."""
    batches = _len_or_none(parts.train_loader)
    accum = c.accumulation_steps
    if c.steps is not None:
        total = c.steps
    else:
        epochs = c.epochs
        if epochs is None:
            if parts.task is None:
                raise ValueError("give steps= or epochs= (no task to take the default from)")
            epochs = positive_int("epochs", parts.task.epochs)
        if batches is None:
            raise ValueError("epochs= needs a train_loader with a length; give steps= instead")
        total = math.ceil(epochs * batches / accum)
    eval_every = c.eval_every
    if eval_every is None and parts.val_loader is not None and batches is not None:
        eval_every = max(1, batches // accum)
    return total, batches, eval_every


def _describe(sched: Schedule | Hyper | None) -> object:
    if sched is None:
        return None
    try:
        return sched.to_dict()
    except TypeError:
        return repr(sched)


def _optimizer_builder(
    c: TrainConfig, parts: _Parts
) -> tuple[str, Callable[[], tuple[torch.optim.Optimizer, Scheduler | None]], dict[str, Any]]:
    """The optimizer's name, a builder for it and its schedules, and their description."""
    task, spec, lr = parts.task, c.optimizer, c.lr
    if spec is None:
        spec = task.optimizer if task is not None else "sgd"
    if isinstance(spec, str):
        name = spec.lower()
        if lr is None:
            lr = task.lr_for(name) if task is not None else default_lr(name)
    elif isinstance(spec, torch.optim.Optimizer):
        _check_instance(spec, parts.model)
        name = type(spec).__name__
    else:
        name = getattr(spec, "__qualname__", type(spec).__name__)
    lr_sched = _as_schedule("lr", lr)
    mom_sched = c.momentum if isinstance(c.momentum, Schedule) else None
    mom_value = float(c.momentum) if _is_number(c.momentum) else None  # type: ignore[arg-type]
    wd_sched = c.weight_decay if isinstance(c.weight_decay, Schedule) else None
    wd_value = 0.0 if wd_sched is not None else float(c.weight_decay)  # type: ignore[arg-type]
    if not any(p.requires_grad for p in parts.model.parameters()):
        raise ValueError(
            "the model has no parameter that requires grad: nothing to train (unfreeze some "
            "with requires_grad_(True))"
        )
    nesterov, built_spec = c.nesterov, spec

    def params() -> list[nn.Parameter]:
        # frozen parameters (requires_grad=False) stay out of the optimizer and its state
        return [p for p in parts.model.parameters() if p.requires_grad]

    def build() -> tuple[torch.optim.Optimizer, Scheduler | None]:
        if isinstance(built_spec, torch.optim.Optimizer):
            opt = built_spec
            if lr_sched is None and mom_sched is None and wd_sched is None:
                return opt, None
            return opt, Scheduler(opt, lr=lr_sched, momentum=mom_sched, weight_decay=wd_sched)
        first_lr = (
            None
            if lr_sched is None
            else (lr_sched.lr if isinstance(lr_sched, Hyper) else lr_sched)(0)
        )
        first_mom = mom_value
        if mom_sched is not None:
            first_mom = mom_sched(0)
        elif isinstance(lr_sched, Hyper) and lr_sched.momentum is not None and has_momentum(name):
            first_mom = lr_sched.momentum(0)
        opt = build_optimizer(
            built_spec,
            params(),
            lr=first_lr if first_lr is not None and first_lr > 0 else 1.0,
            weight_decay=wd_sched(0) if wd_sched is not None else wd_value,
            momentum=first_mom,
            nesterov=nesterov,
        )
        if lr_sched is None and mom_sched is None and wd_sched is None:
            return opt, None
        return opt, Scheduler(opt, lr=lr_sched, momentum=mom_sched, weight_decay=wd_sched)

    described = {
        "lr": _describe(lr_sched),
        "momentum": _describe(mom_sched),
        "weight_decay": _describe(wd_sched),
    }
    return name, build, described


def _check_instance(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    """``ValueError`` unless every parameter ``optimizer`` holds is one of ``model``'s."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if not params:
        raise ValueError(f"the {type(optimizer).__name__} given as optimizer has no parameters")
    mine = {id(p) for p in distributed.unwrap(model).parameters()}
    stray = sum(1 for p in params if id(p) not in mine)
    if stray:
        raise ValueError(
            f"{stray} of the {len(params)} parameters of the {type(optimizer).__name__} given "
            "as optimizer are not parameters of the model being trained; build the optimizer "
            "from model.parameters() and pass that model as model="
        )


def _device(device: str | torch.device) -> torch.device:
    d = torch.device(device)
    if d.type == "cuda" and d.index is None and distributed.is_distributed():
        return torch.device("cuda", torch.cuda.current_device())
    return d


def resolve(config: TrainConfig) -> Plan:
    """Merge the task, count the steps and prepare the optimizer: the :class:`Plan` to run.

    Under ``torch.distributed`` the loaders are reduced to this rank's part first
    (:func:`lrkit.engine.distributed.shard`, shuffled from the run's seed, and
    :func:`~lrkit.engine.distributed.shard_eval`), so epochs and evaluations count this rank's
    batches, and the fingerprint records the number of processes."""
    parts = _merge_task(config)
    if distributed.is_distributed():
        parts.train_loader = distributed.shard(
            parts.train_loader, seed=derive_seed(config.seed, DATA_ORDER)
        )
        if parts.val_loader is not None:
            parts.val_loader = distributed.shard_eval(parts.val_loader)
    total, batches, eval_every = _length(config, parts)
    name, build, described = _optimizer_builder(config, parts)
    fingerprint = {
        "task": None if parts.task is None else parts.task.name,
        "optimizer": name,
        "total_steps": total,
        "accumulation_steps": config.accumulation_steps,
        "batches_per_epoch": batches,
        "eval_every": eval_every,
        "stop_at_cycle_end": config.stop_at_cycle_end,
        "seed": config.seed,
        **described,
    }
    if distributed.world() > 1:
        fingerprint["world_size"] = distributed.world()
    return Plan(
        **vars(parts),
        config=config,
        optimizer_name=name,
        build=build,
        total_steps=total,
        eval_every=eval_every,
        device=_device(config.device),
        fingerprint=fingerprint,
    )
