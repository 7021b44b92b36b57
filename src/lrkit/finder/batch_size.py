"""The largest batch that fits in memory (Smith 2018, arXiv 1803.09820: use the largest batch
size that fits), and the learning-rate scaling it implies, as advice.

:func:`largest_batch` repeats an example batch along its first dimension to 1, 2, 4, ... times
the starting size and runs one real training step at each size (forward, backward and, when an
optimizer is given, its step, whose state counts too) until the device runs out of memory or the
peak passes ``memory_limit``. Everything it touched is then put back exactly, as after a range
test (:class:`~lrkit.engine.TrainingSnapshot`: parameters, gradients, buffers, the optimizer's
state and hyperparameters, train/eval modes and the random number generators).

How the peak is measured is told in :mod:`lrkit.finder.step_memory`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from lrkit._checks import check_model_optimizer
from lrkit._files import atomic_write_text
from lrkit.engine import (
    LossFn,
    RngState,
    StepFn,
    TrainingSnapshot,
    batch_size,
    model_device,
    move_to_device,
    validate_batch,
)
from lrkit.finder.step_memory import (
    StepMemory,
    batch_tensors,
    format_bytes,
    free_memory,
    parse_memory,
)

__all__ = [
    "BatchAdvice",
    "BatchSizeResult",
    "BatchStop",
    "largest_batch",
    "parse_memory",
]

logger = logging.getLogger(__name__)

BatchStop = Literal["memory_limit", "out_of_memory", "max_batch", "data_size"]
"""Why the search stopped: a size passed ``memory_limit``, the device ran out of memory, or the
next size would pass ``max_batch`` or the number of training examples (``data_size``)."""

# Adam's family and RMSprop, for which the square-root rule holds (Malladi et al. 2022); the
# linear rule (Goyal et al. 2017) is stated for SGD.
_SQRT_RULE = (
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.Adamax,
    torch.optim.NAdam,
    torch.optim.RAdam,
    torch.optim.RMSprop,
)


@dataclass(frozen=True)
class BatchAdvice:
    """The learning rate a larger batch implies, as advice: nothing is changed.

    ``factor`` is ``batch / current_batch``. ``linear_lr = current_lr * factor`` is the linear
    scaling rule (Goyal et al. 2017, arXiv 1706.02677, for SGD, with a gradual warm-up);
    ``sqrt_lr = current_lr * sqrt(factor)`` the square-root rule (Krizhevsky 2014; Hoffer et al.
    2017; Malladi et al. 2022 for Adam and RMSprop). ``rule`` is the one for the optimizer the
    search ran with and ``lr`` its value; ``text`` says all of it in words.
    """

    current_batch: int
    current_lr: float
    batch: int
    factor: float
    linear_lr: float
    sqrt_lr: float
    rule: Literal["linear", "sqrt"]
    lr: float
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class BatchSizeResult:
    """What :func:`largest_batch` measured.

    Attributes:
        sizes: The batch sizes tried, in order (doubling).
        peaks: The peak memory of a training step at each size in bytes (see the module notes
            for what it counts); ``None`` where the device ran out of memory.
        largest: The largest size that fit.
        stop_reason: Why the search stopped (:data:`BatchStop`).
        memory_limit: The limit in bytes, or ``None``.
        device: Where it was measured (``"cpu"``, ``"cuda:0"``).
        optimizer: The optimizer's class name, or ``None`` (forward and backward only).
        rule: The learning-rate scaling rule for that optimizer: ``"sqrt"`` for Adam's family
            and RMSprop, ``"linear"`` otherwise.
        data_size: The number of training examples when it was given: no size larger was
            tried, and :meth:`advice` advises none larger; ``None`` when unknown.
    """

    sizes: tuple[int, ...]
    peaks: tuple[int | None, ...]
    largest: int
    stop_reason: BatchStop
    memory_limit: int | None
    device: str
    optimizer: str | None
    rule: Literal["linear", "sqrt"]
    data_size: int | None = None

    @property
    def fits(self) -> tuple[bool, ...]:
        """For each size, whether it fit (no out-of-memory error, peak within the limit)."""
        limit = self.memory_limit
        return tuple(p is not None and (limit is None or p <= limit) for p in self.peaks)

    def advice(
        self, current_batch: int, current_lr: float, *, batch: int | None = None
    ) -> BatchAdvice:
        """The learning rate for training at ``batch`` (default: :attr:`largest`) instead of
        ``current_batch`` at ``current_lr``, by the linear and the square-root rules. Advice
        only: run a range test at the new batch size to confirm it. When the search stopped at
        the size of the data, the text says so; a ``batch`` larger than the data raises
        ``ValueError``."""
        if (
            isinstance(current_batch, bool)
            or not isinstance(current_batch, int)
            or current_batch < 1
        ):
            raise ValueError(f"current_batch must be a positive int, got {current_batch!r}")
        if (
            isinstance(current_lr, bool)
            or not isinstance(current_lr, (int, float))
            or not math.isfinite(current_lr)
            or current_lr <= 0
        ):
            raise ValueError(f"current_lr must be a finite number > 0, got {current_lr!r}")
        new = self.largest if batch is None else batch
        if isinstance(new, bool) or not isinstance(new, int) or new < 1:
            raise ValueError(f"batch must be a positive int, got {new!r}")
        if self.data_size is not None and new > self.data_size:
            raise ValueError(
                f"batch {new} is larger than the data ({self.data_size} training examples); "
                f"give a batch of at most {self.data_size}"
            )
        factor = new / current_batch
        linear, sqrt = current_lr * factor, current_lr * math.sqrt(factor)
        lr = sqrt if self.rule == "sqrt" else linear
        which = (
            f"For {self.optimizer} the {self.rule} rule applies"
            if self.optimizer is not None
            else f"No optimizer was given; the {self.rule} rule is assumed"
        )
        capped = ""
        if self.stop_reason == "data_size" and new == self.largest:
            capped = (
                f" (capped by the data: {self.data_size} training examples; the next size, "
                f"{2 * new}, would be larger)"
            )
        text = (
            f"batch {current_batch} -> {new}{capped} (x{factor:.3g}): linear scaling rule (Goyal "
            "et al. 2017, for SGD, with a gradual warm-up over the first epochs): lr "
            f"{current_lr:.3g} -> {linear:.3g}; square-root rule (Adam family and RMSprop, "
            f"Malladi et al. 2022): lr {current_lr:.3g} -> {sqrt:.3g}. {which}: lr {lr:.3g}. "
            f"Advice only, nothing was changed; confirm with a range test at batch {new}."
        )
        return BatchAdvice(
            current_batch, float(current_lr), new, factor, linear, sqrt, self.rule, lr, text
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        d = asdict(self)
        d["sizes"], d["peaks"] = list(self.sizes), list(self.peaks)
        d["fits"] = list(self.fits)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BatchSizeResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            sizes=tuple(int(s) for s in d["sizes"]),
            peaks=tuple(None if p is None else int(p) for p in d["peaks"]),
            largest=int(d["largest"]),
            stop_reason=d["stop_reason"],
            memory_limit=None if d["memory_limit"] is None else int(d["memory_limit"]),
            device=str(d["device"]),
            optimizer=d["optimizer"],
            rule=d["rule"],
            data_size=None if d.get("data_size") is None else int(d["data_size"]),
        )

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` as JSON (atomically)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")


def _check_inputs(
    model: nn.Module,
    example_batch: Any,
    loss_fn: LossFn | None,
    optimizer: torch.optim.Optimizer | None,
    step_fn: StepFn | None,
    device: str | torch.device | None,
) -> tuple[int, torch.device]:
    """The example's batch size and the device, or ``ValueError``/``TypeError``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if optimizer is not None:
        check_model_optimizer(model, optimizer)
    elif not any(p.requires_grad for p in model.parameters()):
        raise ValueError("the model has no parameter that requires grad")
    if step_fn is None and loss_fn is None:
        raise ValueError("pass loss_fn(output, target) or step_fn(model, batch) -> loss")
    validate_batch(
        example_batch, has_step_fn=step_fn is not None, has_loss_fn=True, what="example_batch"
    )
    tensors = list(batch_tensors(example_batch))
    if not tensors:
        raise ValueError(
            f"example_batch holds no tensor to repeat (got {type(example_batch).__name__}); "
            "give a batch of tensors, e.g. (inputs, targets), as the data loader yields it"
        )
    n = batch_size(example_batch)
    if n < 1 or all(t.dim() == 0 for t in tensors):
        raise ValueError(
            "example_batch is empty: its tensors have no examples along the first dimension; "
            "give at least one example"
        )
    where = model_device(model)
    if device is not None and torch.device(device) != where:
        want = torch.device(device)
        same = want.type == where.type and want.index is None
        if not same:
            raise ValueError(
                f"the model is on {where}, not on {want}; move it there first "
                f"(model.to('{want}')) or leave device out"
            )
    if where.type not in ("cpu", "cuda"):
        raise ValueError(f"largest_batch measures memory on the CPU and CUDA, not on {where}")
    return n, where


def largest_batch(
    model: nn.Module,
    example_batch: Any,
    *,
    loss_fn: LossFn | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    step_fn: StepFn | None = None,
    memory_limit: int | str | None = None,
    start: int | None = None,
    max_batch: int = 65536,
    data_size: int | None = None,
    device: str | torch.device | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> BatchSizeResult:
    """Find the largest batch size whose training step fits in memory, by doubling.

    The example batch is repeated along its first dimension to ``start``, ``2 * start``,
    ``4 * start``, ... examples (every tensor whose first dimension is the example's batch size;
    tuples, lists, named tuples and dicts are followed, as :mod:`lrkit.engine.batches` does), and
    each size runs one real training step: forward, backward and ``optimizer.step()`` when an
    optimizer is given (its state is allocated by the first step and counts). The search stops
    at the first size that runs out of memory (CUDA) or whose peak exceeds ``memory_limit``, or
    before a size larger than ``max_batch`` or than ``data_size``, the number of training
    examples: a batch cannot be larger than the data. Memory is freed between sizes, and the model,
    gradients, buffers, optimizer and random number generators are restored afterwards exactly
    as after :func:`lrkit.range_test`, however the search ends.

    Args:
        model: the model, on the device to measure (CPU or CUDA).
        example_batch: one batch as the data loader yields it: ``(inputs..., target)`` used as
            ``loss_fn(model(*inputs), target)``, or anything ``step_fn`` takes.
        loss_fn: ``loss_fn(output, target) -> scalar tensor``.
        optimizer: the optimizer you will train with (its state counts); ``None`` measures the
            forward and backward only.
        step_fn: ``step_fn(model, batch) -> loss`` for other batches (dicts, models that compute
            their own loss).
        memory_limit: stop at the first size whose peak exceeds this many bytes (an int, or a
            string such as ``"2GiB"``, see :func:`parse_memory`). Required on the CPU; optional
            on CUDA, which also stops at an out-of-memory error.
        start: the first size (default: the example's batch size).
        max_batch: the largest size to try.
        data_size: the number of training examples (for example ``len(train_loader.dataset)``),
            when known: no larger size is tried, and the result and its advice say when it
            ended the search.
        device: where to measure; must be the model's device (default: the model's).
        progress: ``progress(size, peak)`` after each size (``peak`` ``None``: out of memory).

    Returns:
        A :class:`BatchSizeResult`; ``result.advice(current_batch, current_lr)`` states the
        learning rate the larger batch implies.

    Raises:
        ValueError: bad arguments, an empty example or one without tensors, no ``memory_limit``
            on the CPU or one below what the model and optimizer already hold, all before
            anything changes; or, after everything is restored, a first size that does not fit.
        TypeError: a model or memory limit of the wrong type.
    """
    n, where = _check_inputs(model, example_batch, loss_fn, optimizer, step_fn, device)
    limit = None if memory_limit is None else parse_memory(memory_limit)
    first = n if start is None else start
    _check_sizes(first, start, max_batch, data_size)
    if where.type == "cpu" and limit is None:
        raise ValueError(
            "on the CPU give memory_limit (e.g. '2GiB'): the CPU has no out-of-memory error "
            "to stop at before the system swaps or kills the process"
        )
    example = move_to_device(example_batch, where)
    search = StepMemory(model, example, n, optimizer, loss_fn, step_fn, where)
    if limit is not None and where.type == "cpu" and search.resident >= limit:
        raise ValueError(
            f"memory_limit {format_bytes(limit)} is below what the model and optimizer already "
            f"hold ({format_bytes(search.resident)}); give a larger limit"
        )
    rule: Literal["linear", "sqrt"] = "sqrt" if isinstance(optimizer, _SQRT_RULE) else "linear"
    sizes, peaks, stop = _double(
        search, first, limit=limit, max_batch=max_batch, data_size=data_size, progress=progress
    )
    fitting = [
        s
        for s, p in zip(sizes, peaks, strict=True)
        if p is not None and (limit is None or p <= limit)
    ]
    if not fitting:
        why = (
            "runs out of memory"
            if stop == "out_of_memory"
            else f"needs {format_bytes(peaks[0] or 0)}, more than memory_limit "
            f"{format_bytes(limit or 0)}"
        )
        raise ValueError(
            f"even the first batch size, {first}, {why}; give a smaller start or example batch"
            + ("" if stop == "out_of_memory" else ", or a larger memory_limit")
        )
    return BatchSizeResult(
        sizes=tuple(sizes),
        peaks=tuple(peaks),
        largest=max(fitting),
        stop_reason=stop,
        memory_limit=limit,
        device=str(where),
        optimizer=None if optimizer is None else type(optimizer).__name__,
        rule=rule,
        data_size=data_size,
    )


def _check_sizes(first: int, start: int | None, max_batch: int, data_size: int | None) -> None:
    """``ValueError`` unless the first size, ``max_batch`` and ``data_size`` are whole numbers
    with ``first <= max_batch`` and ``first <= data_size``."""
    if isinstance(first, bool) or not isinstance(first, int) or first < 1:
        raise ValueError(f"start must be a positive int, got {start!r}")
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < first:
        raise ValueError(f"max_batch must be an int >= start ({first}), got {max_batch!r}")
    if data_size is not None and (
        isinstance(data_size, bool) or not isinstance(data_size, int) or data_size < first
    ):
        raise ValueError(
            f"data_size must be the number of training examples, an int >= start ({first}), "
            f"got {data_size!r}; give a smaller start"
        )


def _double(
    search: StepMemory,
    first: int,
    *,
    limit: int | None,
    max_batch: int,
    data_size: int | None,
    progress: Callable[[int, int | None], None] | None,
) -> tuple[list[int], list[int | None], BatchStop]:
    """The sizes tried from ``first`` up, doubling, their peaks and why the search stopped;
    the model, optimizer and generators are restored after each size and at the end."""
    model, optimizer, where = search.model, search.optimizer, search.device
    rng = RngState.capture()
    holder = optimizer if optimizer is not None else torch.optim.SGD(model.parameters(), lr=0.0)
    snap = TrainingSnapshot.take(model, holder, rng=rng)
    sizes: list[int] = []
    peaks: list[int | None] = []
    stop: BatchStop = "max_batch"
    try:
        size = first
        while True:
            sizes.append(size)
            peak: int | None
            try:
                peak = search.peak(size)
            except torch.OutOfMemoryError:
                peak = None
            peaks.append(peak)
            snap.restore_training()
            free_memory(where, collect=peak is None)
            logger.info("batch %d: peak %s", size, "out of memory" if peak is None else peak)
            if progress is not None:
                progress(size, peak)
            if peak is None:
                stop = "out_of_memory"
                break
            if limit is not None and peak > limit:
                stop = "memory_limit"
                break
            if data_size is not None and 2 * size > data_size:
                stop = "data_size"
                break
            if 2 * size > max_batch:
                break
            size *= 2
    finally:
        snap.restore()
        snap.close()
        free_memory(where)
    return sizes, peaks, stop
