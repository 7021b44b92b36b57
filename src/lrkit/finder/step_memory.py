"""The peak memory of one training step, on the CPU and on CUDA, for
:func:`~lrkit.finder.batch_size.largest_batch`; and memory sizes read and written with units.

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
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from lrkit.engine import LossFn, StepFn, compute_loss, map_tensors

__all__ = [
    "StepMemory",
    "batch_tensors",
    "format_bytes",
    "free_memory",
    "parse_memory",
    "profiled_peak",
    "repeat_batch",
    "resident_bytes",
]

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


def format_bytes(n: float) -> str:
    """``n`` bytes in GiB, MiB or KiB to three digits (``"1.5 GiB"``), or in bytes."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


# -- batches ------------------------------------------------------------------------------------


def batch_tensors(batch: Any) -> Iterator[torch.Tensor]:
    """Every tensor in ``batch``, through tuples, lists and mappings."""
    if isinstance(batch, torch.Tensor):
        yield batch
    elif isinstance(batch, (tuple, list)):
        for item in batch:
            yield from batch_tensors(item)
    elif isinstance(batch, Mapping):
        for item in batch.values():
            yield from batch_tensors(item)


def repeat_batch(batch: Any, n: int, size: int) -> Any:
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


def profiled_peak(run: Callable[[], None]) -> int:
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


def resident_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> int:
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


class StepMemory:
    """The peak memory of one training step of a model at any batch size: its example batch
    repeated to that size (:func:`repeat_batch`), forward, backward and the optimizer's step.
    ``example`` holds ``n`` examples, on ``device``, the model's; ``resident`` is
    :func:`resident_bytes` on the CPU, 0 on CUDA (where the allocator counts it)."""

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
        self.resident = resident_bytes(model, optimizer) if device.type == "cpu" else 0

    def _step(self, size: int) -> None:
        batch = repeat_batch(self.example, self.n, size)
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
        return self.resident + profiled_peak(lambda: self._step(size))


def free_memory(device: torch.device, *, collect: bool = False) -> None:
    """Give back the memory of a step: the cycles an exception's traceback keeps alive
    (``collect``; slow with a large heap, so only then) and the CUDA allocator's cache."""
    if collect:
        gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
