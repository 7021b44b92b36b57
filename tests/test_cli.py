"""The command line, run as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lrkit.experiments import RunDir

pytestmark = pytest.mark.slow


def lrkit(
    *args: str,
    cwd: Path,
    check: bool = True,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m lrkit ARGS`` in ``cwd``, 200 columns wide, with ``env`` added to the
    environment; ``check`` fails the test on a non-zero exit."""
    proc = subprocess.run(
        [sys.executable, "-m", "lrkit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"lrkit {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_schedule_command_draws_a_png_and_prints_values(tmp_path: Path) -> None:
    out = lrkit(
        "schedule", "one-cycle", "--peak", "0.8", "--steps", "1000", "--out", "oc.png", cwd=tmp_path
    )
    png = (tmp_path / "oc.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert "0.032" in out.stdout and "0.8" in out.stdout and "3.2e-06" in out.stdout
    bad = lrkit(
        "schedule", "one-cycle", "--pct-start", "1.5", "--out", "x.png", cwd=tmp_path, check=False
    )
    assert bad.returncode == 2 and "pct_start must be in (0, 1)" in bad.stderr
    assert not (tmp_path / "x.png").exists()


def test_schedule_command_draws_a_saved_spec(tmp_path: Path) -> None:
    from lrkit import schedules as S

    spec = S.warmup(S.cosine(0.1, 900), 100).to_dict()
    (tmp_path / "s.json").write_text(json.dumps(spec))
    out = lrkit(
        "schedule",
        "constant",
        "--spec",
        "s.json",
        "--steps",
        "1000",
        "--out",
        "w.png",
        cwd=tmp_path,
    )
    assert "warmup(cosine(start=0.1, steps=900), steps=100)" in out.stdout
    assert (tmp_path / "w.png").exists()


def test_find_prints_suggestions_and_writes_plot_and_json(tmp_path: Path) -> None:
    out = lrkit("find", "--task", "digits-cnn", "--steps", "60", "--out", "rt", cwd=tmp_path)
    for rule in ("lrkit (default)", "minimum", "steepest", "valley"):
        assert rule in out.stdout
    data = json.loads((tmp_path / "rt" / "range_test.json").read_text())
    assert 10 <= len(data["lrs"]) <= 60 and data["lrs"][0] == pytest.approx(1e-7)
    assert (tmp_path / "rt" / "range_test.png").read_bytes().startswith(b"\x89PNG")


def test_test_runs_smiths_weight_decay_and_momentum_tests(tmp_path: Path) -> None:
    out = lrkit(
        "test",
        "weight-decay",
        "--task",
        "mnist1d-mlp",
        "--values",
        "1e-3,0",
        "--steps",
        "40",
        "--out",
        "wd",
        cwd=tmp_path,
    )
    data = json.loads((tmp_path / "wd" / "weight_decay_test.json").read_text())
    assert data["name"] == "weight_decay" and data["values"] == [1e-3, 0.0]
    assert len(data["results"]) == 2 and data["best"] in (1e-3, 0.0)
    assert "recommended weight decay" in out.stdout and "(best)" in out.stdout
    assert (tmp_path / "wd" / "weight_decay_test.png").read_bytes().startswith(b"\x89PNG")
    assert "deprecated" not in out.stderr
    # the momentum test on Adam tests beta1, with Smith's four default values
    out = lrkit(
        "test", "momentum", "--task", "wine-mlp", "--steps", "30", "--out", "m", cwd=tmp_path
    )
    data = json.loads((tmp_path / "m" / "momentum_test.json").read_text())
    assert data["values"] == [0.99, 0.97, 0.95, 0.9] and len(data["results"]) == 4
    assert f"recommended momentum: {data['best']:g} (" in out.stdout
    assert (tmp_path / "m" / "momentum_test.png").read_bytes().startswith(b"\x89PNG")
    bad = lrkit("test", "dropout", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "No such command 'dropout'" in bad.stderr
    bad = lrkit("test", "momentum", "--values", "0.9,x", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "separated by commas" in bad.stderr
    bad = lrkit("test", "momentum", "--values", "1.5", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "momentums must be" in bad.stderr
    bad = lrkit("test", "weight-decay", "--budget", "0.5", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "No such option: --budget" in bad.stderr


def test_unknown_names_list_the_known_ones(tmp_path: Path) -> None:
    bad = lrkit("find", "--task", "nope", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "mnist1d-cnn" in bad.stderr and "digits-cnn" in bad.stderr
    bad = lrkit("run", "nope", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "clr-vs-fixed" in bad.stderr
    bad = lrkit("find", "--task", "no_such_module:make", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "no_such_module" in bad.stderr
    listing = lrkit("run", "--list", cwd=tmp_path)
    assert "super-convergence" in listing.stdout and "Smith" in listing.stdout
    tasks = lrkit("tasks", cwd=tmp_path)
    assert "friedman-mlp" in tasks.stdout and "regression" in tasks.stdout


RUN = [
    "run",
    "policies",
    "--task",
    "digits-cnn",
    "--seeds",
    "2",
    "--epochs",
    "3",
    "--peak",
    "0.2",
    "--out",
    "pol",
]


def test_killed_sweep_resumes_without_redoing_or_losing_trials(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lrkit", *RUN, "--workers", "1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    trials = tmp_path / "pol" / "trials.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if trials.exists() and len(trials.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {r.key: r.seconds for r in RunDir(tmp_path / "pol").records()}
    assert 2 <= len(before) < 10
    out = lrkit(*RUN, cwd=tmp_path)
    after = list(RunDir(tmp_path / "pol").records())
    assert len(after) == 10 and len({r.key for r in after}) == 10  # 5 arms x 2 seeds, no repeats
    assert all(r.status == "ok" for r in after)
    assert {k: v for k, v in ((r.key, r.seconds) for r in after) if k in before} == before
    lines = trials.read_text().splitlines()
    assert len(lines) == 10, "finished trials were run again"
    assert "decrease-only" in out.stdout and "report.html" in out.stdout
    html = (tmp_path / "pol" / "report.html").read_text()
    assert "triangular2" in html and "data:image/png;base64," in html
    # the same folder with another configuration is refused, not mixed
    other = lrkit(*RUN[:-2], "--out", "pol", "--epochs", "4", cwd=tmp_path, check=False)
    assert other.returncode == 2 and "another configuration (differs in: steps)" in other.stderr
    rep = lrkit("report", "pol", "--out", "again.html", cwd=tmp_path)
    assert (tmp_path / "again.html").exists() and "again.html" in rep.stdout


def test_compare_runs_a_grid(tmp_path: Path) -> None:
    out = lrkit(
        "compare",
        "--task",
        "digits-cnn",
        "--optimizers",
        "sgd,adam",
        "--schedules",
        "constant,one-cycle",
        "--seeds",
        "1",
        "--epochs",
        "2",
        "--peak",
        "0.05",
        "--out",
        "cmp",
        cwd=tmp_path,
    )
    recs = {r.key for r in RunDir(tmp_path / "cmp").records()}
    assert recs == {
        "sgd constant/seed=0",
        "sgd one-cycle/seed=0",
        "adam constant/seed=0",
        "adam one-cycle/seed=0",
    }
    assert "adam one-cycle" in out.stdout


def test_tune_numbers_rounds_as_its_json_does(tmp_path: Path) -> None:
    # wine-mlp's own run (100 steps) is too short for a range test of 100 steps and probes; at
    # budget 0.5, 560 steps buy probes of (280 - 100 - 6 / 3) // 5 = 35 = 560 / 16 updates
    tune = ["tune", "--task", "wine-mlp", "--budget", "0.5", "--total-steps", "560"]
    out = lrkit(*tune, "--out", "tune", cwd=tmp_path)
    saved = json.loads((tmp_path / "tune" / "tune.json").read_text())
    rows = [
        [cell.strip() for cell in line.strip("│ ").split("│")]
        for line in out.stdout.splitlines()
        if line.startswith("│")
    ]
    assert [row[1] for row in rows] == [str(p["steps"]) for p in saved["probes"]]
    assert [int(row[3]) for row in rows] == [p["round"] for p in saved["probes"]]
    assert saved["probes"] and min(p["round"] for p in saved["probes"]) == 1
    assert f"tuned one-cycle peak for {saved['total_steps']} steps" in out.stdout
    assert 0 < saved["spent"] <= 0.5 and (tmp_path / "tune" / "tune.png").stat().st_size > 0
    assert "wrote tune/tune.png and tune/tune.json" in out.stdout
    assert "deprecated" not in out.stderr
    bad = lrkit("tune", "--task", "wine-mlp", "--test", "momentum", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "No such option: --test" in bad.stderr


def test_help_shows_the_extras_to_install(tmp_path: Path) -> None:
    for command in ("run", "compare", "demo", "tune"):
        out = lrkit(command, "--help", cwd=tmp_path, env={"COLUMNS": "400"}).stdout
        assert 'ray (Ray tasks on a cluster; pip install "lrkit[ray]")' in out, (command, out)


def test_help_lists_the_verbs_and_hides_the_old_find_options(tmp_path: Path) -> None:
    top = lrkit("--help", cwd=tmp_path).stdout
    commands = top.split("Commands", 1)[1]
    for verb, summary in (
        ("find", "Run the LR range test"),
        ("tune", "Search for the peak of a one-cycle run"),
        ("test", "Smith's tests of weight decay and momentum"),
    ):
        assert re.search(rf"^│ {verb} +{re.escape(summary)}", commands, re.M), (verb, top)
    tests = lrkit("test", "--help", cwd=tmp_path).stdout
    assert re.search(r"^│ weight-decay +Smith's weight-decay test", tests, re.M), tests
    assert re.search(r"^│ momentum +Smith's momentum test", tests, re.M), tests
    find = lrkit("find", "--help", cwd=tmp_path).stdout
    assert "`lrkit tune`" in find and "`lrkit test weight-decay`" in find
    for hidden in ("--test", "--values", "--budget", "--total-steps", "--backend", "--address"):
        assert hidden not in find, hidden
    tune = lrkit("tune", "--help", cwd=tmp_path).stdout
    for option in ("--budget", "--total-steps", "--backend", "--address", "--out"):
        assert option in tune, option
    assert "--steps " not in tune and "--values" not in tune
    wd = lrkit("test", "weight-decay", "--help", cwd=tmp_path).stdout
    assert "--values" in wd and "1e-3,1e-4,1e-5,0" in wd and "--weight-decay" not in wd
    momentum = lrkit("test", "momentum", "--help", cwd=tmp_path).stdout
    assert "0.99,0.97,0.95,0.9" in momentum and "--weight-decay" in momentum


OLD_SPELLINGS = [
    (
        ["find", "--test", "weight-decay", "--values", "1e-3,0", "--steps", "30"],
        ["test", "weight-decay", "--values", "1e-3,0", "--steps", "30"],
        "weight_decay_test",
        "`lrkit find --test weight-decay` is deprecated; use `lrkit test weight-decay`",
    ),
    (
        ["find", "--test", "momentum", "--values", "0.95,0.9", "--steps", "30"],
        ["test", "momentum", "--values", "0.95,0.9", "--steps", "30"],
        "momentum_test",
        "`lrkit find --test momentum` is deprecated; use `lrkit test momentum`",
    ),
    (
        ["find", "--budget", "0.5", "--total-steps", "400"],
        ["tune", "--budget", "0.5", "--total-steps", "400"],
        "tune",
        "`lrkit find --budget` is deprecated; use `lrkit tune`",
    ),
    (
        ["find", "--test", "lr", "--steps", "30"],
        ["find", "--steps", "30"],
        "range_test",
        "`lrkit find --test lr` is deprecated; use `lrkit find`",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "stem", "warning"),
    OLD_SPELLINGS,
    ids=["find --test weight-decay", "find --test momentum", "find --budget", "find --test lr"],
)
def test_an_old_find_spelling_warns_and_does_what_the_new_command_does(
    tmp_path: Path, old: list[str], new: list[str], stem: str, warning: str
) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    task = ["--task", "wine-mlp", "--out", "o"]
    before = lrkit(*old, *task, cwd=tmp_path / "old")
    after = lrkit(*new, *task, cwd=tmp_path / "new")
    assert before.stderr.splitlines()[0] == f"warning: {warning}"
    assert "deprecated" not in after.stderr
    assert before.stdout == after.stdout and f"wrote o/{stem}.png and o/{stem}.json" in (
        after.stdout
    )
    assert sorted(p.name for p in (tmp_path / "old" / "o").iterdir()) == [
        f"{stem}.json",
        f"{stem}.png",
    ]
    saved = [json.loads((tmp_path / d / "o" / f"{stem}.json").read_text()) for d in ("old", "new")]
    assert saved[0] == saved[1]


def test_the_old_find_options_keep_their_errors(tmp_path: Path) -> None:
    cases = [
        (
            ["--test", "dropout"],
            "`lrkit find --test` is deprecated; use `lrkit test weight-decay` or `lrkit test "
            "momentum`",
            "--test must be lr, weight-decay or momentum, not 'dropout'",
        ),
        (
            ["--values", "1,2"],
            "`lrkit find --values` is deprecated; use `lrkit test weight-decay --values` or "
            "`lrkit test momentum --values`",
            "--values applies to --test weight-decay or momentum only",
        ),
        (
            ["--test", "momentum", "--budget", "0.5"],
            "`lrkit find --budget` is deprecated; use `lrkit tune`",
            "--budget applies to --test lr only",
        ),
        (
            ["--total-steps", "50"],
            "`lrkit find --total-steps` is deprecated; use `lrkit tune --total-steps`",
            "--total-steps applies with --budget",
        ),
        (
            ["--backend", "ray"],
            "`lrkit find --backend` is deprecated; use `lrkit tune --backend`",
            "--backend and --address apply with --budget",
        ),
        (
            ["--address", "head:6379"],
            "`lrkit find --address` is deprecated; use `lrkit tune --address`",
            "--backend and --address apply with --budget",
        ),
    ]
    for args, warning, error in cases:
        bad = lrkit("find", "--task", "wine-mlp", *args, "--out", "o", cwd=tmp_path, check=False)
        assert bad.returncode == 2, (args, bad.stderr)
        lines = bad.stderr.splitlines()
        assert len(lines) == 2 and lines[0] == f"warning: {warning}", (args, bad.stderr)
        assert lines[1].startswith(f"error: {error}"), (args, bad.stderr)
        assert bad.stdout == "" and not (tmp_path / "o").exists(), args


def test_reasons_print_as_written_even_with_brackets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    import lrkit.finder.task as trial
    from lrkit.cli import app
    from lrkit.finder import HyperTestResult, Probe, RangeTestResult, TuneResult
    from lrkit.finder.suggest import Suggestion

    lrs = np.geomspace(1e-7, 10.0, 60)
    curve = RangeTestResult.build(lrs=lrs, losses=np.full(60, 2.0), stop_reason="completed")
    curve.suggestion, curve.suggestion_reason = None, "no descent [lr, loss] in this [/] sweep"

    def suggest(method: str, **kwargs: object) -> Suggestion:
        return Suggestion(None, None, None, method, f"{method} saw [bold]nothing[/bold]")

    monkeypatch.setattr(curve, "suggest", suggest)
    monkeypatch.setattr(trial, "find_lr", lambda *a, **k: curve)
    hyper = HyperTestResult("momentum", [0.9], [curve], None, "no value [of 1] stands out")
    monkeypatch.setattr(trial, "hyper_test_task", lambda *a, **k: hyper)
    probe = Probe(0.1, 10, 0.5, False, 1)
    tuned = TuneResult(0.1, 100, [probe], curve, 0.5, 0.3, "metric", True, "a [walk] up")
    monkeypatch.setattr(trial, "tune_task", lambda *a, **k: tuned)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    found = runner.invoke(app, ["find", "--task", "wine-mlp", "--out", str(tmp_path / "f")])
    assert found.exit_code == 0, found.output
    assert "no suggestion: no descent [lr, loss] in this [/] sweep" in found.output
    assert "valley saw [bold]nothing[/bold]" in found.output
    args = ["test", "momentum", "--task", "wine-mlp", "--out", str(tmp_path / "m")]
    tested = runner.invoke(app, args)
    assert tested.exit_code == 0, tested.output
    assert "no recommendation: no value [of 1] stands out" in tested.output
    tune = runner.invoke(app, ["tune", "--task", "wine-mlp", "--out", str(tmp_path / "t")])
    assert tune.exit_code == 0, tune.output
    assert "how: a [walk] up" in tune.output
