"""The ``lrkit`` command line: a thin layer that parses options and calls the library.

The command line is the ``lrkit[cli]`` extra (typer, rich, matplotlib). The typer app lives in
:mod:`lrkit.cli._app` and is imported by :func:`main` (or as ``lrkit.cli.app``), so that without
the extra the ``lrkit`` command says what to install instead of failing with a traceback.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from lrkit._extras import MissingExtraError, require

if TYPE_CHECKING:
    import typer

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``lrkit`` console script and ``python -m lrkit``.

    A missing optional dependency (the ``cli`` extra itself, or ``tasks``/``plot`` for a command
    that needs one) prints one line naming the extra and exits with status 1.

    Launched by ``torchrun`` (``WORLD_SIZE`` > 1), it joins the process group first
    (:func:`lrkit.engine.distributed.init_from_env`), only rank 0 prints, and the group is
    destroyed on exit.

    SIGTERM, and SIGINT sent to this process alone, stop a command as Ctrl-C does; it exits
    with 128 + the signal's number (130, 143).
    """
    from lrkit.engine import distributed

    try:
        for module in ("typer", "rich"):
            require(module, "cli", "the lrkit command")
        from lrkit.cli._app import app
        from lrkit.cli._common import console, err_console, stop_on_signals

        stop_on_signals()
        joined = distributed.init_from_env()
        try:
            if not distributed.is_writer():
                console.quiet = err_console.quiet = True
            app()
        finally:
            if joined:
                distributed.close()
    except MissingExtraError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def __getattr__(name: str) -> typer.Typer:
    if name == "app":
        from lrkit.cli._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
