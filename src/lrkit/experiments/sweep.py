"""Run a grid of trials on a local process pool or on a Ray cluster, storing each the moment it
ends."""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from .._extras import require
from .._ray import (
    MAX_CRASHES,
    Backend,
    Resources,
    ResourcesLike,
    check_backend,
    collect,
    ray_session,
    remote_task,
)
from .store import RunDir, TrialRecord, locked

__all__ = [
    "Resources",
    "Trial",
    "TrialProgressFn",
    "check_placement",
    "check_workers",
    "default_workers",
    "run_trials",
]

log = logging.getLogger(__name__)

TrialFn = Callable[[Mapping[str, Any]], Mapping[str, Any]]
TrialProgressFn = Callable[[TrialRecord, int, int], None]
"""``progress(record, done, total)`` after each finished trial (the finder's
:data:`lrkit.finder.range_test.ProgressFn` reports the updates of one search instead)."""
Outcome = tuple[str, dict[str, Any], str | None, float]


@dataclass(frozen=True)
class Trial:
    """One configuration to run; ``key`` names it uniquely inside its run directory."""

    key: str
    config: Mapping[str, Any]


def default_workers() -> int:
    """Processes for a sweep: one per core (at least one)."""
    return max(1, os.cpu_count() or 1)


def _call(fn: TrialFn, config: Mapping[str, Any], threads: int | None) -> Outcome:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        result = dict(fn(config))
    except Exception:
        return "failed", {}, traceback.format_exc(limit=20), time.perf_counter() - t0
    status = "diverged" if result.get("diverged") else "ok"
    return status, result, None, time.perf_counter() - t0


_PR_SET_PDEATHSIG = 1
_WATCH_SECONDS = 1.0


def _init_worker(parent: int) -> None:
    """Set up a pool worker of process ``parent``.

    Ctrl-C reaches the whole process group; the parent alone decides what happens, and stops
    the workers itself, so the workers ignore SIGINT. A worker also ends with its parent,
    however the parent ends (SIGKILL included), instead of waiting forever for work: on Linux
    the kernel sends it SIGTERM when the parent dies (``PR_SET_PDEATHSIG``), and everywhere a
    daemon thread checks every second that its parent is still ``parent``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl here: the watchdog below still works
            pass
    if os.getppid() != parent:  # the parent died before the worker was set up
        os._exit(1)
    threading.Thread(
        target=_watch_parent, args=(parent,), name="lrkit-parent-watch", daemon=True
    ).start()


def _watch_parent(parent: int) -> None:
    """End this process as soon as ``parent`` is no longer its parent (it died)."""
    while os.getppid() == parent:
        time.sleep(_WATCH_SECONDS)
    os._exit(1)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    procs = list(pool._processes.values())
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(timeout=5)
    pool.shutdown(wait=False, cancel_futures=True)


def _died(detail: str = "") -> Outcome:
    """The outcome of a trial whose worker died :data:`MAX_CRASHES` times."""
    error = (
        f"the worker process running this trial died {MAX_CRASHES} times (killed, out of "
        "memory, or a crash in native code)"
    )
    return "failed", {}, error + (f": {detail}" if detail else ""), 0.0


def _run_pool(
    todo: Sequence[Trial], fn: TrialFn, n: int, store: Callable[[Trial, Outcome], None]
) -> None:
    crashes: dict[str, int] = {}
    queue = list(todo)
    ctx = mp.get_context("spawn")
    while queue:
        with ProcessPoolExecutor(
            max_workers=n, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),)
        ) as pool:
            pending: dict[Future[Outcome], Trial] = {}
            broken = False
            try:
                while (queue and not broken) or pending:
                    while queue and not broken and len(pending) < n:
                        # a trial that was running when a worker died runs alone next time,
                        # so that only the trial that kills workers is blamed
                        suspects = [t for t in [queue[0], *pending.values()] if t.key in crashes]
                        if suspects and pending:
                            break
                        try:
                            fut = pool.submit(_call, fn, queue[0].config, 1)
                        except BrokenProcessPool:  # a worker died since the last wait
                            broken = True
                            break
                        pending[fut] = queue.pop(0)
                    ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in ready:
                        trial = pending.pop(fut)
                        try:
                            store(trial, fut.result())
                        except BrokenProcessPool:
                            broken = True
                            crashes[trial.key] = crashes.get(trial.key, 0) + 1
                            if crashes[trial.key] >= MAX_CRASHES:
                                store(trial, _died())
                            else:
                                queue.insert(0, trial)
            except BaseException:
                for fut in pending:
                    fut.cancel()
                _stop_workers(pool)
                raise


def _run_ray(
    todo: Sequence[Trial],
    fn: TrialFn,
    resources: Resources,
    store: Callable[[Trial, Outcome], None],
) -> None:
    ray = require("ray", "ray", "the Ray backend")
    task = remote_task(ray, _call, resources)
    fn_ref = ray.put(fn)
    refs = {task.remote(fn_ref, trial.config, resources.threads): trial for trial in todo}

    def done(ref: Any) -> None:
        try:
            outcome: Outcome = ray.get(ref)
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as err:
            outcome = _died(type(err).__name__)
        except ray.exceptions.RayError as err:  # e.g. fn cannot be loaded on the worker
            outcome = "failed", {}, str(err), 0.0
        store(refs[ref], outcome)

    collect(ray, list(refs), done)


def run_trials(
    trials: Sequence[Trial],
    fn: TrialFn,
    run_dir: RunDir,
    *,
    workers: int | None = None,
    progress: TrialProgressFn | None = None,
    backend: Backend = "local",
    address: str | None = None,
    resources: ResourcesLike | None = None,
) -> list[TrialRecord]:
    """Run every trial not yet done in ``run_dir`` and return all records, in trial order.

    ``fn(config) -> dict`` must be a module-level function (it is pickled to the workers). A trial
    whose result has ``diverged: True`` is stored as diverged; one that raises is stored as failed
    with its traceback, and the sweep goes on. Restarting with the same trials redoes nothing that
    finished ok or diverged, and runs the failed trials again (their new record replaces the
    old), as well as any stored trial whose configuration is not the one its key has now (the
    code that builds the trials changed). ``workers=1`` runs in this process (useful for
    debugging). While it runs, the run directory is locked: a second process sweeping it gets
    ``ValueError`` naming this one.

    Ctrl-C (``KeyboardInterrupt``) stops the workers and propagates; what finished is stored.
    The pool's workers end with this process however it ends (killed with SIGKILL included).
    A rerun that finds finished trials logs ``"resuming: N of M trials already done in
    RUN_DIR"`` (level INFO, logger ``lrkit.experiments.sweep``) before it starts the others.

    When a worker process dies (killed, out of memory, a crash in native code), the pool is
    rebuilt and the trials it was running are queued again; a trial that takes a worker down
    twice is stored as failed. Scripts that call this must guard their entry point with
    ``if __name__ == "__main__":``, as for any spawned process pool.

    ``backend="ray"`` runs each trial as a Ray task on the cluster at ``address`` (``None``:
    the ``RAY_ADDRESS`` environment variable, else a Ray instance started on this machine for
    the sweep), reserving ``resources`` (:class:`~lrkit.experiments.Resources` or a dict;
    default one CPU) per trial; ``workers`` does not apply. The results store is the same:
    each trial is stored as it finishes, a rerun redoes nothing finished, a trial that raises
    is stored as failed. A trial whose worker process or node is lost runs again (Ray's
    ``max_retries``); one that is lost twice is stored as failed. Ctrl-C cancels the tasks not
    finished and keeps what finished. ``fn`` must be importable on the cluster's nodes (or
    defined in the ``__main__`` script, which Ray ships by value). A bad backend, an address
    that does not answer or resources no node has raise ``ValueError`` before anything is
    written.
    """
    keys = [t.key for t in trials]
    if len(set(keys)) != len(keys):
        raise ValueError("trial keys must be unique within a sweep")
    res = check_placement(workers, backend, address, resources)
    session = ray_session(address, res) if res is not None else nullcontext()
    with session, locked(run_dir.path):
        return _run_trials(trials, fn, run_dir, workers, progress, res)


def _same(stored: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    """Whether a stored record's configuration is ``config`` (compared as the JSON it is
    stored as)."""
    as_json = functools.partial(json.dumps, sort_keys=True, default=str)
    return bool(as_json(dict(stored)) == as_json(dict(config)))


def check_placement(
    workers: int | None, backend: str, address: str | None, resources: ResourcesLike | None
) -> Resources | None:
    """Check where trials run, before anything runs: ``workers`` for the local pool
    (:func:`check_workers`), or the Ray backend's arguments (:func:`lrkit._ray.check_backend`),
    not both. Returns the resources of one Ray task, or ``None`` for the local pool."""
    check_workers(workers)
    res = check_backend(backend, address, resources)
    if res is not None and workers is not None:
        raise ValueError(
            "workers sets the processes of the local pool; on Ray each trial reserves its "
            "resources instead (resources=..., --trial-cpus, --trial-gpus), so leave workers out"
        )
    return res


def check_workers(workers: int | None) -> None:
    """``ValueError`` unless ``workers`` is ``None`` (one per core) or a whole number >= 1."""
    if workers is None:
        return
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(
            f"workers must be a whole number of processes >= 1 (or left out for one per core), "
            f"got {workers!r}"
        )


def _run_trials(
    trials: Sequence[Trial],
    fn: TrialFn,
    run_dir: RunDir,
    workers: int | None,
    progress: TrialProgressFn | None,
    resources: Resources | None = None,
) -> list[TrialRecord]:
    keys = [t.key for t in trials]
    done = run_dir.finished()
    stale = [t.key for t in trials if t.key in done and not _same(done[t.key].config, t.config)]
    if stale:
        log.warning(
            "%d stored trial(s) were run with another configuration (e.g. %s); running them again",
            len(stale),
            stale[0],
        )
    todo = [t for t in trials if t.key not in done or t.key in stale]
    total, finished = len(trials), len(trials) - len(todo)
    if finished:
        log.info("resuming: %d of %d trials already done in %s", finished, total, run_dir.path)
    n = min(workers or default_workers(), max(1, len(todo)))

    def store(trial: Trial, outcome: Outcome) -> None:
        nonlocal finished
        status, result, error, seconds = outcome
        rec = TrialRecord(trial.key, dict(trial.config), status, result, error, seconds)
        run_dir.append(rec)
        finished += 1
        if error:
            log.warning("trial %s failed: %s", trial.key, error.strip().splitlines()[-1])
        if progress is not None:
            progress(rec, finished, total)

    if resources is not None:
        if todo:
            _run_ray(todo, fn, resources, store)
    elif n <= 1:
        for trial in todo:
            store(trial, _call(fn, trial.config, None))
    elif todo:
        _run_pool(todo, fn, n, store)
    by_key = {r.key: r for r in run_dir.records()}
    return [by_key[k] for k in keys if k in by_key]
