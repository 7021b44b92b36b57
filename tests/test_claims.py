"""The claims table of ``benchmarks/claims.py``: its verdict rules on constructed numbers, the
rows it builds from constructed arms, the table and the sections it writes, and one small run of
a recipe through it."""

from __future__ import annotations

import importlib
import json
import math
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from histories import curve_history
from lrkit.experiments import TrialRecord
from lrkit.experiments.recipes import RecipeRun
from lrkit.experiments.summary import Arm
from lrkit.tasks import get_task
from lrkit.train.history import History

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def claims() -> ModuleType:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module("claims")


def _history(seed: int, metric: list[float], seconds: float = 1.0) -> History:
    return curve_history(seed, metric, seconds=seconds)


def _arm(label: str, curves: list[list[float]], seconds: float = 1.0, lr: float = 0.1) -> Arm:
    records = tuple(
        TrialRecord(
            f"{label}/seed={s}",
            {"arm": label, "seed": s, "lr": lr},
            "ok",
            {"history": _history(s, c, seconds).to_dict()},
        )
        for s, c in enumerate(curves)
    )
    return Arm(label, records)


def _run(arms: list[Arm]) -> RecipeRun:
    records = [r for a in arms for r in a.records]
    return RecipeRun("r", Path("."), records, arms, [])


def _finals(*values: float) -> list[list[float]]:
    """One seed per value, each ending at it."""
    return [[0.1, v] for v in values]


# -- rules --------------------------------------------------------------------------------------
def test_gap_is_the_difference_of_means_and_its_standard_error(claims: ModuleType) -> None:
    d, se = claims.gap([0.9, 0.92, 0.94], [0.8, 0.8, 0.8])
    assert d == pytest.approx(0.12)
    assert se == pytest.approx(math.sqrt(0.02**2 / 3))
    d1, se1 = claims.gap([0.9], [0.8, 0.82])
    assert d1 == pytest.approx(0.09) and math.isnan(se1)
    assert all(math.isnan(x) for x in claims.gap([], [0.5]))


def test_rule_better_needs_more_than_two_standard_errors_to_hold(claims: ModuleType) -> None:
    assert claims.rule_better(0.03, 0.01) == "holds"
    assert claims.rule_better(0.02, 0.01) == "partly"  # exactly 2 SE is not beyond it
    assert claims.rule_better(0.01, math.nan) == "partly"  # one seed: no noise to beat
    assert claims.rule_better(0.0, 0.001) == "not here"
    assert claims.rule_better(-0.05, 0.01) == "not here"
    assert claims.rule_better(math.nan, 0.01) == "not here"


def test_rule_at_least_accepts_a_shortfall_within_the_noise_as_partly(claims: ModuleType) -> None:
    assert claims.rule_at_least(0.0, 0.01) == "holds"
    assert claims.rule_at_least(-0.015, 0.01) == "partly"
    assert claims.rule_at_least(-0.025, 0.01) == "not here"
    assert claims.rule_at_least(-0.001, math.nan) == "not here"


def test_rule_competitive(claims: ModuleType) -> None:
    rivals = {"a": [0.90, 0.91, 0.92], "b": [0.80, 0.81, 0.82], "c": [0.70, 0.70, 0.71]}
    assert claims.rule_competitive([0.905, 0.91, 0.915], rivals) == "holds"  # within the noise
    assert claims.rule_competitive([0.85, 0.86, 0.85], rivals) == "partly"  # above b and c
    assert claims.rule_competitive([0.60, 0.61, 0.60], rivals) == "not here"
    assert claims.rule_competitive([], rivals) == "not here"


def test_rule_speedup(claims: ModuleType) -> None:
    assert claims.rule_speedup(3.0, 3, 3, 3.0) == "holds"
    assert claims.rule_speedup(2.9, 3, 3, 3.0) == "partly"
    assert claims.rule_speedup(5.0, 2, 3, 3.0) == "partly"  # a seed never got there
    assert claims.rule_speedup(0.9, 3, 3, 3.0) == "not here"
    assert claims.rule_speedup(math.nan, 0, 3, 3.0) == "not here"


def test_rules_error_and_time_spread_and_all(claims: ModuleType) -> None:
    assert claims.rule_error_and_time(True, True) == "holds"
    assert claims.rule_error_and_time(True, False) == "partly"
    assert claims.rule_error_and_time(False, True) == "partly"
    assert claims.rule_error_and_time(False, False) == "not here"
    assert claims.rule_spread(0.05, 0.10) == "holds"
    assert claims.rule_spread(0.06, 0.10) == "partly"
    assert claims.rule_spread(0.10, 0.10) == "not here"
    assert claims.rule_spread(math.nan, 0.10) == "not here"
    assert claims.rule_all(["holds", "holds"]) == "holds"
    assert claims.rule_all(["holds", "not here"]) == "partly"
    assert claims.rule_all(["partly", "partly"]) == "partly"
    assert claims.rule_all(["not here", "not here"]) == "not here"
    assert claims.rule_all([]) == "not here"


# -- rows from arms -----------------------------------------------------------------------------
def test_speedup_counts_a_baseline_seed_that_never_reaches_as_its_last_step(
    claims: ModuleType,
) -> None:
    base = _arm("fixed", [[0.5, 0.7, 0.8, 0.9], [0.5, 0.6, 0.7, 0.8]])  # target 0.85
    fast = _arm("triangular", [[0.86, 0.9, 0.9, 0.9], [0.7, 0.9, 0.9, 0.9]])
    sp = claims.speedup(base, fast)
    assert sp.target == pytest.approx(0.85)
    assert sp.base_steps == [40.0, 40.0]
    assert sp.steps == [10.0, 20.0]
    assert sp.ratio == pytest.approx(40 / 15)
    row = claims.claim_clr(_run([base, fast]), "task-x")
    assert row.verdict == "holds" and "2.67× ≥ 2×" in row.reason
    assert "task-x, 40 steps" in row.measured and "85.0%" in row.measured
    partial = _arm("triangular", [[0.5, 0.6, 0.7, 0.8], [0.5, 0.6, 0.86, 0.86]])
    row = claims.claim_clr(_run([base, partial]), "task-x")
    assert row.verdict == "partly" and row.reason == "faster, but reaches it on 1 of 2 seeds"
    assert "after 30 steps (1/2 seeds) vs 40 for the fixed LR: 1.33× fewer" in row.measured
    late = _arm("triangular", [[0.5, 0.6, 0.7, 0.86], [0.5, 0.6, 0.7, 0.86]])
    row = claims.claim_clr(_run([base, late]), "task-x")
    assert row.verdict == "not here" and row.reason == "not faster (1.00×)"


def test_decrease_only_and_exp_range_rows(claims: ModuleType) -> None:
    arms = [
        _arm("fixed", _finals(0.80, 0.81, 0.82)),
        _arm("triangular2", _finals(0.90, 0.91, 0.92)),
        _arm("exp_range", _finals(0.80, 0.80, 0.81)),
        _arm("decrease-only", _finals(0.85, 0.86, 0.87)),
    ]
    dec = claims.claim_decrease_only(_run(arms), "t")
    assert dec.verdict == "holds"
    assert "triangular2 91.0 ± 1.0%" in dec.measured and "decrease-only 86.0 ± 1.0%" in dec.measured
    assert "+5.0 points" in dec.measured
    exp = claims.claim_exp_range(_run(arms), "t")
    assert exp.verdict == "partly"  # 0.67 points below, 2 SE = 1.5 points
    assert exp.reason == "below the fixed LR, within the noise"


def test_optimizers_weight_decay_and_keras_rows(claims: ModuleType) -> None:
    rivals = {"adagrad": 0.70, "adadelta": 0.75, "rmsprop": 0.80, "adam": 0.92, "adamax": 0.85}
    arms = [_arm(k, _finals(v, v + 0.01, v + 0.02)) for k, v in rivals.items()]
    arms.append(_arm("sgd+clr", _finals(0.86, 0.87, 0.88)))
    opt = claims.claim_optimizers(_run(arms), "t")
    assert opt.verdict == "partly"
    assert opt.reason == "at or above 4 of 5, below adam beyond the noise"
    wd = [
        _arm("wd=0.001", _finals(0.80, 0.81, 0.82)),
        _arm("wd=0.0001", _finals(0.84, 0.85, 0.86)),
        _arm("wd=1e-05", _finals(0.83, 0.84, 0.85)),
        _arm("wd=0", _finals(0.82, 0.83, 0.84)),
    ]
    row = claims.claim_weight_decay(_run(wd), "t")
    assert row.verdict == "holds" and "wd=0.0001" in row.reason
    keras = [
        _arm("adam lr=1e-3, batch 128", _finals(0.90, 0.90), seconds=4.0),
        _arm("adam + triangular CLR, batch 1280", _finals(0.88, 0.88), seconds=1.0),
    ]
    row = claims.claim_keras(_run(keras), "t")
    assert row.verdict == "partly" and row.reason == "less time, but higher error"
    assert "error 10.0 ± 0.0%, 4.00 ± 0.00 s" in row.measured


def test_transfer_row_compares_the_spreads(claims: ModuleType) -> None:
    fine = {"sgd+clr": 0.90, "adam": 0.89, "adagrad": 0.88}
    scratch = {"sgd+clr": 0.90, "adam": 0.85, "adagrad": 0.70}
    arms = [_arm(f"{k} (pretrained)", _finals(v, v)) for k, v in fine.items()]
    arms += [_arm(f"{k} (from scratch)", _finals(v, v)) for k, v in scratch.items()]
    row = claims.claim_transfer(_run(arms), "t")
    assert row.verdict == "holds"
    assert "2.0 points pretrained vs 20.0 from scratch" in row.measured
    assert row.reason == "spread shrinks to 0.10 of scratch"


# -- table and sections -------------------------------------------------------------------------
def test_table_has_one_row_per_claim_and_escapes_pipes(claims: ModuleType) -> None:
    rows = [
        claims.Claim("a | b", "src", "measured", "holds", "why"),
        claims.Claim("c", "src2", "m2", "not here", "because"),
    ]
    text = claims.table(rows)
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[2] == "| a \\| b | src | measured | **holds**: why |"
    assert lines[3].endswith("| **not here**: because |")


def test_sections_state_the_rules_the_machine_and_the_cut(claims: ModuleType) -> None:
    rows = [claims.Claim("c", "s", "m", "partly", "r")]
    timing = claims.Timing("clr-vs-fixed", "mnist1d-cnn-paper", 12.0, 30.0)
    bench, readme = claims.sections(rows, [timing], "the super-convergence recipe", 3, 5.0)
    assert bench.startswith("## The papers' claims, measured")
    assert "exceeds 2 SE" in bench and "at least 2×" in bench and "3×" in bench
    assert "cut to 5 epochs" in bench and "at 3 seeds" in bench
    assert "clr-vs-fixed on mnist1d-cnn-paper 12 s (30 s of trials); 12 s in all" in bench
    assert "Machine: " in bench and "Machine: " in readme
    assert claims.table(rows) in bench and claims.table(rows) in readme
    assert "##" not in readme


def test_write_section_replaces_between_markers_and_refuses_a_file_without_them(
    claims: ModuleType, tmp_path: Path
) -> None:
    report = importlib.import_module("_report")
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- claims:start -->\nold\n<!-- claims:end -->\n\n## after\n")
    report.write_section("claims", "new table\n", target=readme)
    assert readme.read_text() == (
        "# x\n\n<!-- claims:start -->\nnew table\n<!-- claims:end -->\n\n## after\n"
    )
    bare = tmp_path / "OTHER.md"
    bare.write_text("# nothing here\n")
    with pytest.raises(ValueError, match="<!-- claims:start -->"):
        report.write_section("claims", "t", target=bare)
    assert bare.read_text() == "# nothing here\n"
    with pytest.raises(ValueError, match="does not exist"):
        report.write_section("claims", "t", target=tmp_path / "missing.md")


def test_time_to_accuracy_results_are_used_only_when_complete(
    claims: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tta = importlib.import_module("time_to_accuracy")
    monkeypatch.setattr(tta, "CACHE", tmp_path / "tta")
    assert claims.tta_done("mnist1d-cnn-paper", 3) is None  # no cache at all
    (tmp_path / "tta").mkdir()
    (tmp_path / "tta" / "config.json").write_text(json.dumps({"seeds": 3}))
    assert claims.tta_done("mnist1d-cnn-paper", 3) is None  # no trials
    (tmp_path / "tta" / "config.json").write_text(json.dumps({"seeds": 1}))
    assert claims.tta_done("mnist1d-cnn-paper", 3) is None  # fewer seeds


def test_a_baseline_grid_grows_past_the_end_where_its_best_sits(
    claims: ModuleType, tmp_path: Path
) -> None:
    tta = importlib.import_module("time_to_accuracy")
    task = "digits-cnn"
    t = get_task(task)
    every = tta.default_steps(t)  # evaluations at each baseline budget: 1x, 2x, 3x, 4x

    def add(done: dict[str, TrialRecord], k: int, acc: float) -> None:
        lr = tta.lr_at(t, "adam", k)
        for s in range(2):
            h = curve_history(s, [acc] * 4, task=task, every=every).to_dict()
            key = tta.base_key(task, "adam", lr, s)
            done[key] = TrialRecord(key, {}, "ok", {"history": h})

    def ks(done: dict[str, TrialRecord]) -> list[int]:
        grid = tta.base_grid(task, "adam", 2, done)
        return [round(3 * math.log10(lr / t.lr_for("adam"))) for lr in grid]

    done: dict[str, TrialRecord] = {}
    assert ks(done) == list(tta.GRID)  # nothing run yet
    for k in tta.GRID:
        add(done, k, 0.5 + 0.01 * k)  # best at the top end
    assert ks(done) == [*tta.GRID, tta.GRID[-1] + 1]  # the next point to run
    add(done, tta.GRID[-1] + 1, 0.4)
    assert ks(done) == [*tta.GRID, tta.GRID[-1] + 1]  # the best is inside now: no more
    for k in range(tta.GRID[-1] + 1, tta.GRID[-1] + tta.EXTEND + 3):
        add(done, k, 0.6 + 0.01 * k)  # better and better upwards: growth stops at EXTEND
    assert ks(done) == list(range(tta.GRID[0], tta.GRID[-1] + tta.EXTEND + 1))


# -- end to end ---------------------------------------------------------------------------------
@pytest.mark.usefixtures("one_thread")
def test_a_recipe_runs_through_the_table_and_resumes_from_its_cache(
    claims: ModuleType, tmp_path: Path
) -> None:
    pytest.importorskip("mnist1d")
    t0 = time.perf_counter()
    run, timing = claims.measure(
        "clr-vs-fixed", "mnist1d-cnn-paper", seeds=1, root=tmp_path, epochs=2, workers=1
    )
    assert (tmp_path / "clr-vs-fixed-mnist1d-cnn-paper" / "trials.jsonl").exists()
    assert timing.trial_seconds > 0 and timing.wall >= 0
    row = claims.claim_clr(run, "mnist1d-cnn-paper")
    assert row.verdict in ("holds", "partly", "not here")
    assert row.measured.startswith("mnist1d-cnn-paper, 80 steps: fixed LR 0.1 ends at ")
    assert "(n=1)" in row.measured
    assert claims.table([row]).count("\n") == 2
    first = time.perf_counter() - t0
    walls = json.loads((tmp_path / "timings.json").read_text())
    assert walls == {"clr-vs-fixed-mnist1d-cnn-paper": timing.wall}
    again, cached = claims.measure(
        "clr-vs-fixed", "mnist1d-cnn-paper", seeds=1, root=tmp_path, epochs=2, workers=1
    )
    assert [r.to_dict() for r in again.records] == [r.to_dict() for r in run.records]
    assert cached == timing  # nothing trained again: the first run's wall time is kept
    assert first < 60
