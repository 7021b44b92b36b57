"""Reading a ``transformers.Trainer``: the training ``train()`` would run as lrkit's
arguments (:func:`read`), the Trainer put back as it was afterwards (:class:`Untouched`), and
the score of a probe (:func:`scoring`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lrkit._extras import require
from lrkit.engine import model_device

transformers = require("transformers", "huggingface", "lrkit.huggingface")

__all__ = [
    "Batches",
    "Metric",
    "Output",
    "Setup",
    "TrainerModel",
    "Untouched",
    "check_trainer",
    "loss_of",
    "read",
    "scoring",
    "train_loader",
]

_MISSING = object()


def check_trainer(trainer: Any) -> None:
    """Raise ``TypeError`` for what is not a Trainer, ``ValueError`` for a Trainer that trains
    in several processes (torchrun, DeepSpeed, FSDP)."""
    if not isinstance(trainer, transformers.Trainer):
        raise TypeError(
            f"trainer must be a transformers.Trainer (or a subclass), got {type(trainer).__name__}"
        )
    args = trainer.args
    if int(getattr(args, "world_size", 1)) > 1:
        raise ValueError(
            f"the Trainer runs in {args.world_size} processes; run lrkit's search in a single "
            "process (python script.py), then launch the distributed training with its peak"
        )
    if getattr(trainer, "is_deepspeed_enabled", False) or getattr(
        trainer, "is_fsdp_enabled", False
    ):
        raise ValueError(
            "DeepSpeed and FSDP shard the model over processes; run lrkit's search on the "
            "model in a single process without them, then train with its peak"
        )


class Untouched:
    """The Trainer as it was: its attributes (an optimizer or a cached loader created while
    reading it, the entries of its dicts), the loaders its accelerator keeps, and accelerate's
    record of loaders being iterated; :meth:`restore` puts them back."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.attrs = dict(vars(trainer))
        self.dicts = {n: dict(v) for n, v in self.attrs.items() if type(v) is dict}
        accelerator = getattr(trainer, "accelerator", None)
        loaders = getattr(accelerator, "_dataloaders", None)
        self.loaders = (loaders, list(loaders)) if isinstance(loaders, list) else None
        self.gradient_state = getattr(accelerator, "gradient_state", None)
        self.iterating = list(getattr(self.gradient_state, "dataloader_references", []))

    def restore(self) -> None:
        """Put the attributes and the accelerator's records back."""
        now = vars(self.trainer)
        for name in [n for n in now if n not in self.attrs]:
            delattr(self.trainer, name)
        for name, value in self.attrs.items():
            if now.get(name, _MISSING) is not value:
                setattr(self.trainer, name, value)
        for name, saved in self.dicts.items():
            kept = self.attrs[name]
            kept.clear()
            kept.update(saved)
        if self.loaders is not None:
            self.loaders[0][:] = self.loaders[1]
        if self.gradient_state is not None and hasattr(
            self.gradient_state, "dataloader_references"
        ):
            self.gradient_state.dataloader_references = self.iterating


def labels_of(batch: Mapping[str, Any], names: Sequence[str]) -> Any:
    """The labels of a batch: the one of ``names``, or a tuple of several."""
    values = tuple(batch.get(n) for n in names)
    return values[0] if len(values) == 1 else (values or None)


class Batches:
    """A Trainer's dataloader as lrkit reads it: ``(batch, labels)`` pairs (the batch dict as
    the Trainer gives it to the model, with its labels as the target), re-iterable; each pass
    draws the loader's order for :attr:`epoch`, which lrkit's restore puts back, so every probe
    of the search sees the same order."""

    def __init__(self, loader: Any, label_names: Sequence[str]) -> None:
        self.loader = loader
        self.label_names = list(label_names)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next pass draws."""
        self.epoch = epoch

    @property
    def sampler(self) -> Any:
        """The loader's sampler (its generator is reseeded with the search)."""
        return getattr(self.loader, "sampler", None)

    @property
    def batch_sampler(self) -> Any:
        """The loader's batch sampler."""
        return getattr(self.loader, "batch_sampler", None)

    @property
    def generator(self) -> Any:
        """The loader's own generator, if any."""
        return getattr(self.loader, "generator", None)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        set_epoch = getattr(self.loader, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.epoch)
        for batch in self.loader:
            yield batch, labels_of(batch, self.label_names)


@dataclass(frozen=True)
class Output:
    """What the model gives lrkit for one batch: the loss, and in evaluation the Trainer's
    predictions, labels and inputs for ``compute_metrics``."""

    loss: Any
    predictions: Any = None
    labels: Any = None
    inputs: Any = None


class TrainerModel(nn.Module):
    """The model as the Trainer runs it: ``forward(batch)`` is ``trainer.compute_loss`` in
    training mode, ``trainer.prediction_step`` in eval mode (the Trainer's evaluation loss, and
    its predictions when ``predictions``). It holds the model as its only submodule, so its
    parameters, buffers and modes are the model's."""

    def __init__(self, trainer: Any, model: nn.Module, predictions: bool) -> None:
        super().__init__()
        self.model = model
        self._trainer = trainer
        self._predictions = predictions

    def forward(self, batch: Mapping[str, Any]) -> Output:
        inputs = dict(batch)
        if self.training:
            loss = self._trainer.compute_loss(self.model, inputs)
            return Output(loss[0] if isinstance(loss, tuple) else loss)
        loss, predictions, labels = self._trainer.prediction_step(
            self.model, inputs, prediction_loss_only=not self._predictions
        )
        return Output(loss, predictions, labels, batch)


def loss_of(output: Output, target: Any) -> torch.Tensor:
    """The loss of a batch (lrkit's ``loss_fn``): the Trainer's, from :class:`TrainerModel`."""
    loss = output.loss
    if loss is None:
        raise ValueError(
            "the Trainer's prediction_step gave no loss for an evaluation batch: it has no "
            "labels (label_names); give the evaluation dataset labels"
        )
    return loss  # type: ignore[no-any-return]


def to_numpy(value: Any) -> Any:
    """Tensors (nested in tuples, lists and dicts) as NumPy arrays, as ``compute_metrics`` gets
    them from the Trainer (half precision as float32)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype in (torch.bfloat16, torch.float16):
            value = value.float()
        return value.numpy()
    if isinstance(value, (tuple, list)):
        return type(value)(to_numpy(v) for v in value)
    if isinstance(value, Mapping):
        return {k: to_numpy(v) for k, v in value.items()}
    return value


class Metric:
    """``metric_for_best_model`` of one evaluation batch: the Trainer's ``compute_metrics``
    on the batch's predictions (after ``preprocess_logits_for_metrics``) and labels."""

    def __init__(self, trainer: Any, key: str) -> None:
        self.trainer = trainer
        self.key = key
        include = list(getattr(trainer.args, "include_for_metrics", None) or [])
        self.inputs = "inputs" in include
        self.losses = "loss" in include
        self.batched = bool(getattr(trainer.args, "batch_eval_metrics", False))

    def __call__(self, output: Output, target: Any) -> float:
        trainer = self.trainer
        labels = output.labels
        if labels is None:
            raise ValueError(
                f"metric_for_best_model={self.key!r} needs labels in the evaluation batches "
                "(label_names); give the evaluation dataset labels"
            )
        predictions = output.predictions
        if trainer.preprocess_logits_for_metrics is not None:
            predictions = trainer.preprocess_logits_for_metrics(predictions, labels)
        extra: dict[str, Any] = {}
        if self.inputs:
            name = getattr(trainer.model, "main_input_name", "input_ids")
            extra["inputs"] = to_numpy(output.inputs.get(name))
        if self.losses:
            extra["losses"] = to_numpy(output.loss)
        found = transformers.EvalPrediction(
            predictions=to_numpy(predictions), label_ids=to_numpy(labels), **extra
        )
        kwargs = {"compute_result": True} if self.batched else {}
        values = trainer.compute_metrics(found, **kwargs)
        for name in (self.key, f"eval_{self.key}"):
            if name in values:
                return float(values[name])
        raise ValueError(
            f"compute_metrics returned {sorted(values)}, without metric_for_best_model "
            f"({self.key!r}); set metric_for_best_model to one of them"
        )


def scoring(trainer: Any) -> tuple[Metric | None, bool]:
    """The score of a probe: ``(metric_fn, maximize)`` from ``metric_for_best_model`` and
    ``greater_is_better``; ``(None, False)`` for the evaluation loss."""
    args = trainer.args
    name = args.metric_for_best_model
    if name is None:
        return None, False
    key = name[len("eval_") :] if name.startswith("eval_") else name
    if key == "loss":
        return None, False
    if trainer.compute_metrics is None:
        raise ValueError(
            f"metric_for_best_model={name!r} needs the Trainer's compute_metrics; pass "
            "compute_metrics=..., or leave metric_for_best_model unset to score on the "
            "evaluation loss"
        )
    better = args.greater_is_better
    maximize = bool(better) if better is not None else not key.endswith("loss")
    return Metric(trainer, key), maximize


def train_loader(trainer: Any) -> Any:
    """``trainer.get_train_dataloader()``; ``ValueError`` without a ``train_dataset``."""
    if trainer.train_dataset is None:
        raise ValueError("the Trainer has no train_dataset; pass train_dataset=... to it")
    return trainer.get_train_dataloader()


def first_dict(batches: Batches, what: str) -> Mapping[str, Any]:
    """The first batch, checked to be a dict as the Trainer's model takes it."""
    for batch, _ in batches:
        if not isinstance(batch, Mapping):
            raise ValueError(
                f"the Trainer's {what} dataloader yields {type(batch).__name__} batches; the "
                "Trainer's model takes dict batches (use a data collator that returns dicts)"
            )
        return batch
    raise ValueError(f"the Trainer's {what} dataloader yielded no batches")


def holdout_split(trainer: Any, fraction: float, seed: int) -> tuple[Any, Any, str]:
    """Split ``train_dataset`` into ``(kept, held, description)``."""
    dataset = trainer.train_dataset
    try:
        n = len(dataset)
    except TypeError:
        raise ValueError(
            "the Trainer has no eval_dataset, and its train_dataset has no length (an "
            "IterableDataset) to hold a slice out of; pass eval_dataset to the Trainer"
        ) from None
    k = round(n * fraction)
    if k < 1 or n - k < 1:
        raise ValueError(
            f"holdout={fraction:g} of the {n} training examples leaves no examples to score "
            "on or to train on; pass eval_dataset to the Trainer or change holdout"
        )
    order = np.random.default_rng(seed).permutation(n)
    held = sorted(int(i) for i in order[:k])
    kept = sorted(int(i) for i in order[k:])

    def part(indices: list[int]) -> Any:
        if callable(getattr(dataset, "select", None)):  # a datasets.Dataset keeps its columns
            return dataset.select(indices)
        return torch.utils.data.Subset(dataset, indices)

    described = (
        f"{k} of the {n} training examples held out to score the probes (not trained on); "
        "the Trainer has no eval_dataset"
    )
    return part(kept), part(held), described


@dataclass
class Setup:
    """The training the Trainer would run, as lrkit's arguments."""

    model: TrainerModel
    optimizer: torch.optim.Optimizer
    train: Batches
    val: Batches | None
    accumulation_steps: int
    max_grad_norm: float | None
    autocast: torch.dtype | None
    scaler: Any
    holdout: str | None = None


def read(
    trainer: Any,
    *,
    evaluate: bool,
    predictions: bool,
    eval_dataset: Any,
    holdout: float | None,
    seed: int,
    who: str,
) -> Setup:
    """Read the Trainer (its attributes may change here; the caller restores them)."""
    args = trainer.args
    model = trainer.model
    acc = int(args.gradient_accumulation_steps)
    norm = args.max_grad_norm
    max_grad_norm = float(norm) if norm is not None and norm > 0 else None
    autocast: torch.dtype | None = None
    scaler: Any = None
    if args.bf16:
        autocast = torch.bfloat16
    elif args.fp16:
        if model_device(model).type != "cuda":
            raise ValueError(
                "fp16=True trains with a GradScaler, which needs the model on a CUDA device; "
                "use bf16=True on this device, or neither"
            )
        autocast = torch.float16
        scaler = torch.amp.GradScaler("cuda")
    names = list(getattr(trainer, "label_names", None) or args.label_names or ["labels"])
    described: str | None = None
    val: Batches | None = None
    if evaluate:
        chosen = trainer.eval_dataset if eval_dataset is None else eval_dataset
        if isinstance(chosen, Mapping) and eval_dataset is None:
            raise ValueError(
                f"the Trainer evaluates on several datasets ({', '.join(map(str, chosen))}); "
                "name the one to score on with eval_dataset='...'"
            )
        if chosen is None:
            if holdout is None:
                raise ValueError(
                    f"{who} scores on evaluation data: pass eval_dataset to the Trainer"
                    + (
                        ", or holdout=0.1 to hold out a slice of the training examples"
                        if who == "tune_lr"
                        else ""
                    )
                )
            kept, held, described = holdout_split(trainer, holdout, seed)
            trainer.train_dataset = kept  # for get_train_dataloader; restored afterwards
            val = Batches(trainer.get_eval_dataloader(held), names)
        else:
            val = Batches(trainer.get_eval_dataloader(eval_dataset), names)
        first = first_dict(val, "evaluation")
        if not names or any(first.get(n) is None for n in names):
            raise ValueError(
                f"the evaluation batches have no labels ({', '.join(names) or 'label_names'}"
                " is missing), so they give no loss to score on; give the evaluation dataset "
                "labels"
            )
    train = Batches(train_loader(trainer), names)
    first_dict(train, "training")
    optimizer = trainer.optimizer if trainer.optimizer is not None else trainer.create_optimizer()
    return Setup(
        TrainerModel(trainer, model, predictions),
        optimizer,
        train,
        val,
        acc,
        max_grad_norm,
        autocast,
        scaler,
        described,
    )
