"""The random number generators a training run draws from, captured and restored as one object:
the global ones, and the private ``torch.Generator`` of a data loader that shuffles with one."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["RngState", "data_generators"]


def data_generators(*sources: object) -> list[torch.Generator]:
    """The ``torch.Generator`` objects that data sources draw their order from: a DataLoader's
    own ``generator`` and those of its sampler, its batch sampler and their inner samplers (a
    ``DataLoader(shuffle=True, generator=g)`` shuffles with ``g``, not with the global RNG)."""
    owners: list[object] = []
    for source in sources:
        owners.append(source)
        for name in ("sampler", "batch_sampler"):
            sampler = getattr(source, name, None)
            owners += [sampler, getattr(sampler, "sampler", None)]
    out: list[torch.Generator] = []
    for owner in owners:
        g = getattr(owner, "generator", None)
        if isinstance(g, torch.Generator) and all(g is not h for h in out):
            out.append(g)
    return out


@dataclass
class RngState:
    """The global random number generators: Python ``random``, NumPy's legacy global state, torch
    CPU, and torch CUDA (every device) when CUDA has been initialized; and, when data sources
    are given to :meth:`capture`, their private ``torch.Generator`` objects
    (:func:`data_generators`)."""

    python: Any
    numpy: Any
    torch_cpu: torch.Tensor
    torch_cuda: list[torch.Tensor] | None
    data: list[tuple[torch.Generator, torch.Tensor]] = field(default_factory=list)

    @classmethod
    def capture(cls, *data: object) -> RngState:
        """Record the current state of all global generators and of the generators the
        ``data`` sources (DataLoaders, samplers) shuffle with."""
        cuda: list[torch.Tensor] | None = None
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            cuda = torch.cuda.get_rng_state_all()
        return cls(
            python=random.getstate(),
            numpy=np.random.get_state(legacy=True),
            torch_cpu=torch.get_rng_state(),
            torch_cuda=cuda,
            data=[(g, g.get_state()) for g in data_generators(*data)],
        )

    def restore(self) -> None:
        """Put every generator back to the recorded state."""
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.torch_cuda)
        for generator, state in self.data:
            generator.set_state(state)

    def to_dict(self) -> dict[str, Any]:
        """The global generators in plain lists and tensors only, so a checkpoint loads with
        ``weights_only=True`` (data generators belong to objects a checkpoint cannot hold)."""
        py_version, py_state, py_gauss = self.python
        kind, keys, pos, has_gauss, cached = self.numpy
        out: dict[str, Any] = {
            "python": [py_version, list(py_state), py_gauss],
            "numpy": [kind, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)],
            "torch": self.torch_cpu,
        }
        if self.torch_cuda is not None:
            out["cuda"] = self.torch_cuda
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RngState:
        """Inverse of :meth:`to_dict`."""
        py_version, py_state, py_gauss = d["python"]
        kind, keys, pos, has_gauss, cached = d["numpy"]
        return cls(
            python=(py_version, tuple(py_state), py_gauss),
            numpy=(kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached),
            torch_cpu=d["torch"],
            torch_cuda=d.get("cuda"),
        )
