"""The one training step and the one evaluation, shared by the range test, the trainer and the
search."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from torch import nn

from lrkit.engine import distributed
from lrkit.engine.batches import LossFn, StepFn, batch_size, compute_loss, move_to_device

__all__ = ["Engine", "Evaluation", "MetricFn", "Update", "UpdateStatus", "model_device"]

MetricFn = Callable[[Any, Any], float]
"""``metric_fn(outputs, targets) -> float``."""

UpdateStatus = Literal["applied", "skipped", "nonfinite"]


@dataclass(frozen=True)
class Update:
    """What one optimizer update did.

    ``loss`` is the mean loss of its micro-batches. ``status`` is ``"applied"`` (the optimizer
    stepped), ``"skipped"`` (the GradScaler found inf/NaN gradients and skipped the step) or
    ``"nonfinite"`` (the loss itself is NaN or infinite; the step was not taken and the gradients
    were cleared).
    """

    loss: float
    status: UpdateStatus


@dataclass(frozen=True)
class Evaluation:
    """Mean loss and metric over a set of batches, weighted by batch size."""

    loss: float
    metric: float
    examples: int


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without any)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


class Engine:
    """One training step and one evaluation for a model, its optimizer and a batch convention.

    Batches follow :mod:`lrkit.engine.batches`: ``(inputs..., target)`` tuples scored as
    ``loss_fn(model(*inputs), target)``, or anything when ``step_fn(model, batch) -> loss`` is
    given; tensors are moved (recursively) to ``device``.

    :meth:`update` performs one optimizer update: ``accumulation_steps`` micro-batches whose
    gradients average, the forward pass under ``torch.autocast`` when ``autocast_dtype`` is
    set, the loss scaled by ``scaler`` (a ``torch.amp.GradScaler``) with the skipped step
    detected, the global gradient norm clipped to ``max_grad_norm``, and the optimizer step. A
    NaN or infinite loss is never stepped on. Use it as a context manager (or call
    :meth:`close`) to remove the step hook it registers on the optimizer for the scaler.

    Under ``torch.distributed`` (a process group of several processes when the engine is made,
    the model wrapped in ``DistributedDataParallel``), the loss of each update is the mean over
    the ranks weighted by their batch sizes, and :meth:`evaluate` pools every rank's examples,
    so every rank gets the same numbers (:mod:`lrkit.engine.distributed`). Micro-batches
    before the last of an update skip the gradient exchange (``no_sync``).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        loss_fn: LossFn | None = None,
        step_fn: StepFn | None = None,
        accumulation_steps: int = 1,
        scaler: Any = None,
        autocast_dtype: torch.dtype | None = None,
        max_grad_norm: float | None = None,
        device: torch.device | None = None,
    ) -> None:
        if loss_fn is None and step_fn is None:
            raise ValueError("pass loss_fn(output, target) or step_fn(model, batch) -> loss")
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.step_fn = step_fn
        self.accumulation_steps = accumulation_steps
        self.scaler = scaler
        self.autocast_dtype = autocast_dtype
        self.max_grad_norm = max_grad_norm
        self.device = model_device(model) if device is None else device
        self.distributed = distributed.is_distributed()
        self._stepped = 0
        self._hook: Any = None
        if scaler is not None:
            self._hook = optimizer.register_step_post_hook(self._count)

    def _count(self, *_: Any) -> None:
        self._stepped += 1

    def close(self) -> None:
        """Remove the optimizer hook that detects steps the scaler skipped."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def loss(self, batch: Any, model: nn.Module | None = None) -> tuple[torch.Tensor, Any, Any]:
        """The loss of one batch (moved to the device, under autocast) through ``model``
        (default: the engine's): ``(loss, output, target)``, output and target ``None`` with
        ``step_fn``."""
        batch = move_to_device(batch, self.device)
        with self._autocast():
            return compute_loss(
                self.model if model is None else model, batch, self.loss_fn, self.step_fn
            )

    def _backward(self, batch: Any) -> torch.Tensor:
        """Forward and backward on one micro-batch; its loss."""
        acc, scaler = self.accumulation_steps, self.scaler
        loss, _, _ = self.loss(batch)
        scaled = loss / acc if acc > 1 else loss
        (scaled if scaler is None else scaler.scale(scaled)).backward()
        return loss

    def _clip(self) -> None:
        if self.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)

    def update(self, stream: Iterator[Any]) -> Update:
        """One optimizer update on the next ``accumulation_steps`` batches of ``stream``."""
        opt, acc, scaler = self.optimizer, self.accumulation_steps, self.scaler
        opt.zero_grad(set_to_none=True)
        total: torch.Tensor | None = None
        examples = 0
        for i in range(acc):
            batch = next(stream)
            if self.distributed and i < acc - 1 and hasattr(self.model, "no_sync"):
                with cast(Any, self.model).no_sync():  # gradients go after the last micro-batch
                    loss = self._backward(batch)
            else:
                loss = self._backward(batch)
            detached = loss.detach().float()
            total = detached if total is None else total + detached
            if self.distributed:
                examples += batch_size(batch)
        assert total is not None
        value = float(total.item()) / acc
        if self.distributed:
            value = distributed.all_mean(value, examples)
        if not math.isfinite(value):
            opt.zero_grad(set_to_none=True)
            return Update(value, "nonfinite")
        if scaler is None:
            self._clip()
            opt.step()
            return Update(value, "applied")
        if self.max_grad_norm is not None:
            scaler.unscale_(opt)
            self._clip()
        before = self._stepped
        scaler.step(opt)
        scaler.update()
        return Update(value, "applied" if self._stepped > before else "skipped")

    def evaluate(
        self, batches: Iterable[Any], metric_fn: MetricFn | None = None, *, pooled: bool = False
    ) -> Evaluation:
        """Mean loss over ``batches`` weighted by batch size, in eval mode without gradients
        (the mode is put back afterwards), and the metric: the weighted mean of
        ``metric_fn(output, target)`` per batch, or with ``pooled=True`` one call on all outputs
        and targets concatenated (for metrics that do not average over batches, such as R²).
        Without ``metric_fn`` the metric is NaN.

        Distributed, the sums and counts of all ranks are added (and pooled outputs gathered),
        so every rank gets the evaluation of all ranks' batches together; the model runs
        without its ``DistributedDataParallel`` wrapper, with rank 0's buffers."""
        model = distributed.unwrap(self.model)
        if self.distributed:
            distributed.sync_buffers(model)
        was_training = model.training
        model.eval()
        loss_sum: torch.Tensor | None = None
        metric_sum = 0.0
        n = 0
        outputs: list[Any] = []
        targets: list[Any] = []
        try:
            with torch.no_grad():
                for batch in batches:
                    loss, output, target = self.loss(batch, model)
                    size = batch_size(batch)
                    weighted = loss.detach().float().reshape(()) * size
                    loss_sum = weighted if loss_sum is None else loss_sum + weighted
                    n += size
                    if metric_fn is None:
                        continue
                    if pooled:
                        outputs.append(output.float())
                        targets.append(target)
                    else:
                        metric_sum += float(metric_fn(output, target)) * size
        finally:
            model.train(was_training)
        total = 0.0 if loss_sum is None else float(loss_sum.item())
        if self.distributed:
            total, count, metric_sum = distributed.all_sum([total, n, metric_sum])
            n = round(count)
            if metric_fn is not None and pooled:
                pools = distributed.all_gather(
                    (
                        [o.detach().cpu() for o in outputs],
                        [t.cpu() if isinstance(t, torch.Tensor) else t for t in targets],
                    )
                )
                outputs = [o for pool in pools for o in pool[0]]
                targets = [t for pool in pools for t in pool[1]]
        if n == 0:
            raise ValueError("the validation data is empty: it yielded no batches")
        metric = math.nan
        if metric_fn is not None:
            if pooled:
                metric = float(metric_fn(torch.cat(outputs), torch.cat(targets)))
            else:
                metric = metric_sum / n
        return Evaluation(total / n, metric, n)
