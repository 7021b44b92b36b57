"""Files written so that a crash never leaves half of one behind, output paths checked before
the work starts, and the lock that keeps two processes out of one folder."""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "FolderInUse",
    "atomic_write",
    "atomic_write_text",
    "check_writable_dir",
    "check_writable_file",
    "exclusive_lock",
]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it and rename it over
    ``path``, so a reader (or a resumed run) sees the old file or the new one, never a partial
    write, even if the process is killed mid-write. The folder is created when missing."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # the mode a plain open() would give, not mkstemp's 0600
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(target.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover - file systems that refuse to sync a directory
        pass
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write` of UTF-8 text."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def check_writable_dir(path: str | os.PathLike[str]) -> Path:
    """Raise ``ValueError`` unless ``path`` is a folder this process can write in, or one that
    can be created (its nearest existing ancestor is a writable folder). Nothing is created."""
    target = Path(path)
    probe = target
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        if probe == target:
            raise ValueError(f"{target} is a file, not a folder; give a folder for the output")
        raise ValueError(f"cannot create the folder {target}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(
            f"cannot write to {target}: the folder {probe} is read-only for this user; "
            "give a folder you can write to"
        )
    return target


def check_writable_file(path: str | os.PathLike[str]) -> Path:
    """Raise ``ValueError`` unless ``path`` can be written as a file: not a folder, in a folder
    that exists or can be created, and not a read-only file. Nothing is created."""
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{target} is a folder; give a file name for the output")
    check_writable_dir(target.parent)
    if target.exists() and not os.access(target, os.W_OK):
        raise ValueError(f"cannot write to {target}: the file is read-only for this user")
    return target


class FolderInUse(ValueError):
    """Another process holds the lock of a folder."""


_HELD: dict[Path, int] = {}


@contextmanager
def exclusive_lock(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold an exclusive OS lock (``flock``) on the file ``path`` while the block runs.

    The file records who holds it (pid, host, command, start time); a second process gets
    :class:`FolderInUse` naming the holder. The OS releases the lock when its holder exits, even
    when killed, so a file left behind by a dead process never blocks anyone. Taking the lock
    again in the process that holds it is allowed (the lock is re-entrant per process). On
    platforms without ``flock`` (Windows) no lock is taken. ``what`` names the locked thing in
    the message.
    """
    key = Path(path).resolve()
    if key in _HELD or sys.platform == "win32":
        _HELD[key] = _HELD.get(key, 0) + 1
        try:
            yield
        finally:
            _release(key)
        return
    import fcntl

    key.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderInUse(
                f"{what} is in use by another lrkit process ({_holder(fd)}); wait for it to end "
                f"or stop it, or choose another folder (lock file: {key})"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(sys.argv),
            "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
        _HELD[key] = 1
        try:
            yield
        finally:
            _release(key)
    finally:
        os.close(fd)


def _release(key: Path) -> None:
    _HELD[key] -= 1
    if not _HELD[key]:
        del _HELD[key]


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"pid {info['pid']} on {info['host']}, started {info['started']}: {info['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "no details recorded yet"
