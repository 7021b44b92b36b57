"""lrkit: find a learning rate, schedule it, and show the effect."""

from importlib.metadata import PackageNotFoundError, version

from . import schedules
from .driver import Scheduler

try:
    __version__ = version("lrkit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["Scheduler", "__version__", "schedules"]
