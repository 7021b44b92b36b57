"""The ``lrkit`` typer app: the commands of :mod:`lrkit.cli`, registered on one ``Typer``."""

from __future__ import annotations

import typer

from ..engine import distributed
from . import batch as _batch
from . import experiments as _experiments
from . import find as _find
from . import schedule as _schedule
from ._common import fail, reflow_help

app = typer.Typer(
    name="lrkit",
    help="Find a learning rate, schedule it, and show the effect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


DISTRIBUTED_COMMANDS = ("find",)
"""The commands that run under ``torchrun`` (every rank takes part in one range test or
search); the others run their work in one process."""


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Find a learning rate, schedule it, and show the effect."""
    command = ctx.invoked_subcommand
    if distributed.is_distributed() and command not in DISTRIBUTED_COMMANDS:
        raise fail(
            ValueError(
                f"`lrkit {command}` does not run under torchrun ({distributed.world()} "
                f"processes); run it with plain `lrkit {command}` (under torchrun: "
                f"{', '.join(DISTRIBUTED_COMMANDS)})"
            )
        )


_schedule.register(app)
_find.register(app)
_experiments.register(app)
_batch.register(app)
reflow_help(app)
