"""A small training loop with exact resume, optimizers by name, and the run's History.

:func:`fit` runs a :class:`TrainConfig` (the settings in one place): it trains a built-in
:class:`~lrkit.tasks.Task` (or your own model and loaders) with an optimizer driven by lrkit
schedules, evaluates, checkpoints atomically, resumes bitwise-exactly after a kill, stops cleanly
on divergence, and returns a :class:`History`.
"""

from lrkit.engine import CHECKPOINT_NAME, checkpoint_path, load_checkpoint
from lrkit.train.config import TrainConfig
from lrkit.train.history import TIMING_FIELDS, History
from lrkit.train.loop import fit
from lrkit.train.optimizers import (
    OPTIMIZERS,
    OptimizerFactory,
    build_optimizer,
    cycles_momentum,
    default_lr,
    has_momentum,
)

__all__ = [
    "CHECKPOINT_NAME",
    "OPTIMIZERS",
    "TIMING_FIELDS",
    "History",
    "OptimizerFactory",
    "TrainConfig",
    "build_optimizer",
    "checkpoint_path",
    "cycles_momentum",
    "default_lr",
    "fit",
    "has_momentum",
    "load_checkpoint",
]
