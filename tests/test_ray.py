"""The Ray backend on a real Ray cluster: a head started with ``ray start --head`` on 127.0.0.1
for this module (two CPUs, its own temporary folder) and stopped afterwards. Sweeps and the
search's probes run on it and must give what the local backend gives for the same seeds, also
after a worker process is killed mid-sweep; failed trials are recorded, reruns redo nothing,
Ctrl-C cancels the tasks, and the command line does the same end to end.

The functions below run on the cluster's workers, which import this module (the cluster is
started with this folder on ``PYTHONPATH``)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from lrkit.experiments import RunDir, Trial, TrialRecord, compare, run_trial, run_trials
from lrkit.finder.peak_choice import POSITIONS
from lrkit.finder.task import tune_task
from lrkit.tasks import get_task
from test_cli import lrkit

ray = pytest.importorskip("ray")

# one cluster for the module: under pytest-xdist (`make test` runs `--dist loadgroup`) its tests
# go to one worker
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]

HERE = Path(__file__).resolve().parent
TASK = "breast-cancer-mlp"  # a trial of 30 steps trains in a few hundredths of a second
TIMING = {"seconds", "wall_seconds", "eval_seconds", "seconds_to_target"}
"""History entries that are clock readings, not results."""


# -- the cluster -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _session(sid: int) -> list[int]:
    """The live processes of session ``sid`` (the cluster's; zombies left out)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _stop(sid: int) -> None:
    """Stop every process of the cluster: ``ray start`` ran in a session of its own, so its
    processes are exactly those of that session."""
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        for pid in _session(sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while _session(sid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _session(sid):
            return


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, int]]:
    """``(address, session id)`` of a Ray head on 127.0.0.1 with two CPUs."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the cluster's processes are found through /proc")
    tmp = tempfile.mkdtemp(prefix="lkr-", dir="/tmp")  # Ray's socket paths must stay short
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("RAY_ADDRESS", None)
    # no token authentication (Ray turns it on when ~/.ray/auth_token exists): the drivers of
    # these tests, this process among them, are not given a token
    env["RAY_AUTH_MODE"] = "disabled"
    cmd = [
        sys.executable, "-m", "ray.scripts.scripts", "start", "--head",
        "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
        "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={tmp}",
        f"--dashboard-agent-listen-port={_free_port()}",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        out, _ = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start failed:\n{out.decode(errors='replace')}")
        yield f"127.0.0.1:{port}", proc.pid
    finally:
        if ray.is_initialized():
            ray.shutdown()
        proc.kill()
        _stop(proc.pid)
        shutil.rmtree(tmp, ignore_errors=True)
    assert _session(proc.pid) == []


# -- trial functions, run on the workers ---------------------------------------------------------


def trial_fn(config: Mapping[str, Any]) -> dict[str, Any]:
    """``run_trial``, except as ``config["mode"]`` says: ``"victim"``: on its first run, write
    this worker's pid to ``config["marker"]`` and wait to be killed; ``"raise"``: raise;
    ``"crash"``: kill this worker; ``"sleep"``: write the pid and sleep a minute."""
    mode = config.get("mode")
    if mode in ("victim", "sleep"):
        marker = Path(config["marker"])
        if mode == "sleep" or not marker.exists():
            part = marker.with_suffix(".part")
            part.write_text(str(os.getpid()))
            part.replace(marker)
            time.sleep(60)
            raise RuntimeError("nobody stopped this worker")
    if mode == "raise":
        raise ValueError(f"bad config {config['seed']}")
    if mode == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    return run_trial(config)


def must_not_run(config: Mapping[str, Any]) -> dict[str, Any]:
    raise AssertionError("a finished trial ran again")


# -- helpers -------------------------------------------------------------------------------------


def _trials(seeds: range, extra: dict[int, dict[str, Any]] | None = None) -> list[Trial]:
    return [
        Trial(
            f"seed={s}",
            {
                "task": TASK,
                "seed": s,
                "optimizer": "sgd",
                "lr": 0.05,
                "steps": 30,
                "eval_every": 10,
                **(extra or {}).get(s, {}),
            },
        )
        for s in seeds
    ]


def _history(rec: TrialRecord) -> dict[str, Any]:
    return {k: v for k, v in rec.result["history"].items() if k not in TIMING}


def _kill_when_written(marker: Path, killed: list[tuple[int, str]]) -> threading.Thread:
    """A thread that SIGKILLs the pid written to ``marker`` and notes it with its title."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        pid = int(marker.read_text())
        title = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
        os.kill(pid, signal.SIGKILL)
        killed.append((pid, title))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


# -- tests ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver(cluster: tuple[str, int]) -> Iterator[tuple[str, int]]:
    """This process connected to the cluster for the module, so that the sweeps below reuse
    one connection and its warm workers (``run_trials`` keeps a connection it finds); the
    command-line tests connect by address in their own processes."""
    ray.init(address=cluster[0], logging_level="WARNING", log_to_driver=False)
    try:
        yield cluster
    finally:
        ray.shutdown()


def test_sweep_equals_the_local_one_after_a_worker_is_killed(
    driver: tuple[str, int], tmp_path: Path
) -> None:
    address, sid = driver
    marker = tmp_path / "victim.pid"
    on_ray = _trials(range(5), {2: {"mode": "victim", "marker": str(marker)}})
    killed: list[tuple[int, str]] = []
    watcher = _kill_when_written(marker, killed)
    seen: list[tuple[str, int, int]] = []
    ray_dir = RunDir(tmp_path / "ray", {"sweep": 1})
    got = run_trials(
        on_ray, trial_fn, ray_dir, backend="ray", address=address,
        progress=lambda rec, done, total: seen.append((rec.key, done, total)),
    )  # fmt: skip
    watcher.join(timeout=5)
    local_dir = RunDir(tmp_path / "local", {"sweep": 1})
    want = run_trials(_trials(range(5)), run_trial, local_dir, workers=1)

    # one worker of this cluster was killed mid-trial; its trial ran again, to the same result
    assert len(killed) == 1
    pid, title = killed[0]
    assert title.startswith("ray::") and pid not in _session(sid)
    assert [r.key for r in got] == [f"seed={s}" for s in range(5)]
    assert [r.status for r in got] == ["ok"] * 5
    assert [_history(r) for r in got] == [_history(r) for r in want]
    assert all(len(r.result["history"]["loss"]) == 30 for r in got)
    assert [(done, total) for _, done, total in seen] == [(i, 5) for i in range(1, 6)]
    assert sorted(key for key, _, _ in seen) == [r.key for r in got]

    # stored at once, one line per trial; a rerun redoes nothing and writes nothing
    lines = ray_dir.trials_file.read_text().splitlines()
    assert len(lines) == 5
    again = run_trials(on_ray, must_not_run, ray_dir, backend="ray", address=address)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in got]
    assert ray_dir.trials_file.read_text().splitlines() == lines


def test_failed_trials_are_recorded_and_the_rest_finish(
    driver: tuple[str, int], tmp_path: Path
) -> None:
    trials = _trials(range(3), {1: {"mode": "raise"}, 2: {"mode": "crash"}})
    rd = RunDir(tmp_path / "run", {"sweep": 2})
    ok, raised, crashed = run_trials(trials, trial_fn, rd, backend="ray")
    assert ok.status == "ok" and len(ok.result["history"]["loss"]) == 30
    assert raised.status == "failed" and raised.result == {}
    assert raised.error is not None and "ValueError: bad config 1" in raised.error
    assert "Traceback" in raised.error and "trial_fn" in raised.error
    assert crashed.status == "failed" and crashed.error is not None
    assert crashed.error.startswith("the worker process running this trial died 2 times")
    assert rd.failed() == {"seed=1", "seed=2"} and rd.done() == {"seed=0"}


def test_ctrl_c_cancels_the_tasks_and_keeps_what_finished(
    driver: tuple[str, int], tmp_path: Path
) -> None:
    _, sid = driver
    slow = {"mode": "sleep", "marker": str(tmp_path / "slow.pid")}
    trials = _trials(range(2), {1: slow})
    rd = RunDir(tmp_path / "run", {"sweep": 3})

    def interrupt(rec: TrialRecord, done: int, total: int) -> None:
        deadline = time.monotonic() + 60
        while not (tmp_path / "slow.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        raise KeyboardInterrupt

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_trials(trials, trial_fn, rd, backend="ray", progress=interrupt)
    assert time.monotonic() - t0 < 45  # the sleeping trial was not waited for
    assert [r.key for r in rd.records()] == ["seed=0"]
    sleeper = int((tmp_path / "slow.pid").read_text())
    deadline = time.monotonic() + 10
    while sleeper in _session(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sleeper not in _session(sid)  # its worker was stopped


def test_tune_on_ray_equals_local(driver: tuple[str, int]) -> None:
    # the range test (100 steps) and five probes: the four positions and the repeat, whose seed
    # goes to the worker with it; 576 steps at budget 0.5 leave room for probes of a sixteenth
    # of the run (36 updates): (288 - 100 - 6 / 3) // 5 = 37 (one validation batch)
    local = tune_task(TASK, total_steps=576, budget=0.5, seed=3)
    on_ray = tune_task(TASK, total_steps=576, budget=0.5, seed=3, backend="ray")
    assert len(local.probes) == len(POSITIONS) + 1
    assert on_ray.to_dict() == local.to_dict()


def test_bad_backend_arguments_fail_before_anything_is_written(
    driver: tuple[str, int], tmp_path: Path
) -> None:
    address, _ = driver
    cases: list[tuple[dict[str, Any], str]] = [
        ({"backend": "spark"}, "unknown backend 'spark'"),
        ({"address": address}, "was given with the local backend"),
        ({"resources": {"num_cpus": 2}}, "apply to the Ray backend"),
        ({"backend": "ray", "address": "nowhere"}, "must look like HOST:PORT"),
        ({"backend": "ray", "workers": 2}, "leave workers out"),
        ({"backend": "ray", "resources": {"num_cpu": 1}}, "unknown resource 'num_cpu'"),
        ({"backend": "ray", "resources": {"num_gpus": 1}}, "no node of the Ray cluster"),
    ]
    for i, (kwargs, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        with pytest.raises(ValueError, match=message):
            compare(TASK, ["sgd"], ["constant"], seeds=1, out=out, **kwargs)
        assert not out.exists()
    own = dataclasses.replace(get_task(TASK), name="my-task")  # the workers cannot load it
    with pytest.raises(ValueError, match="'my-task' is not a built-in task"):
        tune_task(own, total_steps=150, backend="ray", cache=tmp_path / "tune.json")
    assert not (tmp_path / "tune.json").exists()


def test_compare_on_ray_from_the_command_line(cluster: tuple[str, int], tmp_path: Path) -> None:
    address, _ = cluster
    out = tmp_path / "cmp"
    args = ["compare", "--task", TASK, "--optimizers", "sgd", "--schedules", "constant",
            "--seeds", "2", "--epochs", "2", "--backend", "ray"]  # fmt: skip
    proc = lrkit(*args, "--address", address, "--trial-cpus", "1", "--out", str(out), cwd=tmp_path)
    assert "sgd constant" in proc.stdout
    records = list(RunDir(out).records())
    assert sorted(r.key for r in records) == ["sgd constant/seed=0", "sgd constant/seed=1"]
    assert all(r.status == "ok" for r in records)
    for rec in records:  # the same training as here, in this process
        here = TrialRecord(rec.key, rec.config, "ok", run_trial(rec.config))
        assert _history(rec) == _history(here)

    closed = f"127.0.0.1:{_free_port()}"
    out = tmp_path / "unreachable"
    bad = lrkit(*args, "--address", closed, "--out", str(out), cwd=tmp_path, check=False)
    assert bad.returncode == 2
    assert f"no Ray cluster answers at {closed}" in " ".join(bad.stderr.split())
    assert not out.exists()
