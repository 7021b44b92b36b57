"""lrkit: find a learning rate, schedule it, and show the effect."""

from importlib.metadata import PackageNotFoundError, version

from . import schedules
from .driver import Scheduler
from .finder import (
    BatchSizeResult,
    RangeTestResult,
    Suggestion,
    TuneInterrupted,
    TuneResult,
    largest_batch,
    momentum_test,
    range_test,
    tune_lr,
    weight_decay_test,
)
from .plot import plot_schedule
from .schedules import Policy
from .tasks import Task, get_task, register_task, task_names
from .train import History, TrainConfig, fit

try:
    __version__ = version("lrkit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "BatchSizeResult",
    "History",
    "Policy",
    "RangeTestResult",
    "Scheduler",
    "Suggestion",
    "Task",
    "TrainConfig",
    "TuneInterrupted",
    "TuneResult",
    "__version__",
    "fit",
    "get_task",
    "largest_batch",
    "momentum_test",
    "plot_schedule",
    "range_test",
    "register_task",
    "schedules",
    "task_names",
    "tune_lr",
    "weight_decay_test",
]
