"""``lrkit find``: the LR range test on a built-in task or the user's own.

The options that made ``find`` run the search (``--budget``, now ``lrkit tune``) or Smith's
tests (``--test``, now ``lrkit test``) still work for a release: hidden from the help, they
print what to use instead and then do what they did.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .._files import check_writable_dir
from ..engine import distributed
from ._common import console, err_console, fail, fmt, interrupted, range_test_progress
from .hyper import TESTS, parse_values, run_test
from .options import (
    BatchSizeOption,
    EndLrOption,
    OptimizerOption,
    OutOption,
    SeedOption,
    StartLrOption,
    Sweep,
    TaskOption,
)
from .tune import run_tune
from .where import Where, exits

if TYPE_CHECKING:
    from ..finder import RangeTestResult
    from ..tasks import Task


def find_cmd(
    task: TaskOption = "mnist1d-cnn",
    optimizer: OptimizerOption = None,
    steps: Annotated[int, typer.Option(help="Optimizer updates in the sweep.")] = 100,
    repeats: Annotated[
        int, typer.Option(help="Sweeps with different data orders (uncertainty band).")
    ] = 1,
    start_lr: StartLrOption = 1e-7,
    end_lr: EndLrOption = 10.0,
    batch_size: BatchSizeOption = None,
    weight_decay: Annotated[float, typer.Option(help="Weight decay during the sweep.")] = 0.0,
    seed: SeedOption = 0,
    out: OutOption = Path("lrkit-out"),
    test: Annotated[str | None, typer.Option(hidden=True)] = None,
    values: Annotated[str | None, typer.Option(hidden=True)] = None,
    budget: Annotated[float | None, typer.Option(hidden=True)] = None,
    total_steps: Annotated[int | None, typer.Option(hidden=True)] = None,
    backend: Annotated[str | None, typer.Option(hidden=True)] = None,
    address: Annotated[str | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run the LR range test, print the suggestions and bounds, write the plot and JSON.

    To search for the peak of a one-cycle run use `lrkit tune`; for Smith's weight-decay and
    momentum tests, `lrkit test weight-decay` and `lrkit test momentum`.

    Under torchrun (torchrun --nproc_per_node=N -m lrkit find ...) every process trains the
    model in DistributedDataParallel on its part of the data (--batch-size per process);
    the result is the same on every rank and rank 0 prints and writes it.
    """
    from ..tasks import get_task

    sweep = Sweep(optimizer, seed, batch_size, steps, weight_decay, start_lr, end_lr)
    old = OldOptions(test, values, budget, total_steps, backend, address)
    if old.given():
        find_with_old_options(task, sweep, repeats, out, old)
        return
    where = Where(out)
    with exits(where):
        check_writable_dir(out)
        t = get_task(task)
        result = run_range_test(t, where, sweep, repeats)
    finish_range_test(t, result, where, steps)


def run_range_test(t: Task, where: Where, sweep: Sweep, repeats: int) -> RangeTestResult:
    """The range test of task ``t`` under a progress bar, noting its steps in ``where``."""
    from ..finder.task import find_lr

    where.at("before the range test started")
    with range_test_progress(f"range test {t.name}") as bar:
        progress = where.follow(bar, _lr_sweep)
        return find_lr(t, sweep.optimizer, repeats=repeats, progress=progress, **sweep.kwargs())


def finish_range_test(t: Task, result: RangeTestResult, where: Where, steps: int) -> None:
    """Write the plot and JSON of a range test of ``steps`` steps to ``where.out``, then print
    its suggestions and bounds, or what Ctrl-C left behind."""
    out = where.out
    try:
        where.at("after the range test, before its result was written")
        if distributed.is_writer():
            out.mkdir(parents=True, exist_ok=True)
        where.writing = True
        result.plot(out / "range_test.png")
        result.to_json(out / "range_test.json")
        where.writing = False
    except KeyboardInterrupt:
        raise interrupted(where.message()) from None
    if result.stop_reason == "interrupted":
        raise interrupted(
            f"the range test stopped after {len(result.lrs)} of {steps} steps; "
            f"the partial curve is in {out / 'range_test.png'} and "
            f"{out / 'range_test.json'}; an interrupted test suggests no learning rate"
        )
    print_range_test(t, result)
    console.print(f"wrote {out / 'range_test.png'} and {out / 'range_test.json'}")


def print_range_test(t: Task, result: RangeTestResult) -> None:
    """The suggestion of every rule as a table, and the bounds of the default one (or why it
    suggests nothing)."""
    from ..finder import METHODS

    console.print(
        f"{t.name}: {len(result.lrs)} steps, stopped: {result.stop_reason}", highlight=False
    )
    table = Table(title="suggested learning rates")
    for col in ("rule", "lr", "band (10–90%)", "how"):
        table.add_column(col)
    for method in METHODS:
        sug = result.suggest(method)
        band = f"{fmt(sug.low)} – {fmt(sug.high)}" if sug.low is not None else "–"
        name = f"{method} (default)" if method == "lrkit" else method
        table.add_row(name, fmt(sug.lr), band, escape(sug.reason))
    console.print(table)
    if result.suggestion is None:
        console.print(f"[yellow]no suggestion:[/yellow] {escape(result.suggestion_reason)}")
        return
    bounds = Table(title="bounds (base, peak)")
    bounds.add_column("for")
    bounds.add_column("base")
    bounds.add_column("peak")
    for kind in ("one_cycle", "cyclic"):
        base, peak = result.bounds(kind)
        bounds.add_row(kind, fmt(base), fmt(peak))
    console.print(bounds)


def _lr_sweep(k: int) -> str:
    """The name of the ``k``-th sweep of ``lrkit find``'s range test (1 first)."""
    return "the range test" if k == 1 else "the range test's second, longer sweep"


@dataclass(frozen=True)
class OldOptions:
    """The options with which ``lrkit find`` ran the search or Smith's tests before ``lrkit
    tune`` and ``lrkit test`` did; ``None`` where not given."""

    test: str | None
    values: str | None
    budget: float | None
    total_steps: int | None
    backend: str | None
    address: str | None

    def given(self) -> bool:
        """Whether any of them was given."""
        return any(value is not None for value in astuple(self))

    def deprecation(self) -> str:
        """The warning that names the command to use instead."""
        if self.budget is not None:
            old, new = "--budget", "`lrkit tune`"
        elif self.test in TESTS:
            old, new = f"--test {self.test}", f"`lrkit test {self.test}`"
        elif self.test == "lr":
            old, new = "--test lr", "`lrkit find`"
        elif self.test is not None:
            old, new = "--test", "`lrkit test weight-decay` or `lrkit test momentum`"
        elif self.values is not None:
            old = "--values"
            new = "`lrkit test weight-decay --values` or `lrkit test momentum --values`"
        else:
            given = (("total-steps", self.total_steps), ("backend", self.backend))
            old = next((f"--{n}" for n, v in given if v is not None), "--address")
            new = f"`lrkit tune {old}`"
        return f"`lrkit find {old}` is deprecated; use {new}"

    def check(self, test: str, grid: list[float] | None) -> None:
        """``ValueError`` for an option given without the one it goes with."""
        if grid is not None and test == "lr":
            raise ValueError("--values applies to --test weight-decay or momentum only")
        if self.budget is not None and test != "lr":
            raise ValueError("--budget applies to --test lr only")
        if self.total_steps is not None and self.budget is None:
            raise ValueError("--total-steps applies with --budget")
        if (self.backend not in (None, "local") or self.address is not None) and (
            self.budget is None
        ):
            raise ValueError(
                "--backend and --address apply with --budget (the search's probes run on "
                "Ray; a range test runs here)"
            )


def find_with_old_options(
    task: str, sweep: Sweep, repeats: int, out: Path, old: OldOptions
) -> None:
    """``lrkit find`` given :class:`OldOptions`: print what to use instead, then do what it did
    with them (the range test, the search or Smith's test)."""
    from ..tasks import get_task

    err_console.print(f"warning: {old.deprecation()}", highlight=False, markup=False)
    test = old.test or "lr"
    if test not in ("lr", *TESTS):
        raise fail(ValueError(f"--test must be lr, weight-decay or momentum, not {test!r}"))
    where = Where(out)
    with exits(where):
        check_writable_dir(out)
        grid = parse_values(old.values)
        old.check(test, grid)
        t = get_task(task)
        if old.budget is not None:
            run_tune(
                t,
                task,
                where,
                optimizer=sweep.optimizer,
                budget=old.budget,
                total_steps=old.total_steps,
                seed=sweep.seed,
                batch_size=sweep.batch_size,
                weight_decay=sweep.weight_decay,
                backend=old.backend or "local",
                address=old.address,
            )
            return
        if test != "lr":
            run_test(t, test, grid, where, sweep)
            return
        result = run_range_test(t, where, sweep, repeats)
    finish_range_test(t, result, where, sweep.steps)
