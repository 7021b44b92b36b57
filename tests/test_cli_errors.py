"""The command line when things go wrong: failed trials, bad options, busy or unwritable folders,
Ctrl-C, broken user modules. Every case runs ``python -m lrkit`` in a subprocess, as a user
would, on a tiny task written into the test's folder (a run takes a few seconds)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lrkit import schedules as S
from lrkit.experiments import RunDir
from test_cli import lrkit

pytestmark = pytest.mark.slow

TINY = """
    import os
    import time
    from pathlib import Path

    import torch
    import torch.nn.functional as F
    from torch import nn


    def make():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(256, 4, generator=g)
        y = (x[:, 0] > 0).long()

        def loss(out, target):
            if os.environ.get("TINY_FAIL"):
                raise RuntimeError("tiny is broken")
            if os.environ.get("TINY_MARK"):
                Path(os.environ["TINY_MARK"]).touch()
            time.sleep(float(os.environ.get("TINY_SLEEP", "0")))
            return F.cross_entropy(out, target)

        return (lambda: nn.Linear(4, 2)), "sgd", (x[:192], y[:192], x[192:], y[192:]), loss
"""
"""A task of 192 samples and a linear model: a trial of 30 steps takes a few milliseconds.
``TINY_FAIL`` makes every trial fail, ``TINY_SLEEP`` slows each step, ``TINY_MARK`` names a
file touched when the first step runs."""


def tiny(folder: Path) -> str:
    (folder / "tiny.py").write_text(textwrap.dedent(TINY))
    return "tiny:make"


def compare(
    *extra: str, out: str = "cmp", seeds: str = "1", peak: str | None = "0.1", workers: str = "1"
) -> list[str]:
    """``lrkit compare`` of SGD with two schedules on the tiny task (an option repeated in
    ``extra`` wins)."""
    args = [
        "compare",
        "--task",
        "tiny:make",
        "--optimizers",
        "sgd",
        "--schedules",
        "constant,one-cycle",
    ]
    args += ["--seeds", seeds, "--workers", workers, "--out", out]
    return [*args, *(["--peak", peak] if peak is not None else []), *extra]


def start(
    args: list[str], cwd: Path, **env: str
) -> subprocess.Popen[str]:  # a command left running, in its own process group
    return subprocess.Popen(
        [sys.executable, "-m", "lrkit", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **env},
        start_new_session=True,
    )


def wait_for(cond: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.time() + 120
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"the command ended before {what}: {proc.communicate()}")
        if time.time() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def stored(folder: Path) -> int:
    trials = folder / "trials.jsonl"
    return len(trials.read_text().splitlines()) if trials.exists() else 0


# -- 3. experiments: failures, validation, growth, the lock, Ctrl-C ------------------------------


def test_failed_trials_exit_nonzero_show_their_errors_and_run_again(tmp_path: Path) -> None:
    tiny(tmp_path)
    bad = lrkit(*compare(), cwd=tmp_path, check=False, env={"TINY_FAIL": "1"})
    assert bad.returncode == 1
    assert re.search(r"sgd one-cycle\s*│\s*1 failed", bad.stdout)  # the status column
    assert "sgd constant/seed=0: RuntimeError: tiny is broken" in bad.stderr
    assert "2 of 2 trials failed" in bad.stderr and "run the same command again" in bad.stderr
    assert {r.status for r in RunDir(tmp_path / "cmp").records()} == {"failed"}
    fixed = lrkit(*compare(), cwd=tmp_path)  # the cause is gone
    assert "running again 2 trial(s) that failed in an earlier run" in fixed.stdout
    assert re.search(r"sgd one-cycle\s*│\s*1 ok", fixed.stdout)
    assert {r.status for r in RunDir(tmp_path / "cmp").records()} == {"ok"}


def test_invalid_options_write_nothing_and_the_corrected_command_runs(tmp_path: Path) -> None:
    tiny(tmp_path)
    cases = [
        (compare(peak="0"), "peak must be a finite number > 0"),
        (compare(peak="nan"), "peak must be a finite number > 0"),
        (compare("--optimizers", "sgd,foo"), "unknown optimizer 'foo'; known: sgd, adam"),
        (compare("--schedules", ""), "schedules is empty; give one or more of: constant"),
        (compare("--workers", "0"), "workers must be a whole number of processes >= 1"),
    ]
    for args, message in cases:
        bad = lrkit(*args, cwd=tmp_path, check=False)
        assert bad.returncode == 2 and message in bad.stderr, (args, bad.stderr)
        assert not (tmp_path / "cmp").exists(), args
    lrkit(*compare(), cwd=tmp_path)
    assert stored(tmp_path / "cmp") == 2


def test_more_seeds_and_arms_reuse_the_finished_trials(tmp_path: Path) -> None:
    tiny(tmp_path)
    lrkit(*compare(), cwd=tmp_path)
    first = (tmp_path / "cmp" / "trials.jsonl").read_text()
    more = lrkit(*compare("--optimizers", "sgd,adam", seeds="2"), cwd=tmp_path)
    lines = (tmp_path / "cmp" / "trials.jsonl").read_text()
    assert lines.startswith(first)  # the two finished trials were kept, not run again
    assert len(lines.splitlines()) == 8  # 2 optimizers x 2 schedules x 2 seeds
    assert "adam one-cycle" in more.stdout
    config = json.loads((tmp_path / "cmp" / "config.json").read_text())
    assert config["seeds"] == 2 and config["optimizers"] == ["sgd", "adam"]
    before = (tmp_path / "cmp" / "config.json").read_bytes()
    other = lrkit(*compare(peak="0.2"), cwd=tmp_path, check=False)
    assert other.returncode == 2 and "another configuration (differs in: peak)" in other.stderr
    assert (tmp_path / "cmp" / "config.json").read_bytes() == before


def test_a_second_command_on_a_busy_folder_is_refused_and_a_dead_holder_never_blocks(
    tmp_path: Path,
) -> None:
    tiny(tmp_path)
    lock = tmp_path / "cmp" / ".lock"
    first = start(compare(), tmp_path, TINY_SLEEP="1")  # a trial takes half a minute
    try:
        wait_for(lambda: lock.exists() and str(first.pid) in lock.read_text(), first, "the lock")
        second = lrkit(*compare(), cwd=tmp_path, check=False)
        assert second.returncode == 2
        assert f"the run directory cmp is in use by another lrkit process (pid {first.pid}" in (
            " ".join(second.stderr.split())
        )
        assert "compare --task tiny:make" in " ".join(second.stderr.split())  # its command
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
    assert str(first.pid) in lock.read_text()
    again = lrkit(*compare(), cwd=tmp_path)  # the lock died with its holder
    assert "compare: mean" in again.stdout and stored(tmp_path / "cmp") == 2


def test_ctrl_c_on_run_stops_the_workers_and_says_how_to_resume(tmp_path: Path) -> None:
    tiny(tmp_path)
    proc = start(compare(seeds="2", workers="2"), tmp_path, TINY_SLEEP="0.1")
    wait_for(lambda: stored(tmp_path / "cmp") >= 1, proc, "a trial was stored")
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    err = " ".join(err.split())
    done = re.search(r"interrupted: (\d) of 4 trials are done and stored in cmp", err)
    assert done is not None, err
    assert int(done.group(1)) == stored(tmp_path / "cmp") < 4
    assert "run the same command again to resume" in err and "Traceback" not in err


def test_ctrl_c_on_find_exits_nonzero_without_advice(tmp_path: Path) -> None:
    tiny(tmp_path)
    mark = tmp_path / "started"
    args = ["find", "--task", "tiny:make", "--steps", "1000000", "--out", "rt"]
    proc = start(args, tmp_path, TINY_MARK=str(mark), TINY_SLEEP="0.01")
    wait_for(mark.exists, proc, "the range test started")
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: the range test stopped after" in err
    assert "suggests no learning rate" in " ".join(err.split())
    assert "steps=" not in out + err and "suggested learning rates" not in out
    assert json.loads((tmp_path / "rt" / "range_test.json").read_text())["stop_reason"] == (
        "interrupted"
    )


# -- 4. input and output errors ------------------------------------------------------------------


def test_a_task_module_in_the_current_folder_imports_from_the_console_script(
    tmp_path: Path,
) -> None:
    tiny(tmp_path)
    script = Path(sys.executable).with_name("lrkit")  # not `python -m`: no folder on sys.path
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), *args], cwd=tmp_path, capture_output=True, text=True, env=env
        )

    ok = run("find", "--task", "tiny:make", "--steps", "20", "--out", "rt")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "rt" / "range_test.json").exists()
    (tmp_path / "needs.py").write_text("import lrkit_absent_dependency\n\ndef make():\n    pass\n")
    bad = run("find", "--task", "needs:make")
    msg = " ".join(bad.stderr.split())
    assert bad.returncode == 2
    assert "module 'needs' was found but importing it failed" in msg
    assert "ModuleNotFoundError: No module named 'lrkit_absent_dependency'" in msg
    assert "needs.py:1" in msg


def test_outputs_are_checked_before_the_work_starts(tmp_path: Path) -> None:
    tiny(tmp_path)
    (tmp_path / "taken").write_text("not a folder")
    for args in (
        ["find", "--task", "tiny:make", "--out", "taken"],
        compare(out="taken"),
        ["schedule", "cosine", "--out", "taken/s.png"],
    ):
        bad = lrkit(*args, cwd=tmp_path, check=False)
        assert bad.returncode == 2 and "taken is a file, not a folder" in bad.stderr, args
        assert bad.stdout == "", args  # nothing ran
    bad = lrkit("schedule", "cosine", "--out", "s.txt", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "--out s.txt: the plot's file type" in bad.stderr
    assert ".png" in bad.stderr and not (tmp_path / "s.txt").exists()
    bad = lrkit("schedule", "cosine", "--spec", "missing.json", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "--spec missing.json: cannot read the file" in bad.stderr
    (tmp_path / "broken.json").write_text('{"type": "cosine", ')
    bad = lrkit("schedule", "cosine", "--spec", "broken.json", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "--spec broken.json is not valid JSON" in bad.stderr
    lrkit(*compare(), cwd=tmp_path)
    (tmp_path / "cmp" / "report.html").unlink()
    (tmp_path / "cmp" / "report.html").mkdir()  # a folder where the report goes
    bad = lrkit("report", "cmp", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "cmp/report.html is a folder" in bad.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_a_read_only_output_folder_is_refused_up_front(tmp_path: Path) -> None:
    tiny(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        bad = lrkit("find", "--task", "tiny:make", "--out", "ro/rt", cwd=tmp_path, check=False)
        assert bad.returncode == 2 and "cannot write to ro/rt" in bad.stderr
        assert "the folder ro is read-only" in bad.stderr
    finally:
        ro.chmod(0o755)


def test_a_corrupt_range_test_cache_is_recomputed_and_a_corrupt_config_named(
    tmp_path: Path,
) -> None:
    tiny(tmp_path)
    args = compare(peak=None)  # a range test runs
    lrkit(*args, cwd=tmp_path)
    cache = tmp_path / "cmp" / "range_tests" / "sgd-batch64.json"
    good = json.loads(cache.read_text())
    cache.write_text(cache.read_text()[:100])  # cut short
    again = lrkit(*args, cwd=tmp_path)
    assert "range-test cache cmp/range_tests/sgd-batch64.json is corrupt" in again.stderr
    assert json.loads(cache.read_text())["lrs"] == good["lrs"]
    (tmp_path / "cmp" / "config.json").write_text('{"recipe": ')
    bad = lrkit(*args, cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "cmp/config.json is corrupt (not valid JSON" in bad.stderr


def test_bad_values_get_clear_errors(tmp_path: Path) -> None:
    cases = [
        (["schedule", "multistep", "--milestones", "abc"], "--milestones must be whole step"),
        (["schedule", "constant", "--peak", "-1"], "constant value must be >= 0, got -1.0"),
        (["schedule", "linear", "--end", "-0.1"], "gives -0.0002 at step 501"),
        (["schedule", "triangular", "--base", "-0.1"], "gives -0.1 at step 0"),
        (["schedule", "one-cycle", "--no-no-momentum"], "No such option: --no-no-momentum"),
    ]
    for args, message in cases:
        bad = lrkit(*args, "--out", "s.png", cwd=tmp_path, check=False)
        assert bad.returncode == 2 and message in bad.stderr, (args, bad.stderr)
        assert not (tmp_path / "s.png").exists()
    flat = lrkit("schedule", "one-cycle", "--no-momentum", "--out", "s.png", cwd=tmp_path)
    assert "momentum" not in flat.stdout.split("┃")[-3:]  # no momentum column
    with pytest.raises(ValueError, match="constant value must be >= 0"):
        S.constant(-0.5)


# -- 5. the tasks table and the help texts -------------------------------------------------------


def test_tasks_keep_whole_names_at_80_columns(tmp_path: Path) -> None:
    from lrkit.tasks import task_names

    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "lrkit", "tasks"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    assert max(len(line) for line in out.splitlines()) <= 80
    for name in task_names():
        assert re.search(rf"^\s*{re.escape(name)}\s", out, re.M), name
    assert "…" not in out and "4-layer 1-D CNN" in out


def test_help_reads_in_whole_sentences(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}

    def help_of(*args: str, columns: str = "200") -> str:
        return subprocess.run(
            [sys.executable, "-m", "lrkit", *args, "--help"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**env, "COLUMNS": columns},
        ).stdout

    assert (
        "The README's main job: lrkit's peak against the usual LR and a grid of peaks." in help_of()
    )
    assert (
        "Print each weight decay's lowest loss and suggestion and the recommended one; write the "
        "plot (weight_decay_test.png)" in help_of("test", "weight-decay")
    )
    narrow = help_of("schedule", columns="80")
    assert "triangular2," in narrow and "warmup-cosine," in narrow  # no choice cut mid-word


def test_the_readme_task_example_runs_from_the_current_folder(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = re.search(r"<!-- mytask.py: [^>]*-->\n```python\n(.*?)```", readme, re.S)
    assert block is not None, "the README's mytask.py example is missing"
    (tmp_path / "mytask.py").write_text(block.group(1))
    out = lrkit("find", "--task", "mytask:make_task", "--steps", "30", "--out", "rt", cwd=tmp_path)
    assert re.search(r"^mytask: \d+ steps, stopped: ", out.stdout, re.M), out.stdout
    assert (tmp_path / "rt" / "range_test.json").exists()
    same = lrkit("find", "--task", "./mytask.py:make_task", "--steps", "30", cwd=tmp_path)
    assert "suggested learning rates" in same.stdout


def test_ctrl_c_in_the_range_test_of_a_search_says_where_it_stopped(tmp_path: Path) -> None:
    tiny(tmp_path)
    mark = tmp_path / "started"
    args = ["tune", "--task", "tiny:make", "--budget", "0.5", "--total-steps", "2000"]
    proc = start([*args, "--out", "tune"], tmp_path, TINY_MARK=str(mark), TINY_SLEEP="0.05")
    wait_for(mark.exists, proc, "the range test started")  # 100 steps of at least 0.05 s
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    err = " ".join(err.split())
    stopped = re.search(
        r"interrupted: in the range test of the search, after (\d+) of its (\d+) steps; "
        r"nothing was written",
        err,
    )
    assert stopped is not None, err
    assert 1 <= int(stopped.group(1)) < int(stopped.group(2)) == 100
    assert "before the range test started" not in err and "Traceback" not in err
    assert "probes on" not in out and not (tmp_path / "tune").exists()


# -- signals, resuming, output to a file ---------------------------------------------------------


def _process_table() -> dict[int, tuple[int, str, str, str]]:
    """Every process (Linux ``/proc``): pid -> (parent pid, state, start time, command line)."""
    table: dict[int, tuple[int, str, str, str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue  # it ended meanwhile
        table[int(stat.parent.name)] = (int(fields[1]), fields[0], fields[19], cmd)
    return table


def _processes_under(pid: int) -> dict[int, tuple[str, str]]:
    """The processes below ``pid``: pid -> (start time, command line)."""
    table = _process_table()
    found: dict[int, tuple[str, str]] = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _, start, cmd) in table.items():
            if ppid == parent and child not in found:
                found[child] = (start, cmd)
                todo.append(child)
    return found


def _still_running(processes: dict[int, tuple[str, str]]) -> dict[int, str]:
    """Those of ``processes`` that run still (not ended, not a zombie, not a reused pid)."""
    table = _process_table()
    return {
        pid: cmd
        for pid, (start, cmd) in processes.items()
        if pid in table and table[pid][2] == start and table[pid][1] != "Z"
    }


def _as_a_background_job() -> None:
    # a shell script's `lrkit run ... &` starts the command with SIGINT and SIGQUIT ignored
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


@pytest.mark.skipif(sys.platform != "linux", reason="reads the process table in /proc")
@pytest.mark.parametrize(
    ("sig", "status"),
    [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGKILL, -signal.SIGKILL)],
    ids=["SIGTERM", "SIGINT", "SIGKILL"],
)
def test_a_signal_to_the_command_alone_ends_its_workers_and_a_rerun_resumes(
    tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    tiny(tmp_path)
    args = compare(seeds="2", workers="2")  # 4 trials of several seconds on 2 workers
    proc = subprocess.Popen(
        [sys.executable, "-m", "lrkit", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TINY_SLEEP": "0.1"},
        start_new_session=True,
        preexec_fn=_as_a_background_job,
    )
    try:

        def workers() -> list[str]:
            return [c for _, c in _processes_under(proc.pid).values() if "spawn_main" in c]

        wait_for(
            lambda: stored(tmp_path / "cmp") >= 1 and len(workers()) == 2,
            proc,
            "a trial was stored while the workers run",
        )
        below = _processes_under(proc.pid)  # the workers and multiprocessing's resource tracker
        os.kill(proc.pid, sig)  # to the command alone, not to its process group
        proc.wait(timeout=60)
        deadline = time.time() + 30
        while _still_running(below) and time.time() < deadline:
            time.sleep(0.2)
        left = _still_running(below)
    finally:  # whatever happened, nothing of the command outlives the test
        import contextlib

        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    assert not left, f"processes left behind by the command: {left}"
    assert proc.returncode == status, err
    if sig != signal.SIGKILL:
        err = " ".join(err.split())
        assert re.search(r"interrupted: \d of 4 trials are done and stored in cmp", err), err
        assert "run the same command again to resume" in err and "Traceback" not in err
    done = {r.key: r.seconds for r in RunDir(tmp_path / "cmp").records()}
    assert 1 <= len(done) < 4
    again = lrkit(*args, cwd=tmp_path)
    assert f"resuming: {len(done)} of 4 trials already done in cmp" in again.stdout
    after = {r.key: r for r in RunDir(tmp_path / "cmp").records()}
    assert len(after) == 4 and all(r.status == "ok" for r in after.values())
    assert {k: after[k].seconds for k in done} == done  # the finished trials were kept


def test_a_rerun_says_how_many_trials_were_already_done(tmp_path: Path) -> None:
    tiny(tmp_path)
    first = lrkit(*compare(), cwd=tmp_path)
    assert "resuming" not in first.stdout
    more = lrkit(*compare(seeds="3"), cwd=tmp_path)
    lines = more.stdout.splitlines()
    assert lines[0] == "resuming: 2 of 6 trials already done in cmp"  # before the trials ran
    assert stored(tmp_path / "cmp") == 6


def test_output_to_a_pipe_is_not_cut_at_80_columns(tmp_path: Path) -> None:
    tiny(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    args = compare("--optimizers", "sgd,adam", "--schedules", "constant,one-cycle,triangular2")
    done = subprocess.run(
        [sys.executable, "-m", "lrkit", *args],
        cwd=tmp_path,
        capture_output=True,  # stdout and stderr are pipes, not a terminal
        text=True,
        env={**env, "NO_COLOR": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    header = [line for line in done.stdout.splitlines() if line.startswith("┃")]
    assert len(header) == 1, done.stdout  # one line, no header word wrapped or cut
    words = ["arm", "trials", "final metric", "steps to the task's target", "reached"]
    assert all(w in header[0] for w in [*words, "train seconds"]), header
    assert "…" not in done.stdout + done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("compare on")]
    assert len(progress) == 1 and "6/6" in progress[0], done.stderr  # one line, at the end
    assert re.search(r"6/6 \S+ \S+/seed=0: ok \d+:\d\d:\d\d$", progress[0]), progress


def test_schedule_output_to_a_pipe_is_not_cut_at_80_columns(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    folder = tmp_path / ("plots-of-the-schedules-" * 5)
    folder.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "lrkit", "schedule", "cosine", "--out", str(folder / "s.png")],
        cwd=tmp_path,
        capture_output=True,  # stdout is a pipe, not a terminal
        text=True,
        env={**env, "NO_COLOR": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert len(str(folder / "s.png")) > 120
    assert done.stdout.splitlines()[-1] == f"wrote {folder / 's.png'}", done.stdout


def test_ctrl_c_in_a_weight_decay_test_names_the_value_and_the_step(tmp_path: Path) -> None:
    tiny(tmp_path)
    mark = tmp_path / "started"
    args = ["test", "weight-decay", "--task", "tiny:make", "--steps", "3000"]
    proc = start([*args, "--out", "wd"], tmp_path, TINY_MARK=str(mark), TINY_SLEEP="0.01")
    wait_for(mark.exists, proc, "the first range test started")
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    err = " ".join(err.split())
    stopped = re.search(
        r"interrupted: in the range test of weight decay 0\.001 \(1 of 4\) of the weight-decay "
        r"test, after (\d+) of its 3000 steps; the partial curves are in wd/weight_decay_test.png "
        r"and wd/weight_decay_test.json; no value is recommended",
        err,
    )
    assert stopped is not None, err
    saved = json.loads((tmp_path / "wd" / "weight_decay_test.json").read_text())
    assert saved["values"] == [0.001]
    assert len(saved["results"][0]["lrs"]) == int(stopped.group(1))
