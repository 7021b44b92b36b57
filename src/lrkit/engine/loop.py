"""The one update loop: ``steps`` optimizer updates of an :class:`~lrkit.engine.Engine`, the
schedule stepped after each, with hooks for what a caller records or decides.

The range test's sweep, the search's probes and ``fit`` are each this loop and their hooks: a
step the GradScaler skips is retried on the next batches at the same learning rate (the
schedule does not move), :data:`MAX_SKIPS` skips in a row end the loop, a non-finite loss is
never stepped on and ends it, and a hook may end it after any applied update.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from lrkit.engine.step import Engine, Update

__all__ = ["MAX_SKIPS", "Drive", "DriveStop", "Hooks", "NoHooks", "drive"]

MAX_SKIPS = 50
"""Updates the GradScaler may skip in a row (inf/NaN gradients) before the loop gives up."""

DriveStop = Literal["completed", "stopped", "nonfinite", "skipped"]
"""Why :func:`drive` returned: every update done; a hook asked to stop; a non-finite loss (the
update was not applied); :data:`MAX_SKIPS` skipped updates in a row."""


class Hooks(Protocol):
    """What :func:`drive` calls. ``step`` counts the updates applied before this one."""

    def before(self, step: int) -> None:
        """Before each try of an update (a skipped one is tried again)."""

    def skipped(self, step: int, update: Update) -> None:
        """After an update the GradScaler skipped."""

    def after(self, step: int, update: Update) -> bool:
        """After an update that was not skipped, the schedule already stepped when it was
        applied; a non-finite one (``update.status == "nonfinite"``) ends the loop whatever
        this returns. ``True`` stops the loop."""


class NoHooks:
    """Hooks that record nothing and never stop: subclass and override what you need."""

    def before(self, step: int) -> None:
        """Nothing."""

    def skipped(self, step: int, update: Update) -> None:
        """Nothing."""

    def after(self, step: int, update: Update) -> bool:
        """Never stops."""
        return False


@dataclass(frozen=True)
class Drive:
    """What :func:`drive` did: updates applied, updates tried (skipped ones included), skips in
    a row at the end, and why it returned."""

    applied: int
    updates: int
    skips: int
    stop: DriveStop


def drive(
    engine: Engine,
    stream: Iterator[Any],
    steps: int,
    hooks: Hooks,
    *,
    scheduler: Any = None,
    max_skips: int = MAX_SKIPS,
) -> Drive:
    """Apply up to ``steps`` optimizer updates of ``engine`` on the batches of ``stream``.

    After each applied update ``scheduler`` (a :class:`lrkit.Scheduler`, or ``None`` for a
    fixed learning rate) steps, then ``hooks.after`` runs and may stop the loop. A skipped
    update is tried again on the next batches (``hooks.skipped``); ``max_skips`` in a row end
    the loop, as does a non-finite loss (after ``hooks.after`` has seen it)."""
    applied = updates = skips = 0
    while applied < steps:
        hooks.before(applied)
        update = engine.update(stream)
        updates += 1
        if update.status == "skipped":
            skips += 1
            hooks.skipped(applied, update)
            if skips >= max_skips:
                return Drive(applied, updates, skips, "skipped")
            continue
        skips = 0
        if update.status == "nonfinite":
            hooks.after(applied, update)
            return Drive(applied, updates, skips, "nonfinite")
        if scheduler is not None:
            scheduler.step()
        applied += 1
        if hooks.after(applied - 1, update):
            return Drive(applied, updates, skips, "stopped")
    return Drive(applied, updates, skips, "completed")
