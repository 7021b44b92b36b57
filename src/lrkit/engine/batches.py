"""Batches: the conventions, peeking, cycling, reordering between repeats, moving to a device.

Batch conventions (the same for training and validation data, for the range test, the trainer
and the search):

- With ``step_fn`` given, a batch can be anything: the loss is ``step_fn(model, batch)`` (for
  models that compute their own loss, dict batches, several inputs...).
- Otherwise a batch is a tuple or list ``(inputs..., target)``: the loss is
  ``loss_fn(model(*inputs), target)``. The common ``(x, y)`` pair is ``loss_fn(model(x), y)``.
- Dict batches need ``step_fn`` (there is no single right way to call a model with a dict).

Tensors inside tuples, lists, named tuples and dicts are moved to the model's device.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from typing import Any

import numpy as np
import torch
from torch import nn

from lrkit.engine.state import epoch_samplers

__all__ = [
    "BatchStream",
    "LossFn",
    "StepFn",
    "batch_size",
    "checked",
    "compute_loss",
    "count_batches",
    "map_tensors",
    "move_to_device",
    "peek",
    "validate_batch",
]

StepFn = Callable[[nn.Module, Any], torch.Tensor]
LossFn = Callable[[Any, Any], torch.Tensor]

_SHUFFLE_BUFFER = 32


def map_tensors(batch: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``batch`` with ``fn`` applied to every tensor in it, recursively through tuples, lists,
    named tuples and mappings (the structure kept); other objects are returned unchanged."""
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, tuple):
        items = [map_tensors(b, fn) for b in batch]
        if hasattr(batch, "_fields"):
            return type(batch)(*items)
        return tuple(items)
    if isinstance(batch, list):
        return [map_tensors(b, fn) for b in batch]
    if isinstance(batch, Mapping):
        return {k: map_tensors(v, fn) for k, v in batch.items()}
    return batch


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Return ``batch`` with every tensor in it (recursively through tuples, lists, named tuples
    and mappings) moved to ``device``; other objects are returned unchanged."""
    return map_tensors(
        batch, lambda t: t if t.device == device else t.to(device, non_blocking=True)
    )


def batch_size(batch: Any) -> int:
    """The number of examples in ``batch``: the length of the first tensor found in it (the
    target of an ``(inputs..., target)`` tuple first), 1 when it holds no tensor."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() > 0 else 1
    items: list[Any] = []
    if isinstance(batch, (tuple, list)):
        items = list(reversed(batch))
    elif isinstance(batch, Mapping):
        items = list(batch.values())
    for item in items:
        if isinstance(item, (torch.Tensor, tuple, list, Mapping)):
            return batch_size(item)
    return 1


def validate_batch(batch: Any, *, has_step_fn: bool, has_loss_fn: bool, what: str) -> None:
    """Raise ``ValueError`` when ``batch`` cannot be used with the given callables."""
    if has_step_fn:
        return
    if isinstance(batch, Mapping):
        raise ValueError(
            f"{what} yields dict batches; pass step_fn(model, batch) -> loss to say how the "
            "model consumes them"
        )
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError(
            f"{what} must yield (inputs..., target) tuples or lists, got {type(batch).__name__}; "
            "pass step_fn(model, batch) -> loss for other batch types"
        )
    if not has_loss_fn:
        raise ValueError("pass loss_fn(output, target) or step_fn(model, batch) -> loss")


def checked(
    batches: Iterable[Any], *, has_step_fn: bool, has_loss_fn: bool, what: str
) -> Iterator[Any]:
    """Yield ``batches``, checking the first one with :func:`validate_batch`."""
    for i, batch in enumerate(batches):
        if i == 0:
            validate_batch(batch, has_step_fn=has_step_fn, has_loss_fn=has_loss_fn, what=what)
        yield batch


def compute_loss(
    model: nn.Module, batch: Any, loss_fn: LossFn | None, step_fn: StepFn | None
) -> tuple[torch.Tensor, Any, Any]:
    """Run the model on one batch; return ``(loss, output, target)`` (output and target are
    ``None`` when ``step_fn`` computes the loss)."""
    if step_fn is not None:
        loss = step_fn(model, batch)
        output: Any = None
        target: Any = None
    else:
        if loss_fn is None:
            raise ValueError("pass loss_fn(output, target) or step_fn(model, batch) -> loss")
        *inputs, target = batch
        output = model(*inputs)
        loss = loss_fn(output, target)
    if not isinstance(loss, torch.Tensor):
        raise ValueError(f"the loss must be a scalar tensor, got {type(loss).__name__}")
    if loss.numel() != 1:
        raise ValueError(
            f"the loss must be a scalar tensor, got shape {tuple(loss.shape)}; reduce it "
            "(e.g. reduction='mean')"
        )
    return loss, output, target


def count_batches(batches: Iterable[Any]) -> int:
    """How many batches ``batches`` yields: its length when it has one (a list, a DataLoader
    over a map-style dataset), else by iterating it."""
    if isinstance(batches, Sized):
        try:
            return len(batches)
        except TypeError:  # a DataLoader over an IterableDataset has __len__ but no length
            pass
    return sum(1 for _ in batches)


def peek(data: Iterable[Any]) -> tuple[Any, Iterator[Any]]:
    """Return the first batch of ``data`` and an iterator that still yields it first.

    Raises ``ValueError`` when ``data`` is empty.
    """
    it = iter(data)
    try:
        first = next(it)
    except StopIteration:
        raise ValueError("data is empty: it yielded no batches") from None
    return first, itertools.chain([first], it)


def _is_sequence(data: object) -> bool:
    return isinstance(data, Sequence) and not isinstance(data, (str, bytes))


def _is_shuffling_loader(data: object) -> bool:
    """A DataLoader that draws a new order each pass (a RandomSampler, possibly inside a
    BatchSampler used as the sampler)."""
    if not isinstance(data, torch.utils.data.DataLoader):
        return False
    sampler = data.sampler
    if isinstance(sampler, torch.utils.data.BatchSampler):
        sampler = sampler.sampler
    return isinstance(sampler, torch.utils.data.RandomSampler)


def _buffer_shuffle(it: Iterator[Any], rng: np.random.Generator) -> Iterator[Any]:
    buf: list[Any] = []
    for item in it:
        if len(buf) < _SHUFFLE_BUFFER:
            buf.append(item)
            continue
        k = int(rng.integers(len(buf)))
        yield buf[k]
        buf[k] = item
    order = rng.permutation(len(buf))
    for k in order:
        yield buf[int(k)]


class BatchStream:
    """An endless stream of batches from ``data``, re-iterating it when it runs out.

    ``reorder`` gives a different batch order: a shuffling ``DataLoader`` is simply re-iterated
    (it draws a new order itself), a sequence of batches is visited in a permuted order, and any
    other iterable goes through a shuffle buffer of 32 batches. The permutations use a private
    generator seeded with ``seed``; the global RNGs are not touched by the reordering. Each new
    pass over a loader whose sampler is seeded by epoch (``DistributedSampler``) moves it to the
    next epoch, so the pass draws a new order (:class:`RngState` restores the epoch).
    """

    def __init__(
        self,
        data: Iterable[Any],
        *,
        first: Iterator[Any] | None = None,
        reorder: bool = False,
        seed: int = 0,
    ) -> None:
        self._data = data
        self._reorder = reorder
        self._rng = np.random.default_rng(seed)
        self._served = 0
        self._it: Iterator[Any] = first if first is not None else self._new_pass()

    def _new_pass(self) -> Iterator[Any]:
        data = self._data
        if not self._reorder or _is_shuffling_loader(data):
            return iter(data)
        if _is_sequence(data):
            seq: Sequence[Any] = data  # type: ignore[assignment]
            return (seq[int(k)] for k in self._rng.permutation(len(seq)))
        return _buffer_shuffle(iter(data), self._rng)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            batch = next(self._it)
        except StopIteration:
            if isinstance(self._data, Iterator):
                raise ValueError(
                    f"data ran out after {self._served} batches and cannot be re-iterated "
                    "(it is an iterator); pass a list or a DataLoader so it can be cycled, or "
                    "lower steps"
                ) from None
            for sampler in epoch_samplers(self._data):  # a DistributedSampler's next order
                sampler.set_epoch(sampler.epoch + 1)
            self._it = self._new_pass()
            try:
                batch = next(self._it)
            except StopIteration:
                raise ValueError("data yielded no batches when iterated again") from None
        self._served += 1
        return batch
