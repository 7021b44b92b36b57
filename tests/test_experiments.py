"""Results store, sweeps, recipes and the HTML report."""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from histories import curve_history
from lrkit import schedules as S
from lrkit.experiments import (
    RECIPES,
    RunDir,
    Trial,
    TrialRecord,
    get_recipe,
    run_trial,
    run_trials,
    steps_to,
    write_report,
)
from lrkit.experiments.recipes import Context
from lrkit.experiments.summary import group_arms, mean_std
from lrkit.experiments.trial import decode_lr, encode_lr
from lrkit.tasks import get_task
from lrkit.train.history import History

# -- the store -------------------------------------------------------------------------------------


def test_run_dir_refuses_another_configuration(tmp_path: Path) -> None:
    RunDir(tmp_path / "r", {"recipe": "a", "seeds": 3})
    RunDir(tmp_path / "r", {"recipe": "a", "seeds": 3})  # same configuration: fine
    with pytest.raises(ValueError, match=r"another configuration \(differs in: seeds\)"):
        RunDir(tmp_path / "r", {"recipe": "a", "seeds": 2})


def test_run_dir_without_config_is_not_a_run_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an lrkit run directory"):
        RunDir(tmp_path)


def test_append_is_durable_and_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    rd = RunDir(tmp_path, {"x": 1})
    rd.append(TrialRecord("a", {"v": 1}, "ok", {"r": 1.5}))
    rd.append(TrialRecord("b", {"v": 2}, "failed", error="boom"))
    with open(rd.trials_file, "a") as fh:
        fh.write('{"key": "c", "config": {}, "sta')  # a crash mid-write
    assert [r.key for r in rd.records()] == ["a", "b"]
    assert rd.done() == {"a"} and rd.failed() == {"b"}  # a failed trial is not done
    rd.append(TrialRecord("c", {"v": 3}, "ok"))  # starts on a fresh line
    recs = {r.key: r for r in rd.records()}
    assert set(recs) == {"a", "b", "c"}
    assert recs["a"].result == {"r": 1.5}
    assert recs["b"].error == "boom"


def _square(config: Any) -> dict[str, Any]:
    if config["x"] < 0:
        raise ValueError("negative x")
    return {"y": config["x"] ** 2, "diverged": config["x"] > 100}


def test_sweep_records_failures_and_divergence_and_goes_on(tmp_path: Path) -> None:
    rd = RunDir(tmp_path, {"grid": "squares"})
    trials = [Trial(f"x={x}", {"x": x}) for x in (2, -1, 101, 3)]
    seen: list[tuple[str, int, int]] = []
    recs = run_trials(
        trials, _square, rd, workers=1, progress=lambda r, d, t: seen.append((r.key, d, t))
    )
    assert [r.status for r in recs] == ["ok", "failed", "diverged", "ok"]
    assert recs[0].result["y"] == 4 and recs[3].result["y"] == 9
    assert "ValueError: negative x" in (recs[1].error or "")
    assert seen[-1] == ("x=3", 4, 4)


def test_restarted_sweep_redoes_nothing_that_finished(tmp_path: Path) -> None:
    rd = RunDir(tmp_path, {"grid": "squares"})
    run_trials([Trial("x=2", {"x": 2})], _square, rd, workers=1)
    first = next(rd.records())
    calls: list[str] = []
    recs = run_trials(
        [Trial("x=2", {"x": 2}), Trial("x=5", {"x": 5})],
        _square,
        rd,
        workers=1,
        progress=lambda r, d, t: calls.append(r.key),
    )
    assert calls == ["x=5"]
    assert recs[0].seconds == first.seconds
    assert len(rd.trials_file.read_text().splitlines()) == 2


def test_a_restarted_sweep_logs_how_many_trials_were_done_before_it_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rd = RunDir(tmp_path, {"grid": "squares"})
    trials = [Trial(f"x={x}", {"x": x}) for x in (1, 2, 3)]
    caplog.set_level(logging.INFO, logger="lrkit.experiments.sweep")
    run_trials(trials[:2], _square, rd, workers=1)
    assert "resuming" not in caplog.text
    order: list[str] = []
    run_trials(trials, _square, rd, workers=1, progress=lambda r, d, t: order.append(r.key))
    resuming = [r for r in caplog.records if r.getMessage().startswith("resuming")]
    assert [r.getMessage() for r in resuming] == [
        f"resuming: 2 of 3 trials already done in {tmp_path}"
    ]
    assert resuming[0].levelno == logging.INFO and order == ["x=3"]


def test_a_stored_trial_with_another_configuration_runs_again(tmp_path: Path) -> None:
    rd = RunDir(tmp_path, {"grid": "squares"})
    run_trials([Trial("x", {"x": 2}), Trial("y", {"x": 3})], _square, rd, workers=1)
    calls: list[str] = []
    recs = run_trials(
        [Trial("x", {"x": 4}), Trial("y", {"x": 3})],  # "x" now means another trial
        _square,
        rd,
        workers=1,
        progress=lambda r, d, t: calls.append(r.key),
    )
    assert calls == ["x"]
    assert [r.result["y"] for r in recs] == [16, 9]
    assert {r.key: r.config["x"] for r in rd.records()} == {"x": 4, "y": 3}


def _fails_while_flagged(config: Any) -> dict[str, Any]:
    if Path(config["flag"]).exists():
        raise RuntimeError("the flag file is there")
    return {"y": config["x"]}


def test_failed_trials_run_again_and_their_new_record_wins(tmp_path: Path) -> None:
    flag = tmp_path / "broken"
    flag.touch()
    rd = RunDir(tmp_path / "run", {"grid": "flag"})
    trials = [
        Trial(f"x={x}", {"x": x, "flag": str(flag if x else tmp_path / "absent")}) for x in (0, 1)
    ]
    first = run_trials(trials, _fails_while_flagged, rd, workers=1)
    assert [r.status for r in first] == ["ok", "failed"]
    assert rd.done() == {"x=0"} and rd.failed() == {"x=1"}
    flag.unlink()  # the cause is fixed
    ran: list[str] = []
    again = run_trials(
        trials, _fails_while_flagged, rd, workers=1, progress=lambda r, d, t: ran.append(r.key)
    )
    assert ran == ["x=1"]  # only the failed trial ran again
    assert [r.status for r in again] == ["ok", "ok"] and again[1].result == {"y": 1}
    assert again[0].seconds == first[0].seconds
    assert rd.failed() == set()


def test_workers_must_be_at_least_one(tmp_path: Path) -> None:
    rd = RunDir(tmp_path, {"grid": "squares"})
    for bad in (0, -2, True):
        with pytest.raises(ValueError, match="workers must be a whole number of processes >= 1"):
            run_trials([Trial("a", {"x": 1})], _square, rd, workers=bad)  # type: ignore[arg-type]
    assert not rd.trials_file.exists()


def test_run_dir_grows_seeds_and_arms_but_refuses_other_changes(tmp_path: Path) -> None:
    keys = ("seeds", "optimizers")
    RunDir(tmp_path, {"steps": 30, "seeds": 1, "optimizers": ["sgd"]}, extendable=keys)
    rd = RunDir(tmp_path, {"steps": 30, "seeds": 3, "optimizers": ["adam", "sgd"]}, extendable=keys)
    assert rd.config == {"steps": 30, "seeds": 3, "optimizers": ["sgd", "adam"]}
    fewer = RunDir(tmp_path, {"steps": 30, "seeds": 2, "optimizers": ["sgd"]}, extendable=keys)
    assert fewer.config == rd.config  # what the folder holds is still described
    before = (tmp_path / "config.json").read_bytes()
    with pytest.raises(ValueError, match=r"another configuration \(differs in: steps\)"):
        RunDir(tmp_path, {"steps": 40, "seeds": 3, "optimizers": ["sgd"]}, extendable=keys)
    assert (tmp_path / "config.json").read_bytes() == before


def test_output_folders_are_checked_without_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrkit._files import check_writable_dir, check_writable_file

    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"file is a file, not a folder"):
        check_writable_dir(tmp_path / "file")
    with pytest.raises(ValueError, match=r"cannot create the folder .*file/sub: .*file is a file"):
        check_writable_dir(tmp_path / "file" / "sub")
    (tmp_path / "report.html").mkdir()
    with pytest.raises(ValueError, match=r"report.html is a folder"):
        check_writable_file(tmp_path / "report.html")
    check_writable_dir(tmp_path / "new" / "deeper")  # can be made: fine, and nothing is made
    assert not (tmp_path / "new").exists()
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as for a read-only folder
    with pytest.raises(ValueError, match=r"cannot write to .*new: the folder .* is read-only"):
        check_writable_dir(tmp_path / "new")


def test_corrupt_config_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"recipe": ')
    for make in (lambda: RunDir(tmp_path), lambda: RunDir(tmp_path, {"recipe": "x"})):
        with pytest.raises(
            ValueError, match=re.escape(str(tmp_path / "config.json")) + " is corrupt"
        ):
            make()


def test_lock_names_its_holder_and_a_dead_holder_never_blocks(tmp_path: Path) -> None:
    from lrkit._files import FolderInUse
    from lrkit.experiments.store import locked

    held = (
        "import sys, time\n"
        "from lrkit.experiments.store import locked\n"
        "with locked(sys.argv[1]):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", held, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        with (
            pytest.raises(
                FolderInUse, match=rf"in use by another lrkit process \(pid {proc.pid} on"
            ),
            locked(tmp_path),
        ):
            pass
    finally:
        proc.kill()
        proc.wait()
    assert str(proc.pid) in (tmp_path / ".lock").read_text()  # left behind by the dead holder
    with locked(tmp_path), locked(tmp_path):  # free again, and re-entrant in one process
        assert str(os.getpid()) in (tmp_path / ".lock").read_text()


def test_corrupt_range_test_cache_is_run_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from lrkit.finder.task import find_lr

    cache = tmp_path / "rt.json"
    cache.write_text('{"lrs": [1e-7, ')  # cut short
    with caplog.at_level("WARNING"):
        result = find_lr("wine-mlp", steps=12, cache=cache)
    assert f"range-test cache {cache} is corrupt" in caplog.text
    assert len(result.lrs) > 0
    assert json.loads(cache.read_text())["lrs"] == pytest.approx(list(result.lrs))


def test_duplicate_trial_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unique"):
        run_trials([Trial("a", {"x": 1}), Trial("a", {"x": 2})], _square, RunDir(tmp_path, {}))


# -- real trials on a process pool -----------------------------------------------------------------


def _cfg(**kw: Any) -> dict[str, Any]:
    cfg = {
        "task": "digits-cnn",
        "seed": 0,
        "optimizer": "sgd",
        "lr": encode_lr(S.one_cycle(0.2, 24)),
        "steps": 24,
        "eval_every": 8,
    }
    cfg.update(kw)
    return cfg


@pytest.mark.slow
def test_process_pool_runs_real_trials_and_records_errors(tmp_path: Path) -> None:
    rd = RunDir(tmp_path, {"pool": True})
    trials = [
        Trial("one-cycle", _cfg()),
        Trial("bad-optimizer", _cfg(optimizer="lion")),
        Trial("diverges", _cfg(lr=1e30)),
    ]
    recs = {r.key: r for r in run_trials(trials, run_trial, rd, workers=2)}
    ok = History.from_dict(recs["one-cycle"].result["history"])
    assert recs["one-cycle"].status == "ok"
    assert ok.steps == 24 and ok.eval_step == [8, 16, 24]
    assert ok.lr == pytest.approx([S.one_cycle(0.2, 24).lr(i) for i in range(24)], rel=1e-12)
    assert ok.final_metric is not None and ok.final_metric > 0.5
    assert recs["bad-optimizer"].status == "failed"
    assert "lion" in (recs["bad-optimizer"].error or "")
    assert recs["diverges"].status == "diverged"
    assert History.from_dict(recs["diverges"].result["history"]).diverged


def test_lr_encoding_round_trips() -> None:
    h = S.one_cycle(0.5, 100)
    for v in (0.1, S.cosine(0.1, 50), h):
        back = decode_lr(json.loads(json.dumps(encode_lr(v))))
        assert back == v


# -- recipes ---------------------------------------------------------------------------------------


def _context(tmp_path: Path, peak: float = 0.2) -> Context:
    t = get_task("digits-cnn")
    return Context(t, 2, 5 * t.steps_per_epoch(), tmp_path, peak, t.steps_per_epoch(), t.name)


def test_a_run_too_short_for_tune_lr_takes_the_range_test_peak_and_says_so(
    tmp_path: Path,
) -> None:
    from lrkit.finder.search import min_total_steps

    t = get_task("digits-cnn")
    ctx = Context(t, 1, 60, tmp_path, None, t.steps_per_epoch(), t.name)
    short = min_total_steps(0.5) - 1
    assert ctx.tuned("sgd", short) == ctx.bounds("sgd", "one_cycle")
    assert any(f"{short} steps is too short for tune_lr" in n for n in ctx.notes)
    assert not (tmp_path / "tune").exists()  # no search was run


def test_every_recipe_is_documented_and_builds_two_seeds_per_arm(tmp_path: Path) -> None:
    assert set(RECIPES) == {
        "clr-vs-fixed",
        "policies",
        "optimizers",
        "super-convergence",
        "weight-decay",
        "baseline-vs-clr",
        "transfer",
    }
    for name, recipe in RECIPES.items():
        assert recipe.claim and re.search(r"Smith|Keras|PyTorch", recipe.source), name
        if name == "transfer":  # needs its own target task: tests/test_transfer.py
            continue
        trials = recipe.build(_context(tmp_path / name))
        arms: dict[str, int] = {}
        for t in trials:
            arms[t.config["arm"]] = arms.get(t.config["arm"], 0) + 1
            decode_lr(t.config["lr"])  # every lr is a valid, serialisable schedule
        assert set(arms.values()) == {2}, name


def test_recipe_arms_follow_the_papers(tmp_path: Path) -> None:
    ctx = _context(tmp_path, peak=0.4)
    trials = {t.config["arm"]: t.config for t in get_recipe("policies").build(ctx)}
    assert set(trials) == {"fixed", "triangular", "triangular2", "exp_range", "decrease-only"}
    tri = decode_lr(trials["triangular"]["lr"])
    assert isinstance(tri, S.cyclic)
    assert (tri.base, tri.peak) == (pytest.approx(0.1), 0.4)  # Smith: base = peak / 4
    assert trials["triangular"]["steps"] % (2 * tri.step_size_up) == 0  # stops at a cycle end
    dec = decode_lr(trials["decrease-only"]["lr"])
    assert isinstance(dec, S.Schedule)
    half = tri.step_size_up
    n = trials["decrease-only"]["steps"]
    assert dec(0) == pytest.approx(0.4) and dec(half // 2) < dec(0)
    assert dec(half) == dec(n - 1) == pytest.approx(0.1)  # down once, then held at base

    opts = {t.config["arm"]: t.config for t in get_recipe("optimizers").build(ctx)}
    assert set(opts) == {"adagrad", "adadelta", "rmsprop", "adam", "adamax", "sgd+clr"}
    assert opts["adadelta"]["lr"] == 1.0 and opts["adam"]["lr"] == 1e-3

    wd = {t.config["arm"]: t.config for t in get_recipe("weight-decay").build(ctx)}
    assert sorted(c["weight_decay"] for c in wd.values()) == [0.0, 1e-5, 1e-4, 1e-3]

    sc = {t.config["arm"]: t.config for t in get_recipe("super-convergence").build(ctx)}
    one = decode_lr(sc["one-cycle"]["lr"])
    assert isinstance(one, S.Hyper) and one.momentum is not None
    flat = decode_lr(sc["one-cycle, constant momentum"]["lr"])
    assert isinstance(flat, S.Hyper) and flat.momentum is None
    assert sc["one-cycle"]["steps"] < sc["constant"]["steps"]

    kb = {t.config["arm"]: t.config for t in get_recipe("baseline-vs-clr").build(ctx)}
    small, big = sorted(kb.values(), key=lambda c: c.get("batch_size", 0))
    assert big["batch_size"] == 10 * small["batch_size"] and big["optimizer"] == "adam"


def test_unknown_recipe_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known recipes: clr-vs-fixed, policies"):
        get_recipe("nope")


def test_steps_to_and_mean_std() -> None:
    h = History(eval_step=[10, 20, 30], metric=[0.5, 0.8, 0.9])
    assert steps_to(h, 0.8) == 20 and steps_to(h, 0.95) is None
    m, s = mean_std([1.0, 2.0, 3.0, math.nan])
    assert (m, s) == (2.0, 1.0)
    assert mean_std([4.0]) == (4.0, 0.0)


# -- the report ------------------------------------------------------------------------------------


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[bytes] = []
        self.tables = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables += 1
        if tag == "img":
            src = dict(attrs)["src"] or ""
            assert src.startswith("data:image/png;base64,"), "images must be embedded"
            self.images.append(base64.b64decode(src.split(",", 1)[1]))


def _fake_history(seed: int, final: float, *, momentum: bool) -> dict[str, Any]:
    n = 40
    h = History(
        task="digits-cnn",
        metric_name="accuracy",
        seed=seed,
        total_steps=n,
        lr=[0.1 * (1 - i / n) for i in range(n)],
        momentum=[0.9 if not momentum else 0.85 + i / (10 * n) for i in range(n)],
        loss=[2.0 / (1 + i + seed) for i in range(n)],
        eval_step=[10, 20, 30, 40],
        val_loss=[1.0, 0.5, 0.4, 0.3],
        metric=[0.5, 0.7, final - 0.01, final],
        final_metric=final,
        seconds=1.0 + seed,
    )
    return h.to_dict()


def _fake_run(folder: Path) -> RunDir:
    rd = RunDir(folder, {"recipe": "demo", "title": "test report", "claim": "a claim", "task": "t"})
    for arm, final in (("constant", 0.9), ("one-cycle", 0.95)):
        for seed in range(3):
            hist = _fake_history(seed, final + 0.01 * seed, momentum=arm == "one-cycle")
            rd.append(TrialRecord(f"{arm}/seed={seed}", {"arm": arm}, "ok", {"history": hist}))
    rd.append(
        TrialRecord(
            "broken/seed=0", {"arm": "broken"}, "failed", error="Traceback\nValueError: bad"
        )
    )
    return rd


def test_report_is_self_contained_html_with_valid_images(tmp_path: Path) -> None:
    from PIL import Image

    rd = _fake_run(tmp_path / "run")
    path = write_report(rd.path)
    text = path.read_text()
    parser = _Images()
    parser.feed(text)
    assert parser.tables == 1 and len(parser.images) == 2  # schedules + curves
    for png in parser.images:
        import io

        with Image.open(io.BytesIO(png)) as im:
            im.verify()
            assert im.size[0] > 500
    assert "0.91 ± 0.01" in text and "0.96 ± 0.01" in text  # mean ± std over seeds
    assert "ValueError: bad" in text  # the failed trial is listed with its error
    assert "a claim" in text


def test_report_of_an_empty_run_says_what_to_do(tmp_path: Path) -> None:
    RunDir(tmp_path, {"recipe": "x"})
    with pytest.raises(ValueError, match="no finished trials"):
        write_report(tmp_path)


def test_arms_group_by_label(tmp_path: Path) -> None:
    arms = group_arms(_fake_run(tmp_path).records())
    assert [a.label for a in arms] == ["constant", "one-cycle", "broken"]
    assert arms[1].summary_row()["final_metric"] == (pytest.approx(0.96), pytest.approx(0.01))
    assert arms[2].statuses == {"failed": 1}


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)"
)
def test_report_renders_in_headless_chromium_with_every_figure_loaded(tmp_path: Path) -> None:
    rd = _fake_run(tmp_path / "run")
    path = write_report(rd.path)
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        path.resolve().as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    assert 'data-images-loaded="2/2"' in dom, dom[-2000:]


def _maybe_die(config: Any) -> dict[str, Any]:
    if config["die"]:
        os._exit(3)  # a worker killed mid-trial (as by the OOM killer)
    time.sleep(0.2)
    return {"x": config["x"]}


@pytest.mark.slow
def test_a_dying_worker_is_blamed_alone_and_the_sweep_goes_on(tmp_path: Path) -> None:
    rd = RunDir(tmp_path, {"crash": True})
    trials = [Trial(f"t{i}", {"x": i, "die": i == 1}) for i in range(5)]
    recs = {r.key: r for r in run_trials(trials, _maybe_die, rd, workers=2)}
    assert set(recs) == {f"t{i}" for i in range(5)}
    assert recs["t1"].status == "failed" and "died 2 times" in (recs["t1"].error or "")
    assert all(
        recs[f"t{i}"].status == "ok" and recs[f"t{i}"].result == {"x": i} for i in (0, 2, 3, 4)
    )


# -- a headline: one arm's speed-up against the best of its rivals -------------------------------


def _demo_curve(seed: int, metric: list[float]) -> dict[str, Any]:
    return curve_history(seed, metric, task="mnist1d-cnn-paper").to_dict()


def test_speedup_counts_a_seed_that_never_reaches_the_target_at_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    from lrkit.cli.experiments import print_run
    from lrkit.experiments import RecipeRun
    from lrkit.experiments.summary import speedup, speedup_findings

    curves = {
        "one-cycle sgd peak=0.1": [[0.5, 0.92, 0.95, 0.96], [0.5, 0.8, 0.93, 0.95]],
        # best: mean final 0.91; seed 0 ends at 0.90 and never reaches it (160 steps),
        # seed 1 reaches it at step 120
        "constant sgd lr=0.1": [[0.5] * 15 + [0.9], [0.5] * 11 + [0.91] * 4 + [0.92]],
        "constant adam lr=0.001": [[0.5] * 15 + [0.85], [0.5] * 15 + [0.87]],
    }
    config = {
        "recipe": "demo",
        "title": "demo",
        "metric_name": "accuracy",
        "headline": {"claimant": "one-cycle", "rivals": "constant"},
    }
    rd = RunDir(tmp_path, config)
    for arm, runs in curves.items():
        for seed, metric in enumerate(runs):
            hist = _demo_curve(seed, metric)
            rd.append(TrialRecord(f"{arm}/seed={seed}", {"arm": arm}, "ok", {"history": hist}))
    arms = group_arms(rd.records())
    head = speedup(arms, "one-cycle", "constant")
    assert head is not None and head.baseline.label == "constant sgd lr=0.1"
    findings = [
        head.describe("accuracy"),
        *speedup_findings(
            arms, head.baseline.label, "accuracy", claimant=head.claimant.label, budget=True
        ),
    ]
    # (160 + 120) / 2 steps for the best constant, (20 + 30) / 2 for one cycle
    assert findings[0] == (
        "speed-up ×5.60: constant sgd lr=0.1 reached its own final accuracy (0.91) after 140 "
        "steps, one-cycle sgd peak=0.1 after 25 (mean of 2 seeds; a seed that never reaches it "
        "counts its whole budget)"
    )
    assert (
        "constant sgd lr=0.1: reached constant sgd lr=0.1's final accuracy (0.91) after 140 "
        "steps (1/2 seeds, the others counted at their whole budget)" in findings
    )
    assert findings[-1].startswith("verdict: the claim held: one-cycle sgd peak=0.1 reached")
    assert findings[-1].endswith("×5.60 fewer steps than constant sgd lr=0.1")

    run = RecipeRun("demo", tmp_path, list(rd.records()), arms, findings)
    screen = io.StringIO()
    monkeypatch.setattr("lrkit.cli.experiments.console", Console(file=screen, width=200))
    print_run(run)
    table = screen.getvalue().split("steps to constant sgd lr=0.1's final accuracy (0.91)", 1)[1]
    assert table.startswith(": one-cycle sgd peak=0.1 speed-up ×5.60")
    rows = {line.split("│")[1].strip(): line for line in table.splitlines() if "│" in line}
    assert "×5.60 fewer" in rows["one-cycle sgd peak=0.1"]
    assert "1/2" in rows["constant sgd lr=0.1 (best)"]
    cells = [c.strip() for c in rows["constant adam lr=0.001"].split("│")]
    assert cells[4:7] == ["never", "0/2", "–"]

    text = write_report(tmp_path, findings=findings).read_text()
    assert text.index("<h2>one-cycle sgd peak=0.1 against the best constant arm") < text.index(
        "<h2>Summary"
    )
    assert re.search(r"<figcaption>speed-up ×5\.60: ", text)


def test_recipes_keep_every_public_name_the_split_modules_define() -> None:
    import lrkit.experiments as experiments
    from lrkit.experiments import compare_grid, context, recipe_run, recipes

    assert experiments.compare is recipes.compare is compare_grid.compare
    assert callable(experiments.compare)
    assert recipes.SCHEDULE_NAMES is compare_grid.SCHEDULE_NAMES
    for name in ("Context", "RANGE_COST", "TUNE_COST", "TUNE_BUDGET"):
        assert getattr(recipes, name) is getattr(context, name)
    for name in ("Recipe", "RecipeRun", "RunInterrupted", "EXTENDABLE", "execute", "Build"):
        assert getattr(recipes, name) is getattr(recipe_run, name)
    assert experiments.RecipeRun is recipe_run.RecipeRun
    assert "adam" in recipes.ADAPTIVE and recipes.WEIGHT_DECAYS[-1] == 0.0
