"""Transfer learning offline, for the ``transfer`` recipe: a backbone pretrained here on a source
task (nothing is downloaded), cached in the run directory, and loaded into the target task's
model with all but its last block frozen and a new head.

A target task names its source in :data:`TRANSFER_PAIRS`, with the modules that stay frozen and
those built fresh for the target. :func:`pretrain` trains the source task's model once with the
source's own defaults and stores it (``pretrained/backbone.pt`` and ``backbone.json`` in the run
directory); :func:`pretrained_task` is the target task whose models start from that backbone, so
the range test, every trial and the user see the same model. Frozen parameters get
``requires_grad=False``, so :func:`lrkit.train.fit` leaves them out of the optimizer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._files import atomic_write_text
from ..engine import save_atomic
from ..tasks import Task, get_task
from ..train.loop import fit
from .summary import Arm, mean_std

__all__ = [
    "PRETRAINED",
    "TRANSFER_PAIRS",
    "Pretrained",
    "TransferPair",
    "load_backbone",
    "optimizer_spread",
    "pretrain",
    "pretrained_task",
    "transfer_pair",
]

log = logging.getLogger(__name__)

PRETRAINED = "pretrained"
"""The folder of a run directory that holds the pretrained backbone."""

_FORMAT = "lrkit.backbone/1"


@dataclass(frozen=True)
class TransferPair:
    """How a target task is fine-tuned from a backbone pretrained on ``source``: the modules in
    ``frozen`` (names as in ``model.named_modules()``) keep their pretrained parameters, those
    in ``head`` are built fresh for the target (not loaded), and the rest (the last block) start
    from the pretrained parameters and train."""

    source: str
    frozen: tuple[str, ...]
    head: tuple[str, ...]


TRANSFER_PAIRS: dict[str, TransferPair] = {
    # the MNIST-1D paper's CNN (Sequential: 1, 3, 5 convolutions, 8 the linear head): the first
    # two convolutions are frozen, the third (the last block) fine-tunes, the head is new
    "mnist1d-5to9-paper": TransferPair("mnist1d-0to4-paper", ("1", "3"), ("8",)),
}
"""Target tasks the ``transfer`` recipe knows, with their source and what freezes."""


def transfer_pair(target: str) -> TransferPair:
    """The :class:`TransferPair` of target task ``target``; another task lists the known ones."""
    try:
        return TRANSFER_PAIRS[target]
    except KeyError:
        raise ValueError(
            f"the transfer recipe needs a target task with a source task to pretrain on; "
            f"{target!r} has none. Targets: {', '.join(TRANSFER_PAIRS)}"
        ) from None


@dataclass(frozen=True)
class Pretrained:
    """A backbone pretrained here: where it is, what it was trained on and how well.

    ``weights`` is the ``torch.save`` file of the whole source model's ``state_dict``;
    ``metric`` is its final validation metric on the source task.
    """

    weights: Path
    source: str
    steps: int
    optimizer: str
    lr: float
    seed: int
    metric_name: str
    metric: float
    seconds: float

    @property
    def label(self) -> str:
        """``pretrained here on <source>``: how reports and JSON name the backbone."""
        return f"pretrained here on {self.source}"

    def describe(self) -> str:
        """One line for the findings."""
        return (
            f"backbone {self.label} (nothing downloaded): {self.steps} steps of {self.optimizer} "
            f"at lr {self.lr:g}, seed {self.seed}, final validation {self.metric_name} "
            f"{self.metric:.4g} on the source; cached in {self.weights.parent}"
        )

    def spec(self, pair: TransferPair) -> dict[str, Any]:
        """The JSON-able description a trial carries (``config["pretrained"]``)."""
        return {
            "label": self.label,
            "source": self.source,
            "weights": str(self.weights.resolve()),
            "frozen": list(pair.frozen),
            "head": list(pair.head),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``backbone.json``)."""
        d = dataclasses.asdict(self)
        d["weights"] = str(self.weights)
        return {"label": self.label, **d}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Pretrained:
        """Inverse of :meth:`to_dict`."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in names}
        values["weights"] = Path(values["weights"])
        return cls(**values)


def pretrain(source: Task | str, folder: str | os.PathLike[str], *, seed: int = 0) -> Pretrained:
    """Train the source task's model (seeded) with the source's own optimizer, learning rate and
    epochs, and store it in ``folder`` (``backbone.pt``, ``backbone.json``). A backbone already
    there is reused; one that cannot be read back is trained again."""
    task = get_task(source) if isinstance(source, str) else source
    where = Path(folder)
    meta, weights = where / "backbone.json", where / "backbone.pt"
    if meta.exists() and weights.exists():
        try:
            found = Pretrained.from_dict(json.loads(meta.read_text(encoding="utf-8")))
            _read_state(weights)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
            log.warning(
                "pretrained backbone in %s is unreadable (%s); training it again", where, err
            )
        else:
            if found.source == task.name and found.seed == seed:
                return found
            log.warning("the backbone in %s is of another task or seed; training again", where)
    model = task.make_model(seed)
    history = fit(task, model=model, seed=seed, num_threads=1)
    if history.diverged or history.final_metric is None:
        raise ValueError(
            f"pretraining on {task.name} did not converge ({history.stop_reason}); the "
            "transfer recipe needs a trained backbone"
        )
    save_atomic({"format": _FORMAT, "source": task.name, "state": model.state_dict()}, weights)
    found = Pretrained(
        weights=weights,
        source=task.name,
        steps=len(history.loss),
        optimizer=history.optimizer or task.optimizer,
        lr=float(history.lr[0]) if history.lr else task.default_lr,
        seed=seed,
        metric_name=task.metric_name,
        metric=float(history.final_metric),
        seconds=float(history.seconds),
    )
    atomic_write_text(meta, json.dumps(found.to_dict(), indent=1) + "\n")
    log.info("%s", found.describe())
    return found


def _read_state(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read the backbone {path}: {type(err).__name__}: {err}") from err
    if not isinstance(saved, dict) or saved.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a backbone written by lrkit's transfer recipe")
    state: dict[str, torch.Tensor] = saved["state"]
    return state


def load_backbone(
    model: nn.Module,
    weights: str | os.PathLike[str],
    frozen: Sequence[str],
    head: Sequence[str],
) -> nn.Module:
    """Load the pretrained parameters into ``model`` (in place) for every module but those in
    ``head``, and freeze those in ``frozen`` (``requires_grad=False``); returns ``model``.

    Raises:
        ValueError: the file is not a backbone, names a module the model lacks, or does not
            match the model's parameters.
    """
    for name in (*frozen, *head):
        try:
            model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"the model has no module {name!r} to freeze or rebuild") from None
    heads = tuple(f"{h}." for h in head)
    state = {k: v for k, v in _read_state(weights).items() if not k.startswith(heads)}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise ValueError(f"the backbone in {weights} does not fit the model: {err}") from None
    stray = [k for k in missing if not k.startswith(heads)]
    if stray or unexpected:
        raise ValueError(
            f"the backbone in {weights} does not fit the model (missing {stray}, unexpected "
            f"{list(unexpected)})"
        )
    for name in frozen:
        model.get_submodule(name).requires_grad_(False)
    return model


def _pretrained_model(task: Task, spec: Mapping[str, Any]) -> nn.Module:
    model = task.build_model()
    return load_backbone(model, spec["weights"], spec["frozen"], spec["head"])


class _Builder:
    """``build_model`` of a pretrained task: the target's model (its head initialised by the
    seed :meth:`Task.make_model` sets) with the backbone loaded and frozen. A class, not a
    closure, so that the task pickles."""

    def __init__(self, task: Task, spec: Mapping[str, Any]) -> None:
        self.task = task
        self.spec = dict(spec)

    def __call__(self) -> nn.Module:
        return _pretrained_model(self.task, self.spec)


def pretrained_task(target: Task, spec: Mapping[str, Any]) -> Task:
    """``target`` with models that start from a pretrained backbone (``spec`` from
    :meth:`Pretrained.spec`): named ``"<target>, backbone pretrained here on <source>"``, so the
    histories of its runs say where the backbone came from."""
    for key in ("weights", "source", "frozen", "head"):
        if key not in spec:
            raise ValueError(f"a pretrained spec needs {key!r}; got {sorted(spec)}")
    return dataclasses.replace(
        target,
        name=f"{target.name}, backbone pretrained here on {spec['source']}",
        description=f"{target.description}; backbone pretrained here on {spec['source']}",
        build_model=_Builder(target, spec),
    )


def optimizer_spread(arms: Sequence[Arm]) -> dict[str, float]:
    """How far apart the arms' mean final metrics are: ``range`` (best minus worst), ``std``
    (sample standard deviation across the arms) and ``n`` (arms with a final metric)."""
    means = [m for m in (mean_std(a.final_metrics())[0] for a in arms) if math.isfinite(m)]
    if not means:
        return {"range": math.nan, "std": math.nan, "n": 0}
    return {
        "range": float(max(means) - min(means)),
        "std": float(np.std(means, ddof=1)) if len(means) > 1 else 0.0,
        "n": len(means),
    }
