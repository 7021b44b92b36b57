"""Shared pieces of the command line: console, progress bars, error handling."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

if TYPE_CHECKING:
    from ..experiments.store import TrialRecord

console = Console()
err_console = Console(stderr=True)


def fail(err: BaseException) -> typer.Exit:
    """Print a clear error and return the exit to raise (status 2)."""
    err_console.print(f"[red]error:[/red] {err}")
    return typer.Exit(2)


def _bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


@contextmanager
def sweep_progress(description: str) -> Iterator[Callable[[TrialRecord, int, int], None]]:
    """A progress bar fed by :func:`lrkit.experiments.run_trials`' ``progress`` callback."""
    with _bar() as bar:
        task = bar.add_task(description, total=None, info="")

        def update(rec: TrialRecord, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, info=f"{rec.key}: {rec.status}")

        yield update


@contextmanager
def range_test_progress(description: str) -> Iterator[Callable[[int, int, float, float], None]]:
    """A progress bar fed by :func:`lrkit.range_test`'s ``progress`` callback."""
    with _bar() as bar:
        task = bar.add_task(description, total=None, info="")

        def update(done: int, total: int, lr: float, loss: float) -> None:
            bar.update(task, completed=done, total=total, info=f"lr {lr:.2e} loss {loss:.4g}")

        yield update


def fmt(x: Any, digits: int = 3) -> str:
    """A number in short form, or ``–``."""
    if x is None:
        return "–"
    return f"{float(x):.{digits}g}"
