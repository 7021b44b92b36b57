"""The one training core under the range test, the trainer and the search.

- :mod:`~lrkit.engine.batches`: batch conventions (``(inputs..., target)`` tuples, anything with
  ``step_fn(model, batch) -> loss``), nested device moves, peeking and cycling data.
- :mod:`~lrkit.engine.step`: :class:`Engine`, one optimizer update (gradient accumulation,
  autocast with a GradScaler and skipped-step detection, gradient clipping) and one evaluation.
- :mod:`~lrkit.engine.session`: :class:`Session`, the setup as one value (model, optimizer,
  loss or step function, accumulation, scaler, autocast, clipping, validation data and metric),
  checked once, with its fingerprint, its snapshot and its engine.
- :mod:`~lrkit.engine.loop`: :func:`drive`, the one update loop (skipped steps retried, a
  non-finite loss never stepped on, the schedule stepped after each update) with the hooks the
  range test's sweep, the search's probes and ``fit`` record through.
- :mod:`~lrkit.engine.state`: the random number generators, an exact snapshot of a model, its
  optimizer and scaler, and checkpoint files.
- :mod:`~lrkit.engine.distributed`: ``torch.distributed`` (torchrun): losses and evaluations
  reduced over the ranks, arguments agreed before any step, data sharded, rank 0 writes.
"""

from lrkit.engine import distributed
from lrkit.engine.batches import (
    BatchStream,
    LossFn,
    StepFn,
    batch_size,
    checked,
    compute_loss,
    count_batches,
    map_tensors,
    move_to_device,
    peek,
    validate_batch,
)
from lrkit.engine.loop import MAX_SKIPS, Drive, DriveStop, Hooks, NoHooks, drive
from lrkit.engine.session import AUTOCAST_DTYPES, Session
from lrkit.engine.state import (
    CHECKPOINT_NAME,
    RngState,
    SnapshotMode,
    TrainingSnapshot,
    checkpoint_path,
    data_generators,
    epoch_samplers,
    load_checkpoint,
    save_atomic,
)
from lrkit.engine.step import Engine, Evaluation, MetricFn, Update, UpdateStatus, model_device

__all__ = [
    "AUTOCAST_DTYPES",
    "CHECKPOINT_NAME",
    "MAX_SKIPS",
    "BatchStream",
    "Drive",
    "DriveStop",
    "Engine",
    "Evaluation",
    "Hooks",
    "LossFn",
    "MetricFn",
    "NoHooks",
    "RngState",
    "Session",
    "SnapshotMode",
    "StepFn",
    "TrainingSnapshot",
    "Update",
    "UpdateStatus",
    "batch_size",
    "checked",
    "checkpoint_path",
    "compute_loss",
    "count_batches",
    "data_generators",
    "distributed",
    "drive",
    "epoch_samplers",
    "load_checkpoint",
    "map_tensors",
    "model_device",
    "move_to_device",
    "peek",
    "save_atomic",
    "validate_batch",
]
