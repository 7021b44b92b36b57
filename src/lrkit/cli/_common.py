"""Shared pieces of the command line: console, progress bars, error handling."""

from __future__ import annotations

import inspect
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

if TYPE_CHECKING:
    from ..experiments.store import TrialRecord

FILE_WIDTH = 200
"""Columns of the output written to a file or a pipe when ``COLUMNS`` does not say: wide enough
that tables and progress lines are never cut (rich would assume 80)."""


def _readable(console: Console) -> Console:
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = FILE_WIDTH
    return console


console = _readable(Console())
err_console = _readable(Console(stderr=True))


BAD_INPUT = 2
"""Exit status for bad input: an invalid option, a missing or unwritable file."""
TRIALS_FAILED = 1
"""Exit status of an experiment in which some trials failed."""
INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it; after SIGTERM it is 143."""

_stopped_by: list[int] = []


def _stop(signum: int, frame: FrameType | None) -> None:
    _stopped_by.append(signum)
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Make SIGTERM and SIGINT stop a command as Ctrl-C does (``KeyboardInterrupt``: the
    workers are stopped, what finished is kept, and the command says how to resume), SIGINT
    also where the process started with it ignored (a background job of a shell script);
    :func:`interrupted` then exits with 128 + the signal's number. Call it in the main
    thread."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)


def fail(err: BaseException) -> typer.Exit:
    """Print a clear error and return the exit to raise (status 2)."""
    err_console.print(Text.assemble(("error:", "red"), f" {err}"), highlight=False)
    return typer.Exit(BAD_INPUT)


def interrupted(message: str) -> typer.Exit:
    """Print what Ctrl-C (or SIGTERM) left behind and return the exit to raise: status 130,
    or 128 + the number of the signal that stopped the command (143 for SIGTERM)."""
    err_console.print(f"interrupted: {message}", highlight=False, markup=False)
    return typer.Exit(128 + _stopped_by[-1] if _stopped_by else INTERRUPTED)


PLOT_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
"""File types the plots can be written as (the type is taken from the suffix)."""


def check_plot_file(path: Path, option: str = "--out") -> None:
    """``ValueError`` unless ``path`` is a writable file with a plot suffix; nothing is written."""
    from .._files import check_writable_file

    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise ValueError(
            f"{option} {path}: the plot's file type comes from its suffix, and "
            f"{path.suffix or 'no suffix'!r} is not one; use one of {', '.join(PLOT_SUFFIXES)}"
        )
    check_writable_file(path)


def reflow_help(app: typer.Typer) -> None:
    """Join the lines of each paragraph of every command's help, its groups' commands too, so
    that the help wraps at the terminal's width, not at the docstring's line breaks."""
    for info in app.registered_commands:
        text = info.help or (inspect.getdoc(info.callback) if info.callback else None)
        if text:
            paragraphs = inspect.cleandoc(text).split("\n\n")
            info.help = "\n\n".join(" ".join(p.split()) for p in paragraphs)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            reflow_help(group.typer_instance)


def progress_bar() -> Progress:
    """Progress bars on stderr; written to a file or pipe (where rich prints each task's line
    once, when the display stops), a line per phase without the bar and the time left."""
    live = err_console.is_terminal
    return Progress(
        TextColumn("[bold]{task.description}"),
        *([BarColumn()] if live else []),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}", markup=False),
        TimeElapsedColumn(),
        *([TimeRemainingColumn()] if live else []),
        console=err_console,
        transient=False,
    )


@contextmanager
def sweep_progress(description: str) -> Iterator[Callable[[TrialRecord, int, int], None]]:
    """A progress bar fed by :func:`lrkit.experiments.run_trials`' ``progress`` callback; it
    appears with the first finished trial, so bad input shows its error alone."""
    bar = progress_bar()
    task = bar.add_task(description, total=None, info="")

    def update(rec: TrialRecord, done: int, total: int) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(task, completed=done, total=total, info=f"{rec.key}: {rec.status}")

    try:
        yield update
    finally:
        if bar.live.is_started:
            bar.stop()


@contextmanager
def range_test_progress(description: str) -> Iterator[Callable[[int, int, float, float], None]]:
    """A progress bar fed by :func:`lrkit.range_test`'s ``progress`` callback."""
    with progress_bar() as bar:
        task = bar.add_task(description, total=None, info="")

        def update(done: int, total: int, lr: float, loss: float) -> None:
            bar.update(task, completed=done, total=total, info=f"lr {lr:.2e} loss {loss:.4g}")

        yield update


def fmt(x: Any, digits: int = 3) -> str:
    """A number in short form, or ``–``."""
    if x is None:
        return "–"
    return f"{float(x):.{digits}g}"
