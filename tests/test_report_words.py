"""What the summary, the findings and the HTML report say: one seed shows no spread, step
ratios read the right way round, every target is named, and the verdict reaches the report."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from histories import curve_history
from lrkit.experiments import RunDir, TrialRecord, write_report
from lrkit.experiments.report import read_findings, summary_rows, write_findings
from lrkit.experiments.summary import (
    Arm,
    fmt_values,
    group_arms,
    ranking_findings,
    speedup_findings,
    steps_ratio,
)


def _history(seed: int, metric: list[float], target: float = 0.9) -> dict[str, object]:
    return curve_history(seed, metric, target=target).to_dict()


def _run(folder: Path, arms: dict[str, list[list[float]]]) -> RunDir:
    rd = RunDir(folder, {"recipe": "demo", "title": "t", "claim": "c", "target": 0.9})
    for arm, curves in arms.items():
        for seed, metric in enumerate(curves):
            rd.append(
                TrialRecord(
                    f"{arm}/seed={seed}", {"arm": arm}, "ok", {"history": _history(seed, metric)}
                )
            )
    return rd


def _arms(folder: Path, arms: dict[str, list[list[float]]]) -> list[Arm]:
    return group_arms(_run(folder, arms).records())


def test_one_seed_shows_its_value_and_n1_not_a_zero_spread() -> None:
    assert fmt_values([0.93]) == "0.93 (n=1)"
    assert fmt_values([0.9, 0.92]) == "0.91 ± 0.014"
    assert fmt_values([]) == "–"
    assert fmt_values([float("nan"), 0.5]) == "0.5 (n=1)"


def test_step_ratios_read_the_right_way_round() -> None:
    assert steps_ratio(127.0, 100.0, "constant") == "×1.27 more steps than constant"
    assert steps_ratio(40.0, 100.0, "constant") == "×2.50 fewer steps than constant"
    assert steps_ratio(100.0, 100.0, "constant") == "as many steps as constant"


def test_speedup_findings_name_the_target_and_give_a_verdict(tmp_path: Path) -> None:
    slow = _arms(
        tmp_path / "slow",
        {"constant": [[0.5, 0.8, 0.9], [0.5, 0.8, 0.9]], "one-cycle": [[0.3, 0.5, 0.8, 0.95]] * 2},
    )
    lines = speedup_findings(slow, "constant", "accuracy", claimant="one-cycle")
    assert lines[0].startswith("target for the steps below: constant's final accuracy, 0.9 ")
    assert (
        "one-cycle: reached constant's final accuracy (0.9) after 40 steps (2/2 seeds)"
        in (lines[2])
    )
    assert "×1.33 more steps than constant" in lines[2]
    assert not any("fewer" in x for x in lines)
    assert lines[-1].startswith("verdict: the claim did not hold: one-cycle needed ×1.33 more")

    fast = _arms(
        tmp_path / "fast",
        {"constant": [[0.5, 0.8, 0.9]], "one-cycle": [[0.95, 0.96, 0.97]]},
    )
    lines = speedup_findings(fast, "constant", "accuracy")
    assert lines[0].endswith(
        "(one seed); the summary table counts steps to the task's target instead"
    )
    assert lines[-1] == (
        "verdict: the claim held: one-cycle reached constant's final accuracy (0.9) on every "
        "seed, ×3.00 fewer steps than constant"
    )


def test_ranking_findings_verdicts(tmp_path: Path) -> None:
    arms = _arms(
        tmp_path,
        {
            "triangular": [[0.9], [0.92]],
            "exp_range": [[0.91], [0.91]],
            "decrease-only": [[0.8], [0.82]],
        },
    )
    lines = ranking_findings(
        arms, "accuracy", claimant=("triangular", "exp_range"), rivals=("decrease-only",)
    )
    assert lines[0] == "1. triangular: final accuracy 0.91 ± 0.014"
    assert lines[-1] == (
        "verdict: the claim held: triangular, exp_range ended at or above all of decrease-only "
        "in final accuracy"
    )
    lines = ranking_findings(arms, "accuracy", claimant=("decrease-only",), rivals=("exp_range",))
    assert lines[-1].startswith("verdict: the claim did not hold: decrease-only ended below")
    assert not any(x.startswith("verdict") for x in ranking_findings(arms, "accuracy"))
    spread = ranking_findings(arms, "accuracy", differ=True)
    assert spread[-1].startswith("verdict: the claim held: the best and worst final accuracy")
    one = _arms(tmp_path / "one", {"a": [[0.9]], "b": [[0.8]]})
    assert ranking_findings(one, "accuracy")[0] == "1. a: final accuracy 0.9 (n=1)"
    assert ranking_findings(one, "accuracy", differ=True)[-1].startswith(
        "verdict: not judged: one seed"
    )


def test_report_with_one_seed_shows_no_zero_spread_and_names_the_target(tmp_path: Path) -> None:
    rd = _run(tmp_path, {"constant": [[0.5, 0.8, 0.9]], "one-cycle": [[0.95, 0.96, 0.97]]})
    text = html.unescape(write_report(rd.path).read_text())
    assert "± 0" not in text
    assert "0.97 (n=1)" in text
    assert "steps to accuracy ≥ 0.9 (task target)" in text
    assert "seconds to accuracy ≥ 0.9 (task target)" in text
    rows = summary_rows(group_arms(rd.records()))
    assert rows[0]["final"] == "0.9 (n=1)" and rows[1]["steps_to_target"] == "10 (n=1)"


def test_report_shows_the_findings_and_verdict_the_console_prints(tmp_path: Path) -> None:
    rd = _run(tmp_path, {"constant": [[0.5, 0.8, 0.9]], "one-cycle": [[0.95, 0.96, 0.97]]})
    findings = speedup_findings(group_arms(rd.records()), "constant", "accuracy")
    assert read_findings(rd.path) == []
    write_findings(rd.path, findings)
    assert read_findings(rd.path) == findings
    text = html.unescape(write_report(rd.path).read_text())
    assert "<h2>Findings</h2>" in text
    for line in findings:
        assert line in text
    assert "<li class='verdict'>verdict: the claim held: one-cycle" in text
    given = html.unescape(write_report(rd.path, tmp_path / "r.html", ["verdict: x"]).read_text())
    assert "verdict: x" in given and findings[-1] not in given


@pytest.mark.parametrize("n", [1, 3])
def test_no_plus_minus_zero_from_one_seed_in_the_console_rows(tmp_path: Path, n: int) -> None:
    rd = _run(tmp_path, {"a": [[0.5, 0.9]] * n})
    row = summary_rows(group_arms(rd.records()))[0]
    assert ("(n=1)" in row["final"]) == (n == 1)
    assert ("±" in row["final"]) == (n > 1)


@pytest.mark.usefixtures("one_thread")
def test_a_recipe_run_stores_its_findings_and_the_report_shows_the_verdict(
    tmp_path: Path,
) -> None:
    from lrkit.experiments import run_recipe

    run = run_recipe(
        "clr-vs-fixed", "wine-mlp", seeds=1, epochs=1, peak=0.1, workers=1, out=tmp_path
    )
    assert run.findings[-1].startswith("verdict: the claim ")
    assert read_findings(tmp_path) == run.findings
    text = html.unescape(write_report(tmp_path).read_text())
    for line in run.findings:
        assert line in text
    assert "Claim tested" in text
