"""``lrkit test weight-decay`` and ``lrkit test momentum``: Smith's tests, one range test per
value with all the curves on one plot."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .._files import atomic_write_text, check_writable_dir
from ..engine import distributed
from ._common import console, fmt, interrupted, range_test_progress
from .options import (
    BatchSizeOption,
    OptimizerOption,
    OutOption,
    SeedOption,
    Sweep,
    TaskOption,
)
from .where import Where, exits

if TYPE_CHECKING:
    from ..finder import HyperTestResult
    from ..finder.task import HyperName
    from ..tasks import Task

TESTS = ("weight-decay", "momentum")
"""Smith's tests, as the command line names them."""

StepsOption = Annotated[int, typer.Option(help="Optimizer updates in each value's sweep.")]
StartLrOption = Annotated[float, typer.Option(help="First LR of each sweep.")]
EndLrOption = Annotated[float, typer.Option(help="Last LR of each sweep.")]


def weight_decay_cmd(
    task: TaskOption = "mnist1d-cnn",
    optimizer: OptimizerOption = None,
    values: Annotated[
        str | None,
        typer.Option(help="Comma-separated weight decays to test (default 1e-3,1e-4,1e-5,0)."),
    ] = None,
    steps: StepsOption = 100,
    start_lr: StartLrOption = 1e-7,
    end_lr: EndLrOption = 10.0,
    batch_size: BatchSizeOption = None,
    seed: SeedOption = 0,
    out: OutOption = Path("lrkit-out"),
) -> None:
    """Smith's weight-decay test: one range test per value, all the curves on one plot.

    Print each weight decay's lowest loss and suggestion and the recommended one; write the
    plot (weight_decay_test.png) and the result (weight_decay_test.json).

    Under torchrun (torchrun --nproc_per_node=N -m lrkit test weight-decay ...) every process
    trains the model in DistributedDataParallel on its part of the data (--batch-size per
    process); the result is the same on every rank and rank 0 prints and writes it.
    """
    sweep = Sweep(optimizer, seed, batch_size, steps, 0.0, start_lr, end_lr)
    smith_test("weight-decay", task, values, out, sweep)


def momentum_cmd(
    task: TaskOption = "mnist1d-cnn",
    optimizer: OptimizerOption = None,
    values: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated momentums to test (default 0.99,0.97,0.95,0.9; beta1 for Adam)."
        ),
    ] = None,
    steps: StepsOption = 100,
    start_lr: StartLrOption = 1e-7,
    end_lr: EndLrOption = 10.0,
    batch_size: BatchSizeOption = None,
    weight_decay: Annotated[float, typer.Option(help="Weight decay during the sweeps.")] = 0.0,
    seed: SeedOption = 0,
    out: OutOption = Path("lrkit-out"),
) -> None:
    """Smith's momentum test (beta1 for Adam): one range test per value, all the curves on one
    plot.

    Print each momentum's lowest loss and suggestion and the recommended one; write the plot
    (momentum_test.png) and the result (momentum_test.json).

    Under torchrun (torchrun --nproc_per_node=N -m lrkit test momentum ...) every process
    trains the model in DistributedDataParallel on its part of the data (--batch-size per
    process); the result is the same on every rank and rank 0 prints and writes it.
    """
    sweep = Sweep(optimizer, seed, batch_size, steps, weight_decay, start_lr, end_lr)
    smith_test("momentum", task, values, out, sweep)


def smith_test(test: str, task: str, values: str | None, out: Path, sweep: Sweep) -> None:
    """Run Smith's ``test`` (one of :data:`TESTS`) on ``task`` over ``values`` (the option's
    text; default: the library's grid), as ``lrkit test`` does."""
    from ..tasks import get_task

    where = Where(out)
    with exits(where):
        check_writable_dir(out)
        grid = parse_values(values)
        t = get_task(task)
        run_test(t, test, grid, where, sweep)


def parse_values(values: str | None) -> list[float] | None:
    """The numbers of the ``--values`` option; ``ValueError`` that shows the form otherwise."""
    if values is None:
        return None
    try:
        return [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise ValueError(
            f"--values must be numbers separated by commas, e.g. 1e-3,1e-4,0; got {values!r}"
        ) from None


def run_test(t: Task, test: str, grid: list[float] | None, where: Where, sweep: Sweep) -> None:
    """Run Smith's ``test`` on task ``t`` over ``grid`` (default: the library's), write the plot
    and JSON to ``where.out``, and print each value's result and the recommended one."""
    from ..finder.task import hyper_test_task

    where.at(f"before the {test} test's first range test")
    name: HyperName = "weight_decay" if test == "weight-decay" else "momentum"
    label = name.replace("_", " ")
    tried = _grid(name, grid)

    def sweep_name(k: int) -> str:
        value = f"{label} {tried[k - 1]:g} " if k <= len(tried) else ""
        return f"the range test of {value}({k} of {len(tried)}) of the {test} test"

    with range_test_progress(f"{test} test {t.name} (one sweep per value)") as bar:
        progress = where.follow(bar, sweep_name)
        result = hyper_test_task(
            t, name, grid, sweep.optimizer, progress=progress, **sweep.kwargs()
        )
    where.at(f"after the {test} test, before its result was written")
    png, js = where.out / f"{name}_test.png", where.out / f"{name}_test.json"
    where.writing = True
    result.plot(png)
    if distributed.is_writer():
        atomic_write_text(js, json.dumps(result.to_dict(), indent=1))
    where.writing = False
    where.at(f"after the {test} test")
    where.written = f"{png} and {js} were written"
    if any(res.stop_reason == "interrupted" for res in result.results):
        k, last = len(result.values), result.results[-1]
        raise interrupted(
            f"in the range test of {label} {result.values[-1]:g} ({k} of {len(tried)}) of the "
            f"{test} test, after {len(last.lrs)} of its {sweep.steps} steps; the partial curves "
            f"are in {png} and {js}; no value is recommended"
        )
    print_test(t, result, label)
    console.print(f"wrote {png} and {js}")


def print_test(t: Task, result: HyperTestResult, label: str) -> None:
    """Each value's lowest loss and suggestion as a table, and the recommended value (of the
    hyperparameter called ``label``)."""
    table = Table(title=f"{label} test on {t.name}")
    for col in (label, "lowest loss (smoothed)", "lrkit lr", "stopped"):
        table.add_column(col)
    for value, res, low in zip(result.values, result.results, result.lowest, strict=True):
        mark = " (best)" if result.best is not None and value == result.best else ""
        table.add_row(f"{value:g}{mark}", fmt(low, 4), fmt(res.suggestion), res.stop_reason)
    console.print(table)
    if result.best is None:
        console.print(f"[yellow]no recommendation:[/yellow] {escape(result.reason)}")
    else:
        console.print(f"recommended {label}: {result.best:g} ({escape(result.reason)})")


def _grid(name: HyperName, grid: list[float] | None) -> list[float]:
    """The values Smith's test runs: ``grid``, else the library's default grid."""
    if grid is not None:
        return grid
    from ..finder.hyper import momentum_test, weight_decay_test

    test, arg = (
        (weight_decay_test, "weight_decays")
        if name == "weight_decay"
        else (momentum_test, "momentums")
    )
    return [float(v) for v in inspect.signature(test).parameters[arg].default]
