"""The largest batch that fits in memory (Smith 2018, arXiv 1803.09820: use the largest batch
size that fits), and the learning-rate scaling it implies, as advice.

:func:`largest_batch` repeats an example batch along its first dimension to 1, 2, 4, ... times
the starting size and runs one real training step at each size (forward, backward and, when an
optimizer is given, its step, whose state counts too) until the device runs out of memory or the
peak passes ``memory_limit``. Everything it touched is then put back exactly, as after a range
test (:class:`~lrkit.engine.TrainingSnapshot`: parameters, gradients, buffers, the optimizer's
state and hyperparameters, train/eval modes and the random number generators).

How the peak is measured:

- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``: the bytes of all
  tensors on the device at the step's high point (the caching allocator's reserve excluded).
  ``torch.OutOfMemoryError`` ends the search.
- CPU: there are no allocator statistics for the CPU, and ``tracemalloc`` does not see torch's
  allocations, which bypass Python's allocator. The step runs under ``torch.profiler`` with
  ``profile_memory=True``, which records every allocation and free of torch's CPU allocator
  with its size and time; the running sum of those events gives the peak of what the step
  allocates (the repeated batch, activations, gradients, new optimizer state and temporaries,
  including those freed before the step ends). The tensors that live through the step (the
  model's parameters and buffers and the optimizer state it already holds) are added, so the
  number means what it means on CUDA. Memory outside torch's allocator (Python objects, the
  libraries' own buffers) is not counted; the resident-set size would count it, but it cannot
  be attributed to one step in a process whose allocator keeps freed pages. A CPU search
  therefore needs ``memory_limit``: the CPU has no out-of-memory error to stop at before the
  system swaps or kills the process.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from lrkit._files import atomic_write_text
from lrkit.engine import (
    LossFn,
    RngState,
    StepFn,
    TrainingSnapshot,
    batch_size,
    compute_loss,
    map_tensors,
    model_device,
    move_to_device,
    validate_batch,
)
from lrkit.finder.range_test import _check_model_optimizer

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

_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}

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


def parse_memory(value: int | str) -> int:
    """A memory size in bytes from an int (bytes) or a string with a unit: ``"2GiB"``,
    ``"512 MiB"``, ``"1.5GB"``, ``"800000B"`` (KiB/MiB/GiB/TiB are powers of 1024, kB/MB/GB/TB
    of 1000; the unit's case does not matter)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(
            f"a memory size is an int (bytes) or a string such as '2GiB', got {value!r}"
        )
    if isinstance(value, int):
        n = value
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([A-Za-z]+)\s*", value)
        unit = m.group(2).lower() if m else ""
        if m is None or unit not in _UNITS:
            raise ValueError(
                f"cannot read the memory size {value!r}: give a number and a unit, e.g. "
                f"'2GiB' or '500MB' (units: B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            )
        n = math.floor(float(m.group(1)) * _UNITS[unit])
    if n < 1:
        raise ValueError(f"a memory size must be at least 1 byte, got {value!r}")
    return n


def _fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


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


# -- batches ------------------------------------------------------------------------------------


def _tensors(batch: Any) -> Iterator[torch.Tensor]:
    if isinstance(batch, torch.Tensor):
        yield batch
    elif isinstance(batch, (tuple, list)):
        for item in batch:
            yield from _tensors(item)
    elif isinstance(batch, Mapping):
        for item in batch.values():
            yield from _tensors(item)


def _repeat(batch: Any, n: int, size: int) -> Any:
    """``batch`` with every tensor whose first dimension is ``n`` repeated along it to ``size``
    rows (rows ``0, 1, ..., n-1, 0, 1, ...``); other objects unchanged. Same structure as
    :func:`lrkit.engine.move_to_device`."""

    def repeat(t: torch.Tensor) -> torch.Tensor:
        if t.dim() == 0 or t.shape[0] != n:
            return t
        return t.index_select(0, torch.arange(size, device=t.device) % n)

    return map_tensors(batch, repeat)


# -- measuring ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Point file descriptor 2 at the null device for the block: torch's profiler (kineto)
    writes a line to it at every start and stop, which no setting silences once torch is
    imported. Used only around those two calls."""
    try:
        saved = os.dup(2)
    except OSError:  # no standard error to silence
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _profiled_peak(run: Callable[[], None]) -> int:
    """The peak, over ``run()``, of the bytes allocated by torch's CPU allocator since it began
    (allocations minus frees, in time order)."""
    from torch.profiler import DeviceType, ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():
        prof.start()
    try:
        run()
    finally:
        with _quiet_stderr():
            prof.stop()
    if prof.profiler is None or prof.profiler.kineto_results is None:
        raise RuntimeError("torch's profiler recorded nothing; it is needed to measure the CPU")
    # an allocation is a "[memory]" event of positive size, a free one of negative size
    events = sorted(
        (e.start_ns(), int(e.nbytes()))  # type: ignore[attr-defined]
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() == DeviceType.CPU
    )
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def _resident_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> int:
    """Bytes of the tensors that live through a step: the model's parameters and buffers and
    the optimizer's state (gradients are not counted: the step frees and makes them)."""
    tensors = [*model.parameters(), *model.buffers()]
    if optimizer is not None:
        for state in optimizer.state.values():
            tensors += [v for v in state.values() if isinstance(v, torch.Tensor)]
    seen: dict[int, int] = {}
    for t in tensors:
        st = t.untyped_storage()
        seen[st.data_ptr()] = max(seen.get(st.data_ptr(), 0), st.nbytes())
    return sum(seen.values())


class _Search:
    """The doubling search over one model, example batch and optimizer."""

    def __init__(
        self,
        model: nn.Module,
        example: Any,
        n: int,
        optimizer: torch.optim.Optimizer | None,
        loss_fn: LossFn | None,
        step_fn: StepFn | None,
        device: torch.device,
    ) -> None:
        self.model, self.example, self.n = model, example, n
        self.optimizer, self.loss_fn, self.step_fn = optimizer, loss_fn, step_fn
        self.device = device
        self.resident = _resident_bytes(model, optimizer) if device.type == "cpu" else 0

    def _step(self, size: int) -> None:
        batch = _repeat(self.example, self.n, size)
        loss, _, _ = compute_loss(self.model, batch, self.loss_fn, self.step_fn)
        loss.backward()
        if self.optimizer is not None:
            self.optimizer.step()

    def peak(self, size: int) -> int:
        """The peak memory of one training step at batch ``size``. Gradients left from before
        are dropped first, so the step makes its own (as a training loop's ``zero_grad`` does)."""
        self.model.train()
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        self.model.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._step(size)
            torch.cuda.synchronize(self.device)
            return int(torch.cuda.max_memory_allocated(self.device))
        return self.resident + _profiled_peak(lambda: self._step(size))


def _free(device: torch.device, *, collect: bool = False) -> None:
    """Give back the memory of a step: the cycles an exception's traceback keeps alive
    (``collect``; slow with a large heap, so only then) and the CUDA allocator's cache."""
    if collect:
        gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


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
        _check_model_optimizer(model, optimizer)
    elif not any(p.requires_grad for p in model.parameters()):
        raise ValueError("the model has no parameter that requires grad")
    if step_fn is None and loss_fn is None:
        raise ValueError("pass loss_fn(output, target) or step_fn(model, batch) -> loss")
    validate_batch(
        example_batch, has_step_fn=step_fn is not None, has_loss_fn=True, what="example_batch"
    )
    tensors = list(_tensors(example_batch))
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
    if where.type == "cpu" and limit is None:
        raise ValueError(
            "on the CPU give memory_limit (e.g. '2GiB'): the CPU has no out-of-memory error "
            "to stop at before the system swaps or kills the process"
        )
    example = move_to_device(example_batch, where)
    search = _Search(model, example, n, optimizer, loss_fn, step_fn, where)
    if limit is not None and where.type == "cpu" and search.resident >= limit:
        raise ValueError(
            f"memory_limit {_fmt_bytes(limit)} is below what the model and optimizer already "
            f"hold ({_fmt_bytes(search.resident)}); give a larger limit"
        )
    rule: Literal["linear", "sqrt"] = "sqrt" if isinstance(optimizer, _SQRT_RULE) else "linear"
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
            _free(where, collect=peak is None)
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
        _free(where)
    fitting = [
        s
        for s, p in zip(sizes, peaks, strict=True)
        if p is not None and (limit is None or p <= limit)
    ]
    if not fitting:
        why = (
            "runs out of memory"
            if stop == "out_of_memory"
            else f"needs {_fmt_bytes(peaks[0] or 0)}, more than memory_limit "
            f"{_fmt_bytes(limit or 0)}"
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
