"""Matplotlib helpers. Matplotlib is imported when a function here is called, never before; it is
the ``lrkit[plot]`` extra, and without it these functions raise ``ImportError`` saying so."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._extras import require
from .schedules import Policy, Schedule, as_hyper

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.legend import Legend

__all__ = [
    "new_axes",
    "new_figure",
    "outside_legend",
    "plot_schedule",
    "save_axes",
    "save_figure",
]


def _require_matplotlib() -> None:
    require("matplotlib", "plot", "plotting")


def new_figure(width: float = 7.0, height: float = 3.6) -> Figure:
    """A figure that needs no display (no pyplot state, safe on headless machines)."""
    _require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Write ``fig`` to ``path`` (format from the suffix, Agg canvas), creating the folder.
    Under ``torch.distributed`` only rank 0 writes (every rank draws the same figure)."""
    from .engine import distributed

    if not distributed.is_writer():
        return
    _require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if fig.canvas is None or type(fig.canvas).__name__ == "FigureCanvasBase":
        FigureCanvasAgg(fig)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)


def new_axes(target: Any, width: float = 7.0, height: float = 4.5) -> tuple[Axes, Path | None]:
    """Resolve a plot target: an ``Axes`` is drawn into as is; a path gets a new display-free
    figure (see :func:`new_figure`) to be written there; ``None`` gets a new pyplot figure (for
    notebooks). Returns the axes and the path to write, if any."""
    _require_matplotlib()
    from matplotlib.axes import Axes

    if isinstance(target, Axes):
        return target, None
    if target is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(width, height), layout="constrained")
        return ax, None
    if isinstance(target, str | os.PathLike):
        return new_figure(width, height).add_subplot(), Path(target)
    raise TypeError(f"plot target must be a path, a matplotlib Axes or None, got {target!r}")


def save_axes(ax: Axes, path: str | os.PathLike[str]) -> None:
    """Write the figure that holds ``ax`` to ``path``."""
    _require_matplotlib()
    from matplotlib.figure import Figure

    fig: Any = ax.get_figure()
    if fig is not None and not isinstance(fig, Figure):
        fig = getattr(fig, "figure", None)
    if not isinstance(fig, Figure):
        raise ValueError("the axes belong to no figure")
    save_figure(fig, path)


def outside_legend(ax: Axes, *twins: Axes, fontsize: float = 8) -> Legend:
    """One legend for the labelled lines of ``ax`` and of its ``twins`` (such as a ``twinx``),
    drawn at the upper right of the figure, outside its axes, so that it hides no data; legends
    the axes had are removed. The figure should have constrained layout (:func:`new_figure`
    and :func:`new_axes` make it so), which makes room for the legend. Returns the legend."""
    _require_matplotlib()
    handles: list[Any] = []
    labels: list[str] = []
    for each in (ax, *twins):
        old = each.get_legend()
        if old is not None:
            old.remove()
        more, words = each.get_legend_handles_labels()
        handles += more
        labels += words
    fig = ax.get_figure()
    if fig is None:
        raise ValueError("the axes belong to no figure: draw them in one first")
    return fig.legend(handles, labels, loc="outside right upper", fontsize=fontsize)


def plot_schedule(
    schedule: Policy,
    steps: int | None = None,
    path: str | os.PathLike[str] | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    log: bool = False,
) -> Figure:
    """Draw the learning rate (and momentum, when the schedule has one) against the step.

    ``steps`` defaults to the schedule's length (required for endless schedules). The title is
    the schedule's repr (the call that made it, e.g. ``one_cycle(peak=0.8, total_steps=1000)``)
    unless ``title`` is given. Writes a PNG (or any matplotlib format) to ``path`` when given,
    draws into ``ax`` when given, and returns the figure either way.
    """
    pair = as_hyper(schedule)
    lr, momentum = pair.lr, pair.momentum
    if not isinstance(lr, Schedule):
        raise TypeError(f"expected an lrkit schedule or Hyper, got {type(schedule).__name__}")
    n = steps if steps is not None else lr.steps
    if n is None:
        raise ValueError(f"{lr!r} never ends: pass steps= to choose how much of it to draw")
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"steps must be a positive int, got {n!r}")
    t = np.arange(n)
    if ax is None:
        fig = new_figure()
        ax = fig.subplots()
    else:
        fig = ax.get_figure()  # type: ignore[assignment]
    ax.plot(t, lr(t), color="C0", lw=1.8, label="learning rate")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate", color="C0")
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    handles: list[Any] = ax.get_lines()
    if momentum is not None:
        ax2 = ax.twinx()
        ax2.plot(t, momentum(t), color="C1", lw=1.4, ls="--", label="momentum")
        ax2.set_ylabel("momentum", color="C1")
        handles = handles + ax2.get_lines()
        ax.legend(handles, [str(h.get_label()) for h in handles], loc="best", fontsize=8)
    ax.set_title(title if title is not None else _short(repr(schedule)), fontsize=9)
    if path is not None:
        save_figure(fig, path)
    return fig


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
