"""What the figures show, read from the drawn matplotlib objects: no number lands on another
in the report's headline chart, and tune_lr's probes stand apart from the range test with the
best of them in view."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from histories import curve_history
from lrkit.experiments import RunDir, TrialRecord
from lrkit.experiments.report import _headline_plot
from lrkit.experiments.summary import group_arms, speedup
from lrkit.finder import RangeTestResult, TuneResult
from lrkit.finder.search import Probe

pytest.importorskip("matplotlib")


def _drawn(fig: Any) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if type(fig.canvas).__name__ == "FigureCanvasBase":
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _texts(fig: Any) -> list[Any]:
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _climb(cross: int, final: float = 0.9, n: int = 100, every: int = 10) -> list[float]:
    """Accuracy every ``every`` steps: a straight climb that first reaches ``final`` + 0.002 at
    step ``cross`` and holds it."""
    steps = every * (np.arange(n) + 1)
    climb = 0.3 + (final - 0.001 - 0.3) * steps / cross
    return [float(v) for v in np.where(steps < cross, climb, final + 0.002)]


def test_the_headline_chart_puts_no_number_on_another(tmp_path: Path) -> None:
    """Both arms reach the target within ten steps of each other (945 and 950): their steps are
    still both readable, in the legend, which stands outside the axes."""
    rd = RunDir(tmp_path, {"recipe": "demo", "title": "t", "claim": "c", "target": 0.9})
    arms = {
        "one-cycle": [_climb(940), _climb(950)],
        "constant lr=0.1": [_climb(950), _climb(950)],
        "constant lr=0.01": [_climb(990, final=0.85)],
    }
    for arm, curves in arms.items():
        for seed, metric in enumerate(curves):
            history = curve_history(seed, metric, target=0.9).to_dict()
            rd.append(TrialRecord(f"{arm}/seed={seed}", {"arm": arm}, "ok", {"history": history}))
    head = speedup(group_arms(rd.records()), "one-cycle", "constant")
    assert head is not None
    assert (np.mean(head.claimant_steps), np.mean(head.baseline_steps)) == (945.0, 950.0)

    fig = _headline_plot(head, "accuracy")
    renderer = _drawn(fig)
    texts = _texts(fig)
    words = [t.get_text() for t in texts]
    assert "one-cycle: 945 steps to the target" in words
    assert "constant lr=0.1: 950 steps to the target" in words
    boxes = [t.get_window_extent(renderer) for t in texts]
    for (a, box_a), (b, box_b) in combinations(zip(words, boxes, strict=True), 2):
        assert not box_a.overlaps(box_b), (a, b)
    (ax,) = fig.axes
    legend = fig.legends[0]
    assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))


def _tune_result() -> TuneResult:
    """A range test whose loss falls until 0.3 and then diverges, and probes of two lengths
    whose best (0.141, score 1.0) sits at the top right of the plot, where a legend goes."""
    lrs = np.geomspace(1e-5, 0.6, 60)
    x = np.log10(lrs / 1e-5) / np.log10(0.6 / 1e-5)
    losses = 1.1 - 0.9 * x**3 + np.where(x > 0.95, 20 * (x - 0.95), 0.0)
    test = RangeTestResult.build(lrs=lrs, losses=losses, stop_reason="diverged", band=False)
    probes = [
        Probe(0.141, 9, 1.0, False, 1),
        Probe(0.281, 9, 0.944, False, 1),
        Probe(0.562, 9, 0.917, False, 1),
        Probe(0.07, 18, 0.95, False, 2),
        Probe(0.1, 18, 0.97, False, 2),
        Probe(1.0, 18, float("nan"), True, 2),
    ]
    return TuneResult(
        peak=0.0537,
        total_steps=100,
        probes=probes,
        range_test=test,
        budget=0.5,
        spent=0.48,
        score_name="metric",
        maximize=True,
        reason="probes around the range test's suggestion",
    )


def test_tune_plot_probes_stand_apart_and_the_best_is_in_view(tmp_path: Path) -> None:
    from matplotlib.colors import to_rgba

    tune = _tune_result()
    ax = tune.plot(tmp_path / "tune.png")
    assert (tmp_path / "tune.png").stat().st_size > 0
    fig = ax.figure
    renderer = _drawn(fig)
    (other,) = [a for a in fig.axes if a is not ax]

    range_colors = {to_rgba(line.get_color()) for line in ax.get_lines()}
    probe_lines = [line for line in other.get_lines() if "probes" in str(line.get_label())]
    assert [str(line.get_label()) for line in probe_lines] == [
        "probes, 9 steps (best: 0.141, 1)",
        "probes, 18 steps (best: 0.1, 0.97)",
    ]
    probe_colors = [to_rgba(line.get_color()) for line in probe_lines]
    assert len(set(probe_colors)) == 2
    assert not set(probe_colors) & range_colors  # the loss curve is C0: no probe is

    legend = fig.legends[0]
    assert not ax.get_legend() and not other.get_legend()  # one legend, outside the axes
    legend_box = legend.get_window_extent(renderer)
    axes_box = other.get_window_extent(renderer)
    assert not legend_box.overlaps(axes_box)
    radius = 6.0 * fig.dpi / 72  # the probe markers' radius in pixels, with room to spare
    for probe in tune.probes:
        if probe.diverged:
            continue
        x, y = other.transData.transform((probe.peak, probe.score))
        assert axes_box.x0 + radius <= x <= axes_box.x1 - radius, probe
        assert axes_box.y0 + radius <= y <= axes_box.y1 - radius, probe
        assert not legend_box.contains(x, y), probe
    words = [t.get_text() for t in legend.get_texts()]
    assert "tuned peak 0.0537" in words and "diverged probe" in words
