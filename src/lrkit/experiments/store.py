"""A run directory: the configuration it was made for, and one durable JSON line per trial."""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._files import atomic_write_text, exclusive_lock

__all__ = ["RunDir", "TrialRecord", "atomic_write_text", "check_config", "locked", "read_config"]

CONFIG = "config.json"
TRIALS = "trials.jsonl"
LOCK = ".lock"


@dataclass
class TrialRecord:
    """One finished trial: its key, configuration, status and result (or error)."""

    key: str
    config: dict[str, Any]
    status: str  # "ok", "diverged" or "failed"
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (one line of ``trials.jsonl``)."""
        return {
            "key": self.key,
            "config": self.config,
            "status": self.status,
            "result": self.result,
            "error": self.error,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialRecord:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            key=str(d["key"]),
            config=dict(d["config"]),
            status=str(d["status"]),
            result=dict(d.get("result") or {}),
            error=d.get("error"),
            seconds=float(d.get("seconds", 0.0)),
        )


class RunDir:
    """A folder holding ``config.json`` and ``trials.jsonl``.

    Every trial is appended to ``trials.jsonl`` and fsync'd the moment it ends, so an interrupted
    sweep loses nothing that finished. A folder made for another configuration is refused rather
    than mixed, except that the keys named in ``extendable`` may change between runs: a larger
    number (more seeds) or a longer list (more optimizers) adds trials beside the finished ones,
    and ``config.json`` keeps the largest number and every list item seen. A line cut short by a
    crash mid-write is ignored when reading (that trial simply runs again).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: Mapping[str, Any] | None = None,
        *,
        extendable: Collection[str] = (),
    ):
        self.path = Path(path)
        self.config: dict[str, Any]
        cfg_file = self.path / CONFIG
        if config is None:
            if not cfg_file.exists():
                raise ValueError(
                    f"{self.path} is not an lrkit run directory (no {CONFIG}); run a recipe or "
                    "sweep with --out pointing here first"
                )
            self.config = read_config(self.path)
            return
        existing = check_config(self.path, config, extendable=extendable)
        wanted = _plain(config)
        if existing is not None:
            wanted = {**existing, **wanted}
            for key in extendable:
                if key in existing:
                    wanted[key] = _extend(existing[key], wanted.get(key))
        if wanted != existing:
            atomic_write_text(cfg_file, json.dumps(wanted, indent=2, sort_keys=True))
        self.config = wanted

    @property
    def trials_file(self) -> Path:
        """Path of the JSON-lines file of finished trials."""
        return self.path / TRIALS

    def records(self) -> Iterator[TrialRecord]:
        """Finished trials, in the order they ended (later duplicates of a key win)."""
        if not self.trials_file.exists():
            return
        latest: dict[str, TrialRecord] = {}
        with open(self.trials_file, encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break  # cut short by a crash mid-write
                try:
                    rec = TrialRecord.from_dict(json.loads(line))
                except (ValueError, KeyError):
                    continue
                latest.pop(rec.key, None)
                latest[rec.key] = rec
        yield from latest.values()

    def finished(self) -> dict[str, TrialRecord]:
        """The latest record of each trial that finished ok or diverged, by key."""
        return {r.key: r for r in self.records() if r.status != "failed"}

    def done(self) -> set[str]:
        """Keys of trials that need not run again: finished ok or diverged. A failed trial is
        not done; a sweep over the same trials runs it again."""
        return set(self.finished())

    def failed(self) -> set[str]:
        """Keys of trials whose latest run failed."""
        return {r.key for r in self.records() if r.status == "failed"}

    def append(self, record: TrialRecord) -> None:
        """Store one finished trial durably (write, flush, fsync)."""
        self.path.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record.to_dict(), allow_nan=True) + "\n"
        with open(self.trials_file, "a", encoding="utf-8") as fh:
            if fh.tell() > 0 and not self._ends_with_newline():
                fh.write("\n")
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def _ends_with_newline(self) -> bool:
        with open(self.trials_file, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.json`` of run directory ``path``; a file that cannot be read or parsed raises
    ``ValueError`` naming it."""
    cfg_file = Path(path) / CONFIG
    try:
        data = json.loads(cfg_file.read_text(encoding="utf-8"))
    except OSError as err:
        raise ValueError(f"cannot read {cfg_file}: {err.strerror or err}") from None
    except ValueError as err:
        data = err
    if not isinstance(data, dict):
        why = f"not valid JSON: {data}" if isinstance(data, ValueError) else "not a JSON object"
        raise ValueError(
            f"{cfg_file} is corrupt ({why}); delete it and run the same command again (the "
            f"finished trials in {TRIALS} are kept and reused), or choose another folder"
        )
    return data


def check_config(
    path: str | os.PathLike[str], config: Mapping[str, Any], *, extendable: Collection[str] = ()
) -> dict[str, Any] | None:
    """Check, without writing anything, that run directory ``path`` may hold results of
    ``config``: it has no ``config.json`` yet, or one that differs at most in the keys named in
    ``extendable``. Returns the stored configuration (``None`` when there is none); a folder made
    for another configuration raises ``ValueError`` naming the keys that differ."""
    folder = Path(path)
    if not (folder / CONFIG).exists():
        return None
    existing = read_config(folder)
    wanted = _plain(config)
    diff = sorted(
        k
        for k in set(existing) | set(wanted)
        if k not in extendable and existing.get(k) != wanted.get(k)
    )
    if diff:
        raise ValueError(
            f"{folder} holds results of another configuration (differs in: {', '.join(diff)}); "
            "choose another output folder or delete this one. Results of different "
            "configurations are never mixed."
        )
    return existing


@contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[None]:
    """Keep other processes out of run directory ``path`` while the block runs: a second
    process gets :class:`~lrkit._files.FolderInUse` (a ``ValueError``) naming the holder. The
    lock is released when the process ends, however it ends."""
    folder = Path(path)
    with exclusive_lock(folder / LOCK, f"the run directory {folder}"):
        yield


def _plain(config: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(dict(config)))
    return out


def _extend(old: Any, new: Any) -> Any:
    if isinstance(old, list) and isinstance(new, list):
        return old + [x for x in new if x not in old]
    if isinstance(old, int) and isinstance(new, int):
        return max(old, new)
    return new
