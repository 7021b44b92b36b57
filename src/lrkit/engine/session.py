"""The setup of a training run as one value: what the range test, the search and ``fit`` train.

A :class:`Session` holds the model, the optimizer, the loss (or step) function, gradient
accumulation, the GradScaler, the autocast dtype, gradient clipping, and the validation data
and metric. It is checked once (:meth:`Session.check`), gives the settings every rank must
agree on under ``torch.distributed`` (:meth:`Session.fingerprint`), an exact snapshot to
restore (:meth:`Session.snapshot`) and the :class:`~lrkit.engine.Engine` that performs its
updates (:meth:`Session.engine`), so a probe of the search or a step of the range test is the
user's own update, mixed precision and clipping included.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lrkit._checks import check_model_optimizer, positive_int
from lrkit.engine import distributed
from lrkit.engine.batches import LossFn, StepFn
from lrkit.engine.state import RngState, SnapshotMode, TrainingSnapshot
from lrkit.engine.step import Engine, MetricFn

__all__ = ["AUTOCAST_DTYPES", "Session"]

AUTOCAST_DTYPES = (torch.bfloat16, torch.float16)
"""The dtypes ``autocast`` may name: bf16 (CPU and recent GPUs) or fp16 (CUDA, with a
GradScaler)."""


@dataclass
class Session:
    """What one training update needs, and how it is scored.

    Args:
        model, optimizer: the model and an optimizer over its parameters.
        loss_fn: ``loss_fn(output, target)`` for ``(inputs..., target)`` batches; or
        step_fn: ``step_fn(model, batch) -> loss`` for anything else.
        accumulation_steps: batches per optimizer update (their gradients average).
        scaler: a ``torch.amp.GradScaler`` (fp16 on CUDA); a step it skips is retried.
        autocast: the dtype of the forward pass under ``torch.autocast`` (``torch.bfloat16``
            or ``torch.float16``), or ``None`` for full precision.
        max_grad_norm: clip the global gradient norm to this before each step (after the
            scaler unscales it), or ``None``.
        val_data, metric_fn: the validation batches and ``metric_fn(output, target)``, averaged
            over them (needs ``(inputs..., target)`` batches).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: LossFn | None = None
    step_fn: StepFn | None = None
    accumulation_steps: int = 1
    scaler: Any = None
    autocast: torch.dtype | None = None
    max_grad_norm: float | None = None
    val_data: Iterable[Any] | None = None
    metric_fn: MetricFn | None = None

    def check(self, who: str, *, val_read: str = "at every step") -> None:
        """Raise ``TypeError``/``ValueError`` saying what to change, before anything is
        modified; ``who`` names the caller in the messages, ``val_read`` when it reads
        ``val_data``."""
        check_model_optimizer(self.model, self.optimizer)
        positive_int("accumulation_steps", self.accumulation_steps)
        if self.autocast is not None and self.autocast not in AUTOCAST_DTYPES:
            raise ValueError(
                f"autocast must be torch.bfloat16, torch.float16 or None, got {self.autocast!r}"
            )
        norm = self.max_grad_norm
        if norm is not None and (
            isinstance(norm, bool)
            or not isinstance(norm, (int, float))
            or not math.isfinite(norm)
            or norm <= 0
        ):
            raise ValueError(f"max_grad_norm must be a finite number > 0 or None, got {norm!r}")
        if self.step_fn is None and self.loss_fn is None:
            raise ValueError("pass loss_fn(output, target) or step_fn(model, batch) -> loss")
        if self.metric_fn is not None and self.val_data is None:
            raise ValueError("metric_fn needs val_data (the metric is measured on validation data)")
        if self.metric_fn is not None and self.step_fn is not None:
            raise ValueError(
                "metric_fn needs (inputs..., target) batches used with loss_fn; it cannot be "
                "combined with step_fn"
            )
        if isinstance(self.val_data, Iterator):
            raise ValueError(f"val_data is read {val_read}; pass a list or a DataLoader")
        distributed.require_wrapped(self.model, who)

    def fingerprint(self) -> dict[str, Any]:
        """The settings every rank must share under ``torch.distributed``."""
        return {
            "accumulation_steps": self.accumulation_steps,
            "val_data": self.val_data is not None,
            "metric_fn": self.metric_fn is not None,
            "step_fn": self.step_fn is not None,
            "scaler": self.scaler is not None,
            "autocast": None if self.autocast is None else str(self.autocast),
            "max_grad_norm": self.max_grad_norm,
        }

    def engine(self) -> Engine:
        """The :class:`~lrkit.engine.Engine` that performs this session's updates and
        evaluations (close it, or use it as a context manager, when done)."""
        return Engine(
            self.model,
            self.optimizer,
            loss_fn=self.loss_fn,
            step_fn=self.step_fn,
            accumulation_steps=self.accumulation_steps,
            scaler=self.scaler,
            autocast_dtype=self.autocast,
            max_grad_norm=self.max_grad_norm,
        )

    def snapshot(self, mode: SnapshotMode, rng: RngState) -> TrainingSnapshot:
        """An exact copy of the model, the optimizer and the scaler, with ``rng``, to restore
        afterwards (on the CPU, or on ``"disk"``)."""
        return TrainingSnapshot.take(self.model, self.optimizer, self.scaler, mode, rng=rng)
