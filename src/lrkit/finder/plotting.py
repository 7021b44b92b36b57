"""Matplotlib plumbing shared by the finder's plots (matplotlib is imported lazily)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["new_axes", "save_axes"]


def new_axes(target: Any) -> tuple[Axes, Path | None]:
    """Resolve a plot target: an ``Axes`` is used as is; a path gets a new figure that is not
    attached to pyplot (rendered with Agg, so no window opens and no display is needed);
    ``None`` gets a new pyplot figure. Returns the axes and the path to write, if any."""
    from matplotlib.axes import Axes

    if isinstance(target, Axes):
        return target, None
    if target is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 4.5))
        return ax, None
    if isinstance(target, (str, os.PathLike)):
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4.5))
        return fig.add_subplot(), Path(target)
    raise TypeError(f"plot target must be a path, a matplotlib Axes or None, got {target!r}")


def save_axes(ax: Axes, path: Path) -> None:
    """Write the figure of ``ax`` to ``path`` (format from the suffix) with the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig: Any = ax.get_figure()
    if fig is not None and not isinstance(fig, Figure):
        fig = getattr(fig, "figure", None)
    if not isinstance(fig, Figure):
        raise ValueError("the axes belong to no figure")
    FigureCanvasAgg(fig)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
