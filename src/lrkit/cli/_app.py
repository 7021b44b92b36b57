"""The ``lrkit`` typer app: the commands of :mod:`lrkit.cli`, registered on one ``Typer``."""

from __future__ import annotations

import typer

from . import experiments as _experiments
from . import find as _find
from . import schedule as _schedule
from ._common import reflow_help

app = typer.Typer(
    name="lrkit",
    help="Find a learning rate, schedule it, and show the effect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Find a learning rate, schedule it, and show the effect."""


_schedule.register(app)
_find.register(app)
_experiments.register(app)
reflow_help(app)
