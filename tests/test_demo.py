"""The main job: ``lrkit demo`` (tune_lr, the range test and the usual LR against a grid of
peaks), its findings and report, and the README's copy of what it printed."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from histories import curve_history
from lrkit import schedules as S
from lrkit.experiments import RunDir, TrialRecord, group_arms, write_report
from lrkit.experiments.demo import DEMO, DEMO_GRID
from lrkit.experiments.recipes import Context
from lrkit.experiments.trial import decode_lr, encode_lr
from lrkit.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent


def _update_demo() -> Any:
    spec = importlib.util.spec_from_file_location("update_demo", ROOT / "docs" / "update_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[tuple[Any, ...]]]:
    from lrkit.experiments import run_demo

    calls: list[tuple[Any, ...]] = []
    out = tmp_path_factory.mktemp("demo") / "run"
    run = run_demo(out=out, seeds=2, epochs=5, workers=1, tune_progress=lambda *a: calls.append(a))
    return run, calls


def _finals(run: Any) -> dict[str, list[float]]:
    from lrkit.train.history import History

    out: dict[str, list[float]] = {}
    for rec in RunDir(run.run_dir).records():
        hist = History.from_dict(rec.result["history"])
        out.setdefault(rec.config["arm"], []).append(float(hist.final_metric))
    return out


@pytest.mark.slow
def test_demo_trains_tune_lr_the_range_test_and_a_grid_of_peaks(
    demo_run: tuple[Any, list[tuple[Any, ...]]],
) -> None:
    run, calls = demo_run
    assert calls and calls[-1][0] > calls[0][0]  # the tuning reported its progress
    labels = [a.label for a in run.arms]
    tuned = re.fullmatch(r"tune_lr peak=([0-9.e-]+)", labels[0])
    suggested = re.fullmatch(r"range test peak=([0-9.e-]+)", labels[1])
    assert tuned and suggested
    assert labels[2:] == [
        "grid peak=0.01",
        "grid peak=0.0215",
        "grid peak=0.0464",
        "grid peak=0.1 (usual LR)",
        "grid peak=0.215",
        "grid peak=0.464",
        "grid peak=1",
    ]
    spe = get_task("mnist1d-cnn-paper").steps_per_epoch()
    for rec in run.records:  # every arm one cycle of the same length and evaluation cadence
        assert rec.config["steps"] == 5 * spe
        assert rec.config["eval_every"] == spe // 4
        lr = decode_lr(rec.config["lr"])
        assert isinstance(lr, S.Hyper) and lr.momentum is not None
    finals = _finals(run)
    means = {k: float(np.mean(v)) for k, v in finals.items()}
    grid = labels[2:]
    best = max(grid, key=lambda k: means[k])
    median = float(np.median([means[k] for k in grid]))
    top = means[best]
    line = next(x for x in run.findings if x.startswith("tune_lr: "))
    gap = top - means[labels[0]]
    assert f"{gap:.3g} below the grid's best" in line
    regret = gap / (top - median) if top > median else 0.0
    assert f"normalised regret {regret:.2f}" in line
    spent = next(x for x in run.findings if x.startswith("tune_lr (sgd"))
    share = float(re.search(r"([0-9.]+) of a run", spent).group(1))  # type: ignore[union-attr]
    assert line.endswith(f"cost {1 + share:.2f} runs")
    usual = next(x for x in run.findings if x.startswith("usual LR: "))
    assert usual.startswith("usual LR: peak 0.1, ") and usual.endswith("cost 1.00 runs")
    assert run.findings[-1].startswith("verdict: ")


@pytest.mark.slow
def test_demo_report_opens_with_the_grid_of_peaks(
    demo_run: tuple[Any, list[tuple[Any, ...]]],
) -> None:
    run, _ = demo_run
    text = write_report(run.run_dir).read_text()
    heads = re.findall(r"<h2>(.*?)</h2>", text)
    assert heads[:3] == [
        "Final accuracy against the peak",
        f"{run.arms[0].label} against the best grid arm",
        "LR range tests",
    ]
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", text)
    assert captions[0].startswith("Final accuracy of one cycle at each peak of the grid")


def _arms(tmp_path: Path, finals: dict[tuple[str, float], list[float]]) -> list[Any]:
    rd = RunDir(tmp_path, {"recipe": "demo", "metric_name": "accuracy"})
    for (label, peak), values in finals.items():
        for seed, final in enumerate(values):
            hist = curve_history(seed, [0.3, final], task="mnist1d-cnn-paper").to_dict()
            cfg = {"arm": label, "lr": encode_lr(S.one_cycle(peak, 40)), "steps": 40}
            rd.append(TrialRecord(f"{label}/seed={seed}", cfg, "ok", {"history": hist}))
    return group_arms(rd.records())


def _findings(tmp_path: Path, tuned: list[float], usual: list[float]) -> list[str]:
    grid = {
        ("grid peak=0.01", 0.01): [0.50, 0.52],
        ("grid peak=0.1 (usual LR)", 0.1): usual,
        ("grid peak=0.3", 0.3): [0.90, 0.92],
        ("grid peak=1", 1.0): [0.10, 0.12],
    }
    arms = _arms(
        tmp_path,
        {("tune_lr peak=0.2", 0.2): tuned, ("range test peak=0.05", 0.05): [0.7, 0.7], **grid},
    )
    ctx = Context(
        get_task("mnist1d-cnn-paper"), 2, 40, tmp_path, costs={"tune_lr": 0.5, "range test": 0.06}
    )
    return DEMO.findings(ctx, arms)


def test_demo_verdict_held_within_the_noise_of_the_grids_best(tmp_path: Path) -> None:
    lines = _findings(tmp_path, tuned=[0.90, 0.91], usual=[0.80, 0.82])
    # best 0.91 (peak 0.3), median of the grid (0.51, 0.81, 0.91, 0.11) = 0.66
    assert lines[0] == (
        "grid: one cycle at 4 peaks from 0.01 to 1, a third of a decade apart (4 runs); best "
        "peak 0.3, final accuracy 0.91 ± 0.014"
    )
    assert lines[1] == (
        "tune_lr: peak 0.2, final accuracy 0.905 ± 0.0071, 0.005 below the grid's best (2 SE "
        "0.022), normalised regret 0.02; cost 1.50 runs"
    )
    assert lines[2].startswith("range test: peak 0.05, final accuracy 0.7 ± 0, 0.21 below")
    assert lines[2].endswith("normalised regret 0.84; cost 1.06 runs")
    assert lines[3].startswith("usual LR: peak 0.1, final accuracy 0.81 ± 0.014, 0.1 below")
    assert lines[-1] == (
        "verdict: the claim held: one cycle at tune_lr's peak ends within the noise of the "
        "grid's best (0.005 below, 2 SE 0.022) at 1.50 runs of compute instead of 4"
    )


def test_demo_verdict_partly_when_level_with_the_usual_lr_but_below_the_best(
    tmp_path: Path,
) -> None:
    lines = _findings(tmp_path, tuned=[0.80, 0.81], usual=[0.80, 0.82])
    assert lines[-1].startswith(
        "verdict: the claim held partly: one cycle at tune_lr's peak ends level with the usual "
        "LR (-0.005, 2 SE 0.022) but 0.105 below the grid's best"
    )


def test_demo_verdict_not_held_below_the_usual_lr(tmp_path: Path) -> None:
    lines = _findings(tmp_path, tuned=[0.60, 0.61], usual=[0.80, 0.82])
    assert lines[-1] == (
        "verdict: the claim did not hold: one cycle at tune_lr's peak ends 0.205 below the "
        "usual LR (2 SE 0.022)"
    )


def test_demo_says_when_the_grids_best_sits_at_its_end(tmp_path: Path) -> None:
    grid = {("grid peak=0.1 (usual LR)", 0.1): [0.5, 0.5], ("grid peak=1", 1.0): [0.9, 0.9]}
    arms = _arms(
        tmp_path,
        {("tune_lr peak=1", 1.0): [0.9, 0.9], ("range test peak=1", 1.0): [0.9, 0.9], **grid},
    )
    ctx = Context(get_task("mnist1d-cnn-paper"), 2, 40, tmp_path)
    lines = DEMO.findings(ctx, arms)
    assert "the grid's best peak sits at its end: a wider grid may find a better one" in lines


def test_demo_grid_is_a_third_of_a_decade_apart_around_the_usual_lr(tmp_path: Path) -> None:
    assert len(DEMO_GRID) == 7
    assert np.allclose(np.diff(np.log10(DEMO_GRID)), 1 / 3)
    assert math.isclose(DEMO_GRID[3], 1.0)
    t = get_task("friedman-mlp")  # AdamW at 1e-3: the grid is around the task's own usual LR
    ctx = Context(t, 1, 100, tmp_path, 0.01, t.steps_per_epoch(), evals_per_epoch=4)
    labels = [tr.config["arm"] for tr in DEMO.build(ctx)]
    assert labels[0] == "tune_lr peak=0.01" and labels[1] == "range test peak=0.01"
    assert labels[2:] == [
        "grid peak=0.0001",
        "grid peak=0.000215",
        "grid peak=0.000464",
        "grid peak=0.001 (usual LR)",
        "grid peak=0.00215",
        "grid peak=0.00464",
        "grid peak=0.01",
    ]


# -- the README's copy of what `make demo` printed ------------------------------------------------


def test_readme_demo_section_is_what_make_demo_printed() -> None:
    update = _update_demo()
    found = json.loads((ROOT / "docs" / "demo.json").read_text(encoding="utf-8"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert update.readme_section(readme) == update.render(found)
    assert found["findings"][-1].startswith("verdict: ")


@pytest.mark.slow
def test_demo_copy_holds_the_peaks_the_finder_gives_today() -> None:
    """A change to the finder that moves the demo's peaks fails here until ``make demo`` has
    refreshed the README's figures."""
    from lrkit.finder.task import find_lr, tune_task

    found = json.loads((ROOT / "docs" / "demo.json").read_text(encoding="utf-8"))
    task = get_task(found["task"])
    tuned = tune_task(
        task, task.optimizer, budget=found["tune_lr"]["budget"],
        total_steps=found["tune_lr"]["total_steps"],
    )  # fmt: skip
    assert tuned.peak == pytest.approx(found["tune_lr"]["peak"], rel=1e-9)
    suggested = find_lr(task, task.optimizer).suggestion
    assert suggested == pytest.approx(found["range_test"]["suggestion"], rel=1e-9)


def test_range_test_notes_name_the_schedule_each_base_serves(tmp_path: Path) -> None:
    t = get_task("wine-mlp")
    ctx = Context(t, 1, 100, tmp_path, steps_per_epoch=t.steps_per_epoch())
    one = ctx.bounds(t.optimizer, "one_cycle")
    ctx.bounds(t.optimizer, "one_cycle")  # the same range test and schedule: no second note
    cyc = ctx.bounds(t.optimizer, "cyclic")
    assert one[1] == cyc[1]  # one range test, one suggested peak
    assert len(ctx.notes) == 2
    assert ctx.notes[0].endswith(f"for one cycle the base is peak/25 = {one[0]:.3g}")
    assert ctx.notes[1].endswith(f"for cyclical schedules the base is peak/4 = {cyc[0]:.3g}")
    assert ctx.costs["range test"] > 0


def test_grid_figure_marks_each_choice_at_its_peak_and_zooms_on_the_top(tmp_path: Path) -> None:
    from lrkit.experiments.grid_figure import peak_grid_figure

    grid = {("grid peak=0.1 (usual LR)", 0.1): [0.5, 0.6], ("grid peak=1", 1.0): [0.9, 0.92]}
    tuned = {("tune_lr peak=0.3", 0.3): [0.8, 0.84]}
    fig = peak_grid_figure(_arms(tmp_path, {**tuned, **grid}), "grid", "accuracy")
    assert fig is not None
    whole, top = fig.axes[:2]
    lines = {ln.get_label(): ln for ln in whole.get_lines()}
    assert list(lines["grid: one run per peak and seed"].get_xdata()) == [0.1, 1.0]
    assert np.allclose(lines["grid: one run per peak and seed"].get_ydata(), [0.55, 0.91])
    bars = {c.get_label(): c for c in whole.containers}
    assert np.allclose(bars["tune_lr: 0.3"].lines[0].get_xydata(), [[0.3, 0.82]])
    assert np.allclose(lines["usual LR: 0.1"].get_xydata(), [[0.1, 0.55]])
    assert np.allclose(lines["best of the grid: 1"].get_xydata(), [[1.0, 0.91]])
    low, high = top.get_ylim()  # the zoom spans the marked choice and the best, not the worst
    assert 0.6 < low < 0.8 and 0.92 < high < 0.95
