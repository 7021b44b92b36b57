"""The final metric against the peak learning rate: a grid of peaks, and where other choices
of the peak landed on it (the demo's first figure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .. import schedules as S
from ..plot import new_figure
from .summary import Arm, mean_std
from .trial import decode_lr

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["arm_peak", "peak_grid_figure"]


def arm_peak(arm: Arm) -> float:
    """The peak learning rate of an arm: the largest LR of its first trial's schedule (the
    constant itself for a constant LR), or NaN when the arm has no trial."""
    for rec in arm.records:
        lr = decode_lr(rec.config.get("lr"))
        sched = lr.lr if isinstance(lr, S.Hyper) else lr
        if isinstance(sched, (int, float)):
            return float(sched)
        n = sched.steps or int(rec.config.get("steps", 1))
        return float(np.max(sched(np.arange(n))))
    return math.nan


def peak_grid_figure(arms: Sequence[Arm], grid: str, metric_name: str) -> Figure | None:
    """The mean final metric (± one standard deviation over seeds) of the arms whose label
    starts with ``grid`` against their peak LR on a log axis, with every other arm marked at
    its own peak; ``None`` when fewer than two grid arms have a final metric."""
    rows = []
    for arm in arms:
        mean, std = mean_std(arm.final_metrics())
        if math.isfinite(mean):
            rows.append((arm, arm_peak(arm), mean, std))
    on_grid = sorted((r for r in rows if r[0].label.startswith(grid)), key=lambda r: r[1])
    if len(on_grid) < 2:
        return None
    others = [r for r in rows if not r[0].label.startswith(grid)]
    fig = new_figure(11, 4.2)
    whole, top = fig.subplots(1, 2, width_ratios=(3, 2))
    for ax in (whole, top):
        _draw(ax, on_grid, others, grid)
        ax.set_xscale("log")
        ax.set_xlabel("one-cycle peak learning rate")
        ax.grid(alpha=0.3, which="both")
    whole.set_ylabel(f"final validation {metric_name}")
    whole.set_title(f"final {metric_name} against the peak (mean ± std over seeds)", fontsize=10)
    best = max(r[2] for r in on_grid)
    near = [r for r in on_grid + others if r[2] >= min([best, *(o[2] for o in others)])]
    low = min(r[2] - r[3] for r in near)
    high = max(r[2] + r[3] for r in near)
    pad = 0.1 * (high - low) or 0.01 * abs(best) or 0.01
    top.set_ylim(low - pad, high + pad)
    lo_x, hi_x = min(r[1] for r in near), max(r[1] for r in near)
    top.set_xlim(lo_x / 10 ** (1 / 6), hi_x * 10 ** (1 / 6))
    top.set_title("near the top", fontsize=10)
    handles, labels = whole.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8)
    return fig


def _draw(
    ax: Axes,
    on_grid: list[tuple[Arm, float, float, float]],
    others: list[tuple[Arm, float, float, float]],
    grid: str,
) -> None:
    xs = np.array([r[1] for r in on_grid])
    ys = np.array([r[2] for r in on_grid])
    sd = np.array([r[3] for r in on_grid])
    ax.plot(xs, ys, "-o", color="0.35", ms=5, label=f"{grid}: one run per peak and seed")
    ax.fill_between(xs, ys - sd, ys + sd, color="0.35", alpha=0.15, lw=0)
    best = max(on_grid, key=lambda r: r[2])
    ax.plot(
        [best[1]], [best[2]], "*", color="0.1", ms=14, label=f"best of the {grid}: {best[1]:.3g}"
    )
    for arm, peak, mean, _ in on_grid:
        if arm.label.endswith(")") and " (" in arm.label:  # a named point of the grid
            name = arm.label[arm.label.rindex(" (") + 2 : -1]
            ax.plot(
                [peak], [mean], "o", mfc="none", mec="C3", mew=2, ms=12, label=f"{name}: {peak:.3g}"
            )
    markers = "sD^v<>ph"
    for i, (arm, peak, mean, std) in enumerate(others):
        ax.errorbar(
            [peak], [mean], yerr=[std], fmt=markers[i % len(markers)], color=f"C{i}", ms=8,
            capsize=3, zorder=5, label=f"{arm.label.split(' peak=')[0]}: {peak:.3g}",
        )  # fmt: skip
