"""Running under ``torch.distributed`` (``torchrun``): the one place lrkit talks to other ranks.

lrkit is distributed when a default process group of more than one process is initialized
(:func:`is_distributed`); then

- the loss of every update and every evaluation is reduced over the ranks
  (:class:`~lrkit.engine.Engine` calls :func:`all_mean` and :func:`all_sum`), so every rank
  sees the same numbers and takes the same decisions (stop, diverge, suggest, choose);
- the range test, the search and the trainer first agree on their arguments
  (:func:`agreement`): ranks called differently fail together with one clear ``ValueError``
  instead of waiting for each other forever;
- only rank 0 writes files (:func:`is_writer`);
- the trainer and the task finder wrap the model (:func:`wrap`) and give each rank its part of
  a DataLoader (:func:`shard`, :func:`shard_eval`); :func:`init_from_env` and :func:`close`
  start and end the process group a launcher describes.

Without a process group every function here answers at once as a single process would
(``rank() == 0``, ``world() == 1``, reductions return their input) and nothing is exchanged.
``torch.distributed`` is only imported by the functions that need it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lrkit.engine.state import epoch_samplers

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

__all__ = [
    "agreement",
    "all_gather",
    "all_mean",
    "all_sum",
    "broadcast",
    "close",
    "init_from_env",
    "is_distributed",
    "is_writer",
    "rank",
    "require_wrapped",
    "set_epoch",
    "shard",
    "shard_eval",
    "sync_buffers",
    "unwrap",
    "world",
    "wrap",
]

logger = logging.getLogger(__name__)


def _initialized() -> bool:
    import torch.distributed as dist

    return bool(dist.is_available() and dist.is_initialized())


def is_distributed() -> bool:
    """Whether a default process group of more than one process is initialized."""
    return _initialized() and world() > 1


def rank() -> int:
    """This process's rank in the default process group (0 without one)."""
    if not _initialized():
        return 0
    import torch.distributed as dist

    return int(dist.get_rank())


def world() -> int:
    """The number of processes in the default process group (1 without one)."""
    if not _initialized():
        return 1
    import torch.distributed as dist

    return int(dist.get_world_size())


def is_writer() -> bool:
    """Whether this process writes files: rank 0, or any process without a process group."""
    return rank() == 0


def _device() -> torch.device:
    """Where the tensors of a collective live: the current CUDA device for a group that only
    speaks NCCL, else the CPU (gloo, and the CPU half of ``"cpu:gloo,cuda:nccl"``)."""
    import torch.distributed as dist

    backend = str(dist.get_backend())
    if "gloo" not in backend and "mpi" not in backend and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_sum(values: Iterable[float]) -> list[float]:
    """The sums over all ranks of ``values`` (float64); ``values`` unchanged without a group."""
    local = [float(v) for v in values]
    if not is_distributed():
        return local
    import torch.distributed as dist

    t = torch.tensor(local, dtype=torch.float64, device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.tolist()]


def all_mean(value: float, weight: float = 1.0) -> float:
    """The mean of ``value`` over all ranks weighted by ``weight`` (e.g. the batch size):
    ``sum(value_r * weight_r) / sum(weight_r)``. A NaN or infinite value on any rank makes the
    mean non-finite on every rank. ``value`` itself without a process group."""
    if not is_distributed():
        return value
    total, weights = all_sum([value * weight, weight])
    return total / weights if weights else float("nan")


def all_gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` without a process group."""
    if not is_distributed():
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (the others' ``obj`` is ignored); ``obj`` without a
    process group."""
    if not is_distributed():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank, as
    ``DistributedDataParallel`` does before each training forward pass."""
    if not is_distributed():
        return
    import torch.distributed as dist

    for buf in model.buffers():
        dist.broadcast(buf, src=0)


# -- agreeing before any step -------------------------------------------------------------------


_MISSING = "<not given>"


def _describe_failure(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _agree(
    what: str, fingerprint: Mapping[str, Any], error: BaseException | None, hint: str
) -> None:
    mine = {str(k): repr(v) for k, v in fingerprint.items()}
    gathered = all_gather((mine, None if error is None else _describe_failure(error)))
    prints: list[dict[str, str]] = [g[0] for g in gathered]
    names = list(dict.fromkeys(k for p in prints for k in p))
    differing = [k for k in names if len({p.get(k, _MISSING) for p in prints}) > 1]
    if differing:
        parts = [
            f"{k} ({', '.join(f'rank {r}: {p.get(k, _MISSING)}' for r, p in enumerate(prints))})"
            for k in differing
        ]
        raise ValueError(
            f"{what} differs between the ranks in {'; '.join(parts)}. {hint}"
        ) from error
    if error is not None:
        return
    failed = [(r, g[1]) for r, g in enumerate(gathered) if g[1] is not None]
    if failed:
        r, why = failed[0]
        others = f" (and {len(failed) - 1} other rank(s))" if len(failed) > 1 else ""
        raise ValueError(f"{what}: rank {r} failed with {why}{others}; every rank stops here")


@contextmanager
def agreement(
    what: str,
    fingerprint: dict[str, Any],
    hint: str = "Every rank must call it with the same arguments.",
) -> Iterator[dict[str, Any]]:
    """Run the local checks of ``what`` in the block, then make sure every rank agrees.

    At the end of the block every rank sends ``fingerprint`` (the arguments that must be the
    same everywhere, compared by ``repr``; the block may add to the dict it is given) and
    whether its block raised. When fingerprints differ, every rank raises one ``ValueError``
    naming each differing argument and every rank's value, then ``hint``. When they agree but
    the block raised on some rank, that rank's exception propagates there and every other rank
    raises a ``ValueError`` naming it. So no rank goes on to a collective step that another never
    reaches. Without a process group the block simply runs.
    """
    if not is_distributed():
        yield fingerprint
        return
    try:
        yield fingerprint
    except Exception as err:
        _agree(what, fingerprint, err, hint)
        raise
    _agree(what, fingerprint, None, hint)


# -- models ---------------------------------------------------------------------------------


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (``model`` itself otherwise)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def require_wrapped(model: nn.Module, what: str) -> None:
    """``ValueError`` when several ranks would train ``model`` without
    ``DistributedDataParallel``: each rank's copy would then see only its own data and drift
    apart, and no average of their losses describes one model."""
    if not is_distributed():
        return
    from torch.nn.parallel import DistributedDataParallel

    if not isinstance(model, DistributedDataParallel):
        raise ValueError(
            f"{what} runs in a process group of {world()} processes, but the model is a "
            f"{type(model).__name__}, not a DistributedDataParallel: wrap it "
            "(model = DistributedDataParallel(model)) so every rank trains the same weights on "
            "its own part of the data, or run it in a single process"
        )


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` (on ``device``) when distributed; as it is
    otherwise, or when it is already wrapped."""
    from torch.nn.parallel import DistributedDataParallel

    if not is_distributed() or isinstance(model, DistributedDataParallel):
        return model
    ids = [device.index] if device.type == "cuda" and device.index is not None else None
    return DistributedDataParallel(model, device_ids=ids)


# -- data -----------------------------------------------------------------------------------


def set_epoch(loader: object, epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on every epoch-seeded sampler (``DistributedSampler``) of
    ``loader`` (its order for that epoch)."""
    for s in epoch_samplers(loader):
        s.set_epoch(epoch)


def _rebuild(loader: DataLoader[Any], index_sampler: Any) -> DataLoader[Any]:
    """``loader`` with its index sampler replaced, batching and every other setting kept."""
    from torch.utils.data import BatchSampler, DataLoader

    kwargs: dict[str, Any] = {
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "multiprocessing_context": loader.multiprocessing_context,
        "generator": loader.generator,
        "persistent_workers": loader.persistent_workers,
        "pin_memory_device": loader.pin_memory_device,
        "in_order": loader.in_order,
    }
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
    if loader.batch_size is not None:
        return DataLoader(
            loader.dataset,
            batch_size=loader.batch_size,
            drop_last=loader.drop_last,
            sampler=index_sampler,
            **kwargs,
        )
    batches = loader.batch_sampler if loader.batch_sampler is not None else loader.sampler
    if isinstance(batches, BatchSampler):
        rebatched = BatchSampler(index_sampler, batches.batch_size, batches.drop_last)
        if loader.batch_sampler is not None:
            return DataLoader(loader.dataset, batch_sampler=rebatched, **kwargs)
        return DataLoader(loader.dataset, batch_size=None, sampler=rebatched, **kwargs)
    return DataLoader(loader.dataset, batch_size=None, sampler=index_sampler, **kwargs)


def _index_sampler(loader: DataLoader[Any]) -> object:
    from torch.utils.data import BatchSampler

    if loader.batch_size is not None:
        return loader.sampler
    batches = loader.batch_sampler if loader.batch_sampler is not None else loader.sampler
    if isinstance(batches, BatchSampler):
        return batches.sampler
    return batches


def _shardable(data: object, what: str) -> DataLoader[Any] | None:
    """The DataLoader to shard, or ``None`` when ``data`` is taken as this rank's part."""
    from torch.utils.data import DataLoader, IterableDataset

    if not is_distributed():
        return None
    if not isinstance(data, DataLoader) or isinstance(data.dataset, IterableDataset):
        logger.info(
            "%s is not a DataLoader over a map-style dataset: each rank reads it as its own "
            "part of the data",
            what,
        )
        return None
    return data


def shard(data: Iterable[Any], *, seed: int, what: str = "train_loader") -> Iterable[Any]:
    """This rank's part of a training DataLoader when distributed.

    A DataLoader over a map-style dataset whose sampler (possibly inside a ``BatchSampler``) is a
    ``RandomSampler`` or ``SequentialSampler`` is rebuilt with a ``DistributedSampler``
    (``shuffle`` as before, ``seed``, the last samples padded so every rank has as many
    batches); its batching, collate function, workers and generator are kept. One that already
    uses a ``DistributedSampler`` is returned as it is. Any other iterable (a list of batches,
    an ``IterableDataset``) is taken as this rank's part as given. ``data`` itself without a
    process group.

    Raises:
        ValueError: a DataLoader with another sampler (weighted, custom), which lrkit cannot
            split; give it a ``DistributedSampler`` yourself.
    """
    from torch.utils.data import RandomSampler, SequentialSampler
    from torch.utils.data.distributed import DistributedSampler

    loader = _shardable(data, what)
    if loader is None:
        return data
    inner = _index_sampler(loader)
    if isinstance(inner, DistributedSampler):
        return loader
    size = len(loader.dataset)  # type: ignore[arg-type]
    if isinstance(inner, RandomSampler) and not inner.replacement and inner.num_samples == size:
        shuffle = True
    elif isinstance(inner, SequentialSampler):
        shuffle = False
    else:
        raise ValueError(
            f"{what} samples with a {type(inner).__name__}, which lrkit cannot split between "
            f"the {world()} ranks; build it with a torch.utils.data.DistributedSampler"
        )
    sampler: DistributedSampler[Any] = DistributedSampler(
        loader.dataset,
        num_replicas=world(),
        rank=rank(),
        shuffle=shuffle,
        seed=seed,
    )
    return _rebuild(loader, sampler)


def shard_eval(data: Iterable[Any], *, what: str = "val_loader") -> Iterable[Any]:
    """This rank's part of a validation DataLoader when distributed: the examples ``rank,
    rank + world, ...`` in order, without padding, so the reduced evaluation
    (:meth:`Engine.evaluate`) counts every example exactly once. A DataLoader that already uses
    a ``DistributedSampler``, and any iterable that is not a DataLoader over a map-style
    dataset, are returned as they are (each rank then evaluates what it is given)."""
    from torch.utils.data.distributed import DistributedSampler

    loader = _shardable(data, what)
    if loader is None or isinstance(_index_sampler(loader), DistributedSampler):
        return data
    n = len(loader.dataset)  # type: ignore[arg-type]
    return _rebuild(loader, range(rank(), n, world()))


# -- the process group of a launcher --------------------------------------------------------


def init_from_env() -> bool:
    """Join the process group a launcher such as ``torchrun`` describes in the environment
    (``WORLD_SIZE`` > 1, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).

    The backend is gloo on the CPU, or ``"cpu:gloo,cuda:nccl"`` with CUDA (each rank then uses
    the GPU ``LOCAL_RANK``). Returns whether a group was initialized here (``False`` for a
    single process, or when one already exists); call :func:`close` at the end.
    """
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or _initialized():
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group("gloo")
    return True


CLOSE_TIMEOUT_S = 60.0
"""How long :func:`close` waits for the other ranks before it destroys the group anyway."""


def close() -> None:
    """Destroy the default process group, if there is one.

    The ranks first wait for each other (with gloo at most :data:`CLOSE_TIMEOUT_S`, with NCCL
    the group's timeout; a rank that does not come is logged), so that no rank tears its
    connections down while another still has work in flight on them. Unreachable objects that
    still hold the group (the ``DistributedDataParallel`` wrappers of finished runs) are then
    collected, so that the group really ends here and not while the interpreter shuts down,
    where its gloo threads can abort the process."""
    if _initialized():
        import datetime
        import gc

        import torch.distributed as dist

        try:
            if dist.get_backend() == dist.Backend.GLOO:
                dist.monitored_barrier(timeout=datetime.timedelta(seconds=CLOSE_TIMEOUT_S))
            else:  # NCCL with it: its own timeout applies
                dist.barrier()
        except RuntimeError as err:  # a rank that failed or left; nothing is left to wait for
            logger.warning("closing the process group without every rank: %s", err)
        gc.collect()
        dist.destroy_process_group()
