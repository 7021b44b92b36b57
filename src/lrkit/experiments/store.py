"""A run directory: the configuration it was made for, and one durable JSON line per trial."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._files import atomic_write_text

__all__ = ["RunDir", "TrialRecord", "atomic_write_text"]

CONFIG = "config.json"
TRIALS = "trials.jsonl"


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
    than mixed. A line cut short by a crash mid-write is ignored when reading (that trial simply
    runs again).
    """

    def __init__(self, path: str | os.PathLike[str], config: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.config: dict[str, Any]
        cfg_file = self.path / CONFIG
        if config is None:
            if not cfg_file.exists():
                raise ValueError(
                    f"{self.path} is not an lrkit run directory (no {CONFIG}); run a recipe or "
                    "sweep with --out pointing here first"
                )
            self.config = json.loads(cfg_file.read_text())
            return
        wanted = json.loads(json.dumps(dict(config)))
        if cfg_file.exists():
            existing = json.loads(cfg_file.read_text())
            if existing != wanted:
                diff = sorted(
                    k for k in set(existing) | set(wanted) if existing.get(k) != wanted.get(k)
                )
                raise ValueError(
                    f"{self.path} holds results of another configuration (differs in: "
                    f"{', '.join(diff)}); choose another output folder or delete this one. "
                    "Results of different configurations are never mixed."
                )
        else:
            self.path.mkdir(parents=True, exist_ok=True)
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

    def done(self) -> set[str]:
        """Keys of trials already finished (ok, diverged or failed)."""
        return {r.key for r in self.records()}

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
