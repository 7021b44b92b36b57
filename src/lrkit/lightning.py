"""lrkit for PyTorch Lightning: a callback that drives lrkit schedules, and the range test on a
LightningModule.

Install with ``pip install "lrkit[lightning]"``. This module imports ``pytorch_lightning`` (or,
when only the unified package is installed, ``lightning.pytorch``); ``import lrkit`` does not.

- :class:`ScheduleCallback` writes lrkit schedules (learning rate, momentum, weight decay, per
  param group with their ratios, see :class:`lrkit.Scheduler`) into a Trainer's optimizer after
  every optimizer step, is saved in Lightning checkpoints and resumes exactly, and logs the
  values to the Trainer's loggers.
- :func:`range_test` runs :func:`lrkit.range_test` on a LightningModule's own ``training_step``,
  with the optimizer from ``configure_optimizers`` and the data from loaders or a datamodule, and
  restores the module and the optimizer afterwards.
"""

from __future__ import annotations

import importlib
import re
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from lrkit.driver import Scheduler
from lrkit.engine import StepFn
from lrkit.finder import RangeTestResult, TuneResult
from lrkit.finder import range_test as _range_test
from lrkit.finder import tune_lr as _tune_lr
from lrkit.schedules import Policy, Schedule


def _import_lightning() -> Any:
    """``pytorch_lightning``, or the unified ``lightning.pytorch``; the one already imported by
    the caller first, so the callback subclasses the Callback of the caller's Trainer."""
    names = ("pytorch_lightning", "lightning.pytorch")
    for name in sorted(names, key=lambda n: n not in sys.modules):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError('lrkit.lightning needs PyTorch Lightning: pip install "lrkit[lightning]"')


pl = _import_lightning()
_Callback: Any = pl.Callback

__all__ = ["ScheduleCallback", "range_test", "tune_lr"]

_LOG_WITHOUT_TRAINER = "You are trying to `self.log()` but the `self.trainer` reference"


class ScheduleCallback(_Callback):  # type: ignore[misc]
    """Drive a Trainer's optimizer with lrkit schedules, one step per optimizer update.

    ``ScheduleCallback(lr=one_cycle(peak, total_steps))`` builds a :class:`lrkit.Scheduler` on
    ``trainer.optimizers[optimizer_index]`` when training starts and moves it to
    ``trainer.global_step`` after every training batch, so gradient accumulation
    (``accumulate_grad_batches``) advances the schedule once per optimizer update. The arguments
    are those of :class:`lrkit.Scheduler`: ``lr`` may be a :class:`~lrkit.schedules.Hyper` such
    as ``one_cycle(...)``, whose momentum schedule is used too (``momentum`` for SGD,
    ``betas[0]`` for Adam-like optimizers); several param groups keep their ratios.

    The position is saved in Lightning checkpoints (``trainer.save_checkpoint``,
    ``ModelCheckpoint``) and ``trainer.fit(..., ckpt_path=...)`` continues the schedule exactly.
    With ``log=True`` the value of every scheduled hyperparameter at each update is logged to
    ``trainer.loggers`` as ``lr``, ``momentum``, ``weight_decay`` (``lr/group1``, ... for the
    other param groups), every ``log_every_n_steps`` updates, as Lightning's own
    ``LearningRateMonitor`` does.

    ``configure_optimizers`` should then return the optimizer alone: a scheduler of its own would
    write the learning rate too, so training refuses to start with one.
    """

    def __init__(
        self,
        lr: Policy | Sequence[Schedule] | None = None,
        momentum: Schedule | Sequence[Schedule] | None = None,
        weight_decay: Schedule | Sequence[Schedule] | None = None,
        *,
        optimizer_index: int = 0,
        log: bool = True,
    ) -> None:
        if lr is None and momentum is None and weight_decay is None:
            raise ValueError("give at least one schedule: lr=, momentum= or weight_decay=")
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.optimizer_index = optimizer_index
        self.log = log
        self.scheduler: Scheduler | None = None
        self._pending: dict[str, Any] | None = None
        self._logged_step = -1

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.lr_scheduler_configs:
            raise ValueError(
                "configure_optimizers returns an LR scheduler, and ScheduleCallback drives the "
                "optimizer too; return only the optimizer from configure_optimizers"
            )
        optimizers = trainer.optimizers
        if not 0 <= self.optimizer_index < len(optimizers):
            raise ValueError(
                f"optimizer_index={self.optimizer_index}, but configure_optimizers returned "
                f"{len(optimizers)} optimizer(s)"
            )
        self.scheduler = Scheduler(
            optimizers[self.optimizer_index], self.lr, self.momentum, self.weight_decay
        )
        if self._pending is not None:
            self.scheduler.load_state_dict(self._pending)
            self._pending = None
        self._advance(trainer)

    def _advance(self, trainer: Any) -> None:
        sched = self.scheduler
        if sched is None:
            return
        while sched.current_step < trainer.global_step:
            sched.step()

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        sched = self.scheduler
        if not self.log or sched is None or not trainer.loggers:
            return
        step = trainer.global_step
        if step == self._logged_step or step % max(1, trainer.log_every_n_steps) != 0:
            return
        self._logged_step = step
        metrics: dict[str, float] = {}
        for name, values in sched.values().items():
            for g, value in enumerate(values):
                metrics[name if g == 0 else f"{name}/group{g}"] = value
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._advance(trainer)

    def state_dict(self) -> dict[str, Any]:
        if self.scheduler is not None:
            return {"scheduler": self.scheduler.state_dict()}
        return {"scheduler": self._pending}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("scheduler")
        if saved is None:
            return
        if self.scheduler is not None:
            self.scheduler.load_state_dict(saved)
        else:
            self._pending = saved


def _first_optimizer(configured: Any) -> torch.optim.Optimizer:
    """The (first) optimizer in any of the forms ``configure_optimizers`` may return."""
    item = configured
    while True:
        if isinstance(item, torch.optim.Optimizer):
            return item
        if isinstance(item, Mapping) and "optimizer" in item:
            item = item["optimizer"]
        elif isinstance(item, (list, tuple)) and item:
            item = item[0]
        else:
            raise ValueError(
                "could not find an optimizer in what configure_optimizers returned "
                f"({type(configured).__name__}); pass optimizer= to range_test"
            )


def _loss_of(output: Any) -> torch.Tensor:
    if isinstance(output, Mapping):
        output = output.get("loss")
    if not isinstance(output, torch.Tensor):
        raise ValueError(
            "training_step must return the loss (a scalar tensor, or a dict with 'loss') for a "
            f"range test, got {type(output).__name__}"
        )
    return output


def _prepare(
    module: Any,
    train_dataloaders: Iterable[Any] | None,
    datamodule: Any,
    val_dataloaders: Iterable[Any] | None,
    validate: bool,
    optimizer: torch.optim.Optimizer | None,
) -> tuple[Iterable[Any], Iterable[Any] | None, torch.optim.Optimizer, StepFn]:
    """The data, validation data, optimizer and ``step_fn`` of a LightningModule."""
    if not isinstance(module, pl.LightningModule):
        raise TypeError(f"module must be a LightningModule, got {type(module).__name__}")
    if (train_dataloaders is None) == (datamodule is None):
        raise ValueError("give either train_dataloaders or datamodule")
    if validate and datamodule is None:
        raise ValueError("validate=True reads the datamodule's val_dataloader(); pass datamodule")
    data: Iterable[Any] | None = train_dataloaders
    if datamodule is not None:
        datamodule.prepare_data()
        datamodule.setup("fit")
        data = datamodule.train_dataloader()
        if validate:
            val_dataloaders = datamodule.val_dataloader()
    if data is None:
        raise ValueError("the datamodule's train_dataloader() returned None")
    if optimizer is None:
        optimizer = _first_optimizer(module.configure_optimizers())
    calls = [0]

    def step_fn(model: Any, batch: Any) -> torch.Tensor:
        calls[0] += 1
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=re.escape(_LOG_WITHOUT_TRAINER))
            return _loss_of(model.training_step(batch, calls[0] - 1))

    return data, val_dataloaders, optimizer, step_fn


def range_test(
    module: Any,
    train_dataloaders: Iterable[Any] | None = None,
    *,
    datamodule: Any = None,
    val_dataloaders: Iterable[Any] | None = None,
    validate: bool = False,
    optimizer: torch.optim.Optimizer | None = None,
    **range_test_kwargs: Any,
) -> RangeTestResult:
    """The LR range test on a LightningModule's own ``training_step`` (see
    :func:`lrkit.range_test` for the sweep, the rules and ``range_test_kwargs``).

    Args:
        module: the LightningModule; restored afterwards (every parameter, buffer and mode).
        train_dataloaders: the training batches; or give ``datamodule``, whose
            ``train_dataloader()`` is used (after ``prepare_data()`` and ``setup("fit")``).
        datamodule: a LightningDataModule.
        val_dataloaders: score each step on these batches instead of the training loss: the
            loss ``training_step`` returns on them, under ``torch.no_grad`` in eval mode (unlike
            Lightning's own finder, which reads only the training loss).
        validate: with a datamodule, score each step on its ``val_dataloader()``.
        optimizer: the optimizer to sweep; by default the first one ``configure_optimizers``
            returns (its LR schedulers are not used). Its state is restored afterwards.

    ``self.log`` calls inside ``training_step`` are ignored during the test, without the warning
    Lightning gives outside a Trainer. The step runs outside a Trainer, so ``training_step``
    must not need ``self.trainer``.
    """
    data, val, opt, step_fn = _prepare(
        module, train_dataloaders, datamodule, val_dataloaders, validate, optimizer
    )
    return _range_test(module, opt, data, step_fn=step_fn, val_data=val, **range_test_kwargs)


def tune_lr(
    module: Any,
    train_dataloaders: Iterable[Any] | None = None,
    *,
    total_steps: int,
    datamodule: Any = None,
    val_dataloaders: Iterable[Any] | None = None,
    validate: bool = True,
    optimizer: torch.optim.Optimizer | None = None,
    **tune_kwargs: Any,
) -> TuneResult:
    """The budgeted search (:func:`lrkit.tune_lr`) on a LightningModule's own
    ``training_step``: the peak of the schedule you will train with for ``total_steps``
    updates, probes scored on the loss ``training_step`` gives on the validation batches
    (``val_dataloaders``, or the datamodule's with ``validate=True``; without either, a slice
    of the training batches). Arguments otherwise as :func:`range_test`'s and
    :func:`lrkit.tune_lr`'s; the module and optimizer are restored afterwards."""
    use_val = validate and datamodule is not None
    data, val, opt, step_fn = _prepare(
        module, train_dataloaders, datamodule, val_dataloaders, use_val, optimizer
    )
    return _tune_lr(
        module, opt, data, step_fn=step_fn, val_data=val, total_steps=total_steps, **tune_kwargs
    )
