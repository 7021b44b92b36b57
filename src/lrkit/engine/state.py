"""State: the random number generators, an exact in-memory snapshot, and checkpoint files.

- :class:`RngState`: the global generators (Python, NumPy, torch CPU and CUDA) and the private
  ``torch.Generator`` a data loader shuffles with, captured and restored as one object.
- :class:`TrainingSnapshot`: a range test or a search trains the model, so it changes the
  parameters, buffers (BatchNorm running stats), gradients, the optimizer's state and
  param-group hyperparameters, the GradScaler and the generators (data shuffling, dropout). The
  snapshot records all of it and puts it back afterwards, bit for bit. The copies of the tensors
  live on the CPU (``mode="cpu"``) or in a temporary file (``mode="disk"``, written with
  :func:`torch.save`), never on the accelerator, so a GPU model does not need twice its GPU
  memory. Tensors are restored in place with ``copy_`` wherever the shape, dtype and device
  still match, so references the caller holds (``optimizer.param_groups[0]``, ``model.weight``,
  ``optimizer.state[p]["exp_avg"]``) stay valid.
- Checkpoint files of the trainer: written atomically, read with ``weights_only=True``.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from lrkit._files import atomic_write

__all__ = [
    "CHECKPOINT_NAME",
    "RngState",
    "SnapshotMode",
    "TrainingSnapshot",
    "checkpoint_path",
    "data_generators",
    "epoch_samplers",
    "load_checkpoint",
    "save_atomic",
]

logger = logging.getLogger(__name__)

SnapshotMode = Literal["cpu", "disk"]


# -- random number generators -------------------------------------------------------------------


def _data_owners(*sources: object) -> list[object]:
    """Data sources with their samplers, batch samplers and inner samplers."""
    owners: list[object] = []
    for source in sources:
        owners.append(source)
        for name in ("sampler", "batch_sampler"):
            sampler = getattr(source, name, None)
            owners += [sampler, getattr(sampler, "sampler", None)]
    return [o for o in owners if o is not None]


def data_generators(*sources: object) -> list[torch.Generator]:
    """The ``torch.Generator`` objects that data sources draw their order from: a DataLoader's
    own ``generator`` and those of its sampler, its batch sampler and their inner samplers (a
    ``DataLoader(shuffle=True, generator=g)`` shuffles with ``g``, not with the global RNG)."""
    out: list[torch.Generator] = []
    for owner in _data_owners(*sources):
        g = getattr(owner, "generator", None)
        if isinstance(g, torch.Generator) and all(g is not h for h in out):
            out.append(g)
    return out


def epoch_samplers(*sources: object) -> list[Any]:
    """The samplers of data sources that draw their order from an epoch number set with
    ``set_epoch`` (``DistributedSampler``): a new pass over the data needs a new epoch."""
    out: list[Any] = []
    for owner in _data_owners(*sources):
        if (
            callable(getattr(owner, "set_epoch", None))
            and isinstance(getattr(owner, "epoch", None), int)
            and all(owner is not s for s in out)
        ):
            out.append(owner)
    return out


@dataclass
class RngState:
    """The global random number generators: Python ``random``, NumPy's legacy global state, torch
    CPU, and torch CUDA (every device) when CUDA has been initialized; and, when data sources
    are given to :meth:`capture`, their private ``torch.Generator`` objects
    (:func:`data_generators`) and the epochs of their epoch-seeded samplers
    (:func:`epoch_samplers`)."""

    python: Any
    numpy: Any
    torch_cpu: torch.Tensor
    torch_cuda: list[torch.Tensor] | None
    data: list[tuple[torch.Generator, torch.Tensor]] = field(default_factory=list)
    epochs: list[tuple[Any, int]] = field(default_factory=list)

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
            epochs=[(s, int(s.epoch)) for s in epoch_samplers(*data)],
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
        for sampler, epoch in self.epochs:
            sampler.set_epoch(epoch)

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


# -- exact snapshot -----------------------------------------------------------------------------


@dataclass
class _TensorSlot:
    """Where a saved tensor came from: its key in the tensor store and its original device."""

    key: str
    device: torch.device


def _is_tensor(value: object) -> bool:
    return isinstance(value, torch.Tensor)


@dataclass
class TrainingSnapshot:
    """A restorable copy of a model, its optimizer, an optional GradScaler and the global RNGs.

    Create it with :meth:`take`; call :meth:`restore_training` to put back the model, optimizer and
    scaler (used between repeats), :meth:`restore_rng` for the generators, and :meth:`close` to
    delete the temporary file in ``"disk"`` mode. :meth:`restore` does all three restores.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: Any
    mode: SnapshotMode
    rng: RngState
    _store: dict[str, torch.Tensor] | None = None
    _path: str | None = None
    _params: list[tuple[nn.Parameter, _TensorSlot, _TensorSlot | None]] = field(
        default_factory=list
    )
    _buffers: list[tuple[nn.Module, str, _TensorSlot | None]] = field(default_factory=list)
    _training: list[tuple[nn.Module, bool]] = field(default_factory=list)
    _opt_params: list[torch.Tensor] = field(default_factory=list)
    _opt_state: dict[int, dict[str, Any]] = field(default_factory=dict)
    _opt_state_keys: list[Any] = field(default_factory=list)
    _groups: list[dict[str, Any]] = field(default_factory=list)
    _scaler_state: dict[str, Any] | None = None

    @classmethod
    def take(
        cls,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: Any = None,
        mode: SnapshotMode = "cpu",
        rng: RngState | None = None,
    ) -> TrainingSnapshot:
        """Record the state of ``model``, ``optimizer``, ``scaler`` and the RNGs.

        ``rng`` lets the caller pass generator states captured earlier (before peeking at the
        data, which may draw random numbers for shuffling).
        """
        if mode not in ("cpu", "disk"):
            raise ValueError(f"snapshot must be 'cpu' or 'disk', got {mode!r}")
        snap = cls(
            model=model,
            optimizer=optimizer,
            scaler=scaler,
            mode=mode,
            rng=rng if rng is not None else RngState.capture(),
        )
        tensors: dict[str, torch.Tensor] = {}

        def save(key: str, t: torch.Tensor) -> _TensorSlot:
            t = t.detach()
            tensors[key] = t if mode == "disk" else t.to("cpu", copy=True)
            return _TensorSlot(key, t.device)

        snap._record_model(save)
        snap._record_optimizer(save)
        if scaler is not None:
            snap._scaler_state = {
                "state_dict": scaler.state_dict(),
                "lazy": getattr(scaler, "_scale", None) is None,
                "init_scale": getattr(scaler, "_init_scale", None),
                "init_growth_tracker": getattr(scaler, "_init_growth_tracker", None),
                "per_optimizer_empty": len(getattr(scaler, "_per_optimizer_states", {})) == 0,
            }

        if mode == "disk":
            fd, path = tempfile.mkstemp(prefix="lrkit-snapshot-", suffix=".pt")
            os.close(fd)
            try:
                torch.save(tensors, path)
            except BaseException:
                os.unlink(path)
                raise
            snap._path = path
            logger.debug("range-test snapshot written to %s", path)
        else:
            snap._store = tensors
        return snap

    def _record_model(self, save: Callable[[str, torch.Tensor], _TensorSlot]) -> None:
        """Parameters, gradients, buffers and train/eval modes."""
        for i, p in enumerate(self.model.parameters()):
            data_slot = save(f"p{i}", p)
            grad_slot = save(f"g{i}", p.grad) if p.grad is not None else None
            self._params.append((p, data_slot, grad_slot))
        j = 0
        for module in self.model.modules():
            self._training.append((module, module.training))
            for name, buf in module._buffers.items():
                slot = None
                if buf is not None:
                    slot = save(f"b{j}", buf)
                    j += 1
                self._buffers.append((module, name, slot))

    def _record_optimizer(self, save: Callable[[str, torch.Tensor], _TensorSlot]) -> None:
        """The optimizer's per-parameter state and its param groups' hyperparameters."""
        optimizer = self.optimizer
        self._opt_params = [p for g in optimizer.param_groups for p in g["params"]]
        index = {id(p): k for k, p in enumerate(self._opt_params)}
        self._opt_state_keys = list(optimizer.state.keys())

        def record(values: Any, prefix: str) -> dict[str, Any]:
            return {
                name: save(f"{prefix}.{name}", v) if _is_tensor(v) else copy.deepcopy(v)
                for name, v in values.items()
                if name != "params"
            }

        for key in self._opt_state_keys:
            k = index.get(id(key), -1)
            if k >= 0:
                self._opt_state[k] = record(optimizer.state[key], f"s{k}")
        for g, group in enumerate(optimizer.param_groups):
            self._groups.append(record(group, f"h{g}"))

    def _load(self) -> dict[str, torch.Tensor]:
        if self._store is not None:
            return self._store
        if self._path is None:
            raise RuntimeError("the snapshot was closed")
        loaded: dict[str, torch.Tensor] = torch.load(
            self._path, map_location="cpu", weights_only=True
        )
        return loaded

    def restore_training(self) -> None:
        """Restore the model (parameters, gradients, buffers, train/eval modes), the optimizer
        (state and param-group hyperparameters) and the GradScaler."""
        store = self._load()
        with torch.no_grad():
            self._restore_model(store)
            self._restore_optimizer(store)
        self._restore_scaler()

    def _put(
        self, store: dict[str, torch.Tensor], current: object, slot: _TensorSlot
    ) -> torch.Tensor:
        """The saved tensor of ``slot``: copied into ``current`` when it is a tensor of the same
        shape, dtype, device and layout (so references to it stay valid), else a new tensor on
        the slot's device (a copy when the store is kept for later restores)."""
        src = store[slot.key]
        if (
            isinstance(current, torch.Tensor)
            and current.shape == src.shape
            and current.dtype == src.dtype
            and current.device == slot.device
            and current.layout == src.layout
        ):
            current.copy_(src)
            return current
        fresh = self._store is None
        return src.to(slot.device) if fresh else src.to(slot.device, copy=True)

    def _restore_model(self, store: dict[str, torch.Tensor]) -> None:
        """Parameters, gradients, buffers and train/eval modes."""
        for p, data_slot, grad_slot in self._params:
            p.copy_(store[data_slot.key])
            p.grad = None if grad_slot is None else self._put(store, p.grad, grad_slot)
        for module, name, slot in self._buffers:
            module._buffers[name] = (
                None if slot is None else self._put(store, module._buffers[name], slot)
            )
        for module, training in self._training:
            module.training = training

    def _restore_optimizer(self, store: dict[str, torch.Tensor]) -> None:
        """The optimizer's per-parameter state and its param groups' hyperparameters: entries
        added since the snapshot are deleted, the saved ones put back."""
        opt = self.optimizer
        keep = {id(k) for k in self._opt_state_keys}
        for key in list(opt.state.keys()):
            if id(key) not in keep:
                del opt.state[key]
        for k, param in enumerate(self._opt_params):
            saved = self._opt_state.get(k)
            if saved is not None:
                self._restore_entries(store, opt.state[param], saved, keep=())
        for group, saved_group in zip(opt.param_groups, self._groups, strict=False):
            self._restore_entries(store, group, saved_group, keep=("params",))

    def _restore_entries(
        self,
        store: dict[str, torch.Tensor],
        current: dict[str, Any],
        saved: dict[str, Any],
        keep: tuple[str, ...],
    ) -> None:
        """Make ``current`` hold the ``saved`` entries (and those named in ``keep``) only."""
        for name in list(current.keys()):
            if name not in keep and name not in saved:
                del current[name]
        for name, v in saved.items():
            if isinstance(v, _TensorSlot):
                current[name] = self._put(store, current.get(name), v)
            else:
                current[name] = copy.deepcopy(v)

    def _restore_scaler(self) -> None:
        """The GradScaler's state, including a scale not yet made (a lazy scaler)."""
        if self.scaler is None or self._scaler_state is None:
            return
        st = self._scaler_state
        if st["state_dict"]:
            self.scaler.load_state_dict(st["state_dict"])
        if st["lazy"] and hasattr(self.scaler, "_scale"):
            self.scaler._scale = None
            self.scaler._growth_tracker = None
        if st["init_scale"] is not None:
            self.scaler._init_scale = st["init_scale"]
        if st["init_growth_tracker"] is not None:
            self.scaler._init_growth_tracker = st["init_growth_tracker"]
        states = getattr(self.scaler, "_per_optimizer_states", None)
        if st["per_optimizer_empty"] and states is not None:
            states.clear()

    def restore_rng(self) -> None:
        """Restore the global random number generators (and the data loaders' generators when
        ``rng`` was captured with them)."""
        self.rng.restore()

    def restore(self) -> None:
        """Restore the model, optimizer, scaler and RNGs."""
        self.restore_training()
        self.restore_rng()

    def close(self) -> None:
        """Release the copies (delete the temporary file in ``"disk"`` mode)."""
        self._store = None
        if self._path is not None:
            try:
                os.unlink(self._path)
            except OSError:
                logger.warning("could not delete range-test snapshot %s", self._path)
            self._path = None


# -- checkpoint files ---------------------------------------------------------------------------

CHECKPOINT_NAME = "checkpoint.pt"
"""File name of the (single, latest) checkpoint inside a checkpoint directory."""


def checkpoint_path(checkpoint_dir: str | os.PathLike[str]) -> Path:
    """Where :func:`lrkit.train.fit` keeps its checkpoint inside ``checkpoint_dir``."""
    return Path(checkpoint_dir) / CHECKPOINT_NAME


def save_atomic(obj: object, path: str | os.PathLike[str]) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically (see :func:`lrkit._files.atomic_write`)."""
    atomic_write(path, lambda fh: torch.save(obj, fh))


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint written by :func:`lrkit.train.fit` (tensors land on the CPU).

    Raises:
        ValueError: the file is missing or is not an lrkit training checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"no checkpoint at {str(p)!r}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"cannot read checkpoint {str(p)!r} ({type(exc).__name__}: {exc}); delete it or "
            "start without resume"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != "lrkit.train/1":
        raise ValueError(f"{str(p)!r} is not an lrkit training checkpoint")
    return ckpt
