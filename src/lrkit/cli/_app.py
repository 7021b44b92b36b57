"""The ``lrkit`` typer app: the commands of :mod:`lrkit.cli`, registered on one ``Typer``."""

from __future__ import annotations

import typer

from ..engine import distributed
from ._common import fail, reflow_help
from .batch import largest_batch_cmd
from .experiments import compare_cmd, demo_cmd, report_cmd, run_cmd, tasks_cmd
from .find import find_cmd
from .hyper import momentum_cmd, weight_decay_cmd
from .schedule import schedule_cmd
from .tune import tune_cmd

app = typer.Typer(
    name="lrkit",
    help="Find a learning rate, schedule it, and show the effect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


DISTRIBUTED_COMMANDS = ("find", "tune", "test")
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


test_app = typer.Typer(
    name="test",
    help="Smith's tests of weight decay and momentum: one range test per value, all the curves "
    "on one plot, and the value to use.",
    no_args_is_help=True,
)
test_app.command("weight-decay")(weight_decay_cmd)
test_app.command("momentum")(momentum_cmd)

app.command("schedule")(schedule_cmd)
app.command("find")(find_cmd)
app.command("tune")(tune_cmd)
app.add_typer(test_app)
app.command("tasks")(tasks_cmd)
app.command("run")(run_cmd)
app.command("compare")(compare_cmd)
app.command("report")(report_cmd)
app.command("demo")(demo_cmd)
app.command("largest-batch")(largest_batch_cmd)
reflow_help(app)
