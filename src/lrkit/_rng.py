"""The global random number generators, captured and restored as one object."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["RngState"]


@dataclass
class RngState:
    """The global random number generators: Python ``random``, NumPy's legacy global state, torch
    CPU, and torch CUDA (every device) when CUDA has been initialized."""

    python: Any
    numpy: Any
    torch_cpu: torch.Tensor
    torch_cuda: list[torch.Tensor] | None

    @classmethod
    def capture(cls) -> RngState:
        """Record the current state of all global generators."""
        cuda: list[torch.Tensor] | None = None
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            cuda = torch.cuda.get_rng_state_all()
        return cls(
            python=random.getstate(),
            numpy=np.random.get_state(legacy=True),
            torch_cpu=torch.get_rng_state(),
            torch_cuda=cuda,
        )

    def restore(self) -> None:
        """Put every generator back to the recorded state."""
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.torch_cuda)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and tensors only, so a checkpoint loads with ``weights_only=True``."""
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
