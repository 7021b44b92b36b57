"""Run by tests/test_distributed.py under torchrun: ``fit`` with DistributedDataParallel, an
interrupted run resumed from its checkpoint, checkpoints in rank-specific folders, and settings
that differ between ranks. Each rank writes what it saw to ``OUT/report_rank{r}.json``."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path
from typing import Any

import problem
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from lrkit import schedules as S
from lrkit.engine import distributed
from lrkit.train import fit

STEPS = 30


class Interrupt(Exception):
    """Stands for a crash in the middle of a run."""


class Recording(TensorDataset):
    """A dataset that records which examples were read, in order."""

    def __init__(self, *tensors: Tensor) -> None:
        super().__init__(*tensors)
        self.seen: list[int] = []

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        self.seen.append(int(index))
        return super().__getitem__(index)


def loaders() -> tuple[DataLoader[Any], DataLoader[Any]]:
    """Plain DataLoaders over the whole data (208 and 64 examples); ``fit`` gives each rank
    its part."""
    train = problem.global_batches(13, seed=1)
    val = problem.global_batches(4, seed=2)
    g = torch.Generator().manual_seed(0)
    return (
        DataLoader(
            Recording(*(torch.cat(t) for t in zip(*train, strict=True))),
            batch_size=8, shuffle=True, generator=g,
        ),
        DataLoader(TensorDataset(*(torch.cat(t) for t in zip(*val, strict=True))), batch_size=16),
    )  # fmt: skip


def model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(problem.FEATURES, 32), nn.Tanh(), nn.Dropout(0.2), nn.Linear(32, problem.CLASSES)
    )


def settings(**more: Any) -> dict[str, Any]:
    train, val = loaders()
    return {
        "train_loader": train, "val_loader": val, "loss_fn": F.cross_entropy,
        "metric_fn": problem.accuracy, "metric_name": "accuracy",
        "lr": S.one_cycle(0.3, STEPS), "steps": STEPS, "eval_every": 5, "seed": 3, **more,
    }  # fmt: skip


def state(m: nn.Module) -> dict[str, list[float]]:
    return {k: v.flatten().tolist() for k, v in m.state_dict().items()}


def main(out: Path) -> None:
    torch.set_num_threads(1)
    rank = dist.get_rank()
    report: dict[str, Any] = {}

    _, val = loaders()
    report["val_rows"] = [float(v) for x, _ in distributed.shard_eval(val) for v in x[:, 0]]

    reference, given = model(0), settings()
    h_ref = fit(model=reference, **given)
    report["reference"] = {"history": h_ref.to_dict(timing=False), "state": state(reference)}
    report["reference_order"] = given["train_loader"].dataset.seen

    calls = {"n": 0}

    def failing_loss(output: Tensor, target: Tensor) -> Tensor:
        calls["n"] += 1
        if calls["n"] == 25:  # update 19 on every rank (after 3 evaluations of 2 batches)
            raise Interrupt
        return F.cross_entropy(output, target)

    shared = out / "shared_checkpoint"
    try:
        fit(
            model=model(0),
            checkpoint_every=8,
            checkpoint_dir=shared,
            **settings(loss_fn=failing_loss),
        )
    except Interrupt:
        report["interrupted"] = True
    ckpt = torch.load(shared / "checkpoint.pt", weights_only=True)
    report["checkpoint_step"] = ckpt["step"]
    resumed, given = model(99), settings()  # the model is overwritten by the checkpoint
    h = fit(model=resumed, checkpoint_every=8, checkpoint_dir=shared, resume=True, **given)
    report["resumed"] = {"history": h.to_dict(timing=False), "state": state(resumed)}
    report["resumed_order"] = given["train_loader"].dataset.seen
    report["one_cycle"] = [float(v) for v in S.one_cycle(0.3, STEPS).lr.table(0, STEPS)]

    own = out / f"checkpoint_rank{rank}"
    fit(model=model(0), **settings(steps=6, checkpoint_every=3, checkpoint_dir=own))
    errors: dict[str, str | None] = {}
    for case, extra in (
        ("resume_from_unshared_folders", {"steps": 6, "checkpoint_dir": own, "resume": True}),
        ("different_steps", {"steps": 6 + rank}),
    ):
        try:
            fit(model=model(0), **settings(**extra))
            errors[case] = None
        except ValueError as err:
            errors[case] = str(err)
    report["errors"] = errors
    (out / f"report_rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    main(Path(sys.argv[1]))
    distributed.close()
