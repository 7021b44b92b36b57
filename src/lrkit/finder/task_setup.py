"""A built-in or registered task made ready for the finder: its model, a named optimizer and its
loaders. The finder's task functions (:mod:`lrkit.finder.task`) and the Ray workers that train
the search's probes (``lrkit.finder._ray_probes``) build a task the same way with it, so a probe
on a worker starts from what the search started from."""

from __future__ import annotations

from typing import Any

import torch

from lrkit._optimizers import build_optimizer
from lrkit.engine import distributed
from lrkit.tasks import Task

__all__ = ["task_setup"]


def task_setup(
    t: Task, opt_name: str, seed: int, batch_size: int | None, weight_decay: float
) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any, Any]:
    """The task's model (seeded), the named optimizer, and the training and validation loaders;
    under ``torch.distributed`` the model in ``DistributedDataParallel`` and each loader
    reduced to this rank's part.

    Args:
        t: the task.
        opt_name: the optimizer's name (``"sgd"``, ``"adamw"``, ...), built at the task's
            learning rate for it (where the search starts when a range test finds no
            basin; the range test sweeps its own).
        seed: seeds the model's initialisation and the loaders' order.
        batch_size: the loaders' batch size; ``None``: the task's.
        weight_decay: the optimizer's weight decay.

    Returns:
        ``(model, optimizer, train_loader, val_loader)``.
    """
    model = t.make_model(seed)
    lr = t.lr_for(opt_name)  # the search falls back on it; the range test sweeps its own
    opt = build_optimizer(opt_name, model.parameters(), lr=lr, weight_decay=weight_decay)
    train, val = t.loaders(batch_size=batch_size, seed=seed)
    if distributed.is_distributed():
        return (
            distributed.wrap(model, torch.device("cpu")),
            opt,
            distributed.shard(train, seed=seed),
            distributed.shard_eval(val),
        )
    return model, opt, train, val
