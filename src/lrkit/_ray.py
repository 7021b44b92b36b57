"""The Ray backend of the sweeps and of the search's probes: which backend, the resources of one
task, the connection to a cluster, and collecting tasks as they finish.

Ray is the ``lrkit[ray]`` extra; nothing here imports it until a connection is opened.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from lrkit._extras import require
from lrkit.tasks import Task, get_task, task_names
from lrkit.tasks.builtin import BUILTIN_TASKS

__all__ = [
    "BACKENDS",
    "MAX_CRASHES",
    "Backend",
    "Resources",
    "ResourcesLike",
    "check_backend",
    "collect",
    "ray_session",
    "remote_task",
    "worker_spec",
]

log = logging.getLogger(__name__)

Backend = Literal["local", "ray"]
"""Where trials and probes run: ``"local"`` (this machine's process pool, or this process) or
``"ray"`` (Ray tasks on a cluster)."""

BACKENDS = ("local", "ray")

MAX_CRASHES = 2
"""A trial (or probe) whose worker process dies this many times fails: the local pool stores
it as failed, and on Ray a task is rerun after a lost worker or node ``MAX_CRASHES - 1``
times."""

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a Ray cluster's address to answer before calling it unreachable."""


@dataclass(frozen=True)
class Resources:
    """What one Ray task (a trial, or a probe of the search) reserves on its node.

    Attributes:
        num_cpus: CPU cores (default 1); the task runs torch on this many threads (at least 1).
        num_gpus: GPUs (default 0); a fraction lets tasks share one GPU.
        memory: bytes of memory to reserve, or ``None`` to reserve none.

    Ray starts a task only on a node where these are free, so they also bound how many tasks
    run at once. A dict with the same keys is accepted wherever a ``Resources`` is.
    """

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int | None = None

    def __post_init__(self) -> None:
        for name, low in (("num_cpus", 0.0), ("num_gpus", 0.0)):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < low
            ):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.num_cpus == 0 and self.num_gpus == 0:
            raise ValueError("a task needs some resource: give num_cpus > 0 or num_gpus > 0")
        if self.memory is not None and (
            isinstance(self.memory, bool) or not isinstance(self.memory, int) or self.memory < 1
        ):
            raise ValueError(f"memory must be a whole number of bytes >= 1, got {self.memory!r}")

    @classmethod
    def of(cls, value: ResourcesLike | None) -> Resources:
        """``value`` as :class:`Resources` (``None``: one CPU); a dict may hold the keys
        ``num_cpus``, ``num_gpus`` and ``memory``."""
        if value is None:
            return cls()
        if isinstance(value, Resources):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(
                f"resources must be lrkit Resources or a dict with num_cpus, num_gpus and "
                f"memory, got {type(value).__name__}"
            )
        unknown = sorted(set(value) - {"num_cpus", "num_gpus", "memory"})
        if unknown:
            raise ValueError(
                f"unknown resource {', '.join(map(repr, unknown))}; give num_cpus, num_gpus or "
                "memory (bytes)"
            )
        return cls(**value)

    @property
    def threads(self) -> int:
        """Torch threads of a task: its whole CPUs, at least one."""
        return max(1, int(self.num_cpus))

    def options(self) -> dict[str, Any]:
        """The keyword arguments of Ray's ``.options()`` that reserve these resources."""
        out: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory is not None:
            out["memory"] = self.memory
        return out


ResourcesLike = Resources | Mapping[str, Any]
""":class:`Resources`, or a dict of its fields."""


def check_backend(
    backend: str, address: str | None, resources: ResourcesLike | None
) -> Resources | None:
    """Check the backend arguments without connecting anywhere; the resources of one task on
    Ray, or ``None`` for the local backend. Raises ``ValueError`` (``TypeError`` for a wrong
    type) that says what to give instead."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use 'local' or 'ray'")
    if backend == "local":
        if address is not None:
            raise ValueError(
                f"a Ray address ({address!r}) was given with the local backend; add "
                "backend='ray' (--backend ray) to run on that cluster, or leave the address out"
            )
        if resources is not None:
            raise ValueError(
                "resources per trial apply to the Ray backend; add backend='ray' (--backend "
                "ray), or leave them out (the local pool runs one trial per process)"
            )
        return None
    if address is not None:
        _split_address(address)
    return Resources.of(resources)


def _split_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a cluster address, or ``None`` for ``"auto"`` and ``"local"``."""
    if not isinstance(address, str):
        raise TypeError(f"address must be a string such as '127.0.0.1:6379', got {address!r}")
    if address in ("auto", "local"):
        return None
    rest = address.removeprefix("ray://")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"Ray address {address!r} must look like HOST:PORT (the address `ray start --head` "
            "prints, e.g. 127.0.0.1:6379), 'auto' or 'local'"
        )
    return host.strip("[]"), int(port)


def _check_reachable(address: str) -> None:
    where = _split_address(address)
    if where is None:
        return
    try:
        with socket.create_connection(where, timeout=CONNECT_TIMEOUT):
            pass
    except OSError as err:
        raise ValueError(
            f"no Ray cluster answers at {address} ({err.strerror or err}); start one with "
            "`ray start --head` and pass the address it prints, or leave the address out to "
            "start a Ray instance on this machine"
        ) from None


@contextmanager
def ray_session(address: str | None, resources: Resources) -> Iterator[ModuleType]:
    """Connect to Ray for the block and yield the ``ray`` module.

    ``address`` names the cluster; ``None`` takes the ``RAY_ADDRESS`` environment variable, and
    without it starts a Ray instance on this machine for the block. When this process is
    already connected (``ray.is_initialized()``), that connection is used and kept. An address
    that does not answer, or a cluster on which no node has ``resources``, raises
    ``ValueError`` before the block runs.
    """
    ray = require("ray", "ray", "the Ray backend")
    target = address if address is not None else os.environ.get("RAY_ADDRESS") or "local"
    started = False
    if not ray.is_initialized():
        _check_reachable(target)
        try:
            if target == "local":
                ray.init(
                    address="local",
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
            else:
                ray.init(address=target, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise ValueError(f"cannot connect to the Ray cluster at {target}: {err}") from err
        started = True
        log.info("connected to Ray at %s", target)
    try:
        _check_fits(ray, resources)
        yield ray
    finally:
        if started:
            ray.shutdown()


def _check_fits(ray: ModuleType, resources: Resources) -> None:
    need = {"CPU": resources.num_cpus, "GPU": resources.num_gpus}
    if resources.memory is not None:
        need["memory"] = float(resources.memory)
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(all(node.get(k, 0.0) >= v for k, v in need.items() if v > 0) for node in nodes):
        return
    largest = {k: max((node.get(k, 0.0) for node in nodes), default=0.0) for k in need}
    raise ValueError(
        "no node of the Ray cluster can run a task that needs "
        + ", ".join(f"{v:g} {k}" for k, v in need.items() if v > 0)
        + " (the largest node has "
        + ", ".join(f"{v:g} {k}" for k, v in largest.items())
        + "); ask for less per trial (--trial-cpus, --trial-gpus) or add a larger node"
    )


def remote_task(ray: ModuleType, fn: Callable[..., Any], resources: Resources) -> Any:
    """``fn`` as a Ray remote function reserving ``resources`` per call. A lost worker process
    or node is a system failure: Ray runs the task again, until its worker has died
    :data:`MAX_CRASHES` times; an exception raised by ``fn`` is not retried."""
    return ray.remote(fn).options(
        **resources.options(), max_retries=MAX_CRASHES - 1, retry_exceptions=False
    )


def collect(
    ray: ModuleType, refs: Sequence[Any], done: Callable[[Any], None], *, poll: float = 1.0
) -> None:
    """Call ``done(ref)`` for each of ``refs`` as its task finishes, in the order they finish.
    When the loop stops early (``done`` raises, Ctrl-C), the tasks not yet finished are
    cancelled (their workers stopped) and the exception propagates."""
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=poll)
            for ref in ready:
                done(ref)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def worker_spec(task: Task | str) -> str:
    """The spec a Ray worker loads ``task`` from: a built-in task's name, or
    ``"module:function"`` (a file path made absolute). A task registered in this process only
    cannot be loaded there: ``ValueError``."""
    if isinstance(task, Task):
        if task.name in BUILTIN_TASKS:
            return task.name
        raise ValueError(
            f"backend='ray' loads the task on each Ray worker, and {task.name!r} is not a "
            "built-in task; pass its 'module:function' spec (importable on the workers) "
            "instead of the Task, or run the search locally"
        )
    if task in BUILTIN_TASKS:
        return task
    module, sep, attr = task.rpartition(":")
    if not sep:
        if task not in task_names():
            get_task(task)  # an unknown name: its error lists the known tasks
        raise ValueError(
            f"backend='ray' loads the task on each Ray worker, and {task!r} is registered in "
            "this process only; give a built-in task or a 'module:function' spec importable on "
            "the workers, or run the search locally"
        )
    if module.endswith(".py"):
        return f"{Path(module).resolve()}:{attr}"
    return task
