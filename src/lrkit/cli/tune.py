"""``lrkit tune``: search for the peak of a one-cycle run (:func:`lrkit.tune_lr` on a task)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from .._files import check_writable_dir
from ..engine import distributed
from ._common import console, fmt, range_test_progress
from .options import (
    AddressOption,
    BackendOption,
    BatchSizeOption,
    OptimizerOption,
    OutOption,
    SeedOption,
    TaskOption,
)
from .where import Where, exits

if TYPE_CHECKING:
    from ..finder import TuneResult
    from ..tasks import Task

BudgetOption = Annotated[
    float,
    typer.Option(
        help="Fraction of one training run to spend on the search, range test and probes "
        "together (e.g. 0.5)."
    ),
]
TotalStepsOption = Annotated[
    int | None, typer.Option(help="The length of the run to tune for (default: the task's).")
]


def tune_cmd(
    task: TaskOption = "mnist1d-cnn",
    optimizer: OptimizerOption = None,
    budget: BudgetOption = 0.5,
    total_steps: TotalStepsOption = None,
    batch_size: BatchSizeOption = None,
    weight_decay: Annotated[
        float, typer.Option(help="Weight decay of the run (range test and probes).")
    ] = 0.0,
    seed: SeedOption = 0,
    out: OutOption = Path("lrkit-out"),
    backend: BackendOption = "local",
    address: AddressOption = None,
) -> None:
    """Search for the peak of a one-cycle run: a range test, then short runs of the schedule
    scored on the task's validation metric.

    The search (lrkit.tune_lr) spends --budget of one training run of --total-steps steps; it
    prints the probes and the chosen peak, and writes the plot (tune.png) and the result
    (tune.json).

    Under torchrun (torchrun --nproc_per_node=N -m lrkit tune ...) every process trains the
    model in DistributedDataParallel on its part of the data (--batch-size per process); the
    result is the same on every rank and rank 0 prints and writes it.
    """
    from ..tasks import get_task

    where = Where(out)
    with exits(where):
        check_writable_dir(out)
        t = get_task(task)
        run_tune(
            t,
            task,
            where,
            optimizer=optimizer,
            budget=budget,
            total_steps=total_steps,
            seed=seed,
            batch_size=batch_size,
            weight_decay=weight_decay,
            backend=backend,
            address=address,
        )


def run_tune(
    t: Task,
    spec: str,
    where: Where,
    *,
    optimizer: str | None,
    budget: float,
    total_steps: int | None,
    seed: int,
    batch_size: int | None,
    weight_decay: float,
    backend: str,
    address: str | None,
) -> None:
    """Tune the one-cycle peak of task ``t`` (named ``spec`` on the command line, which the Ray
    workers load), write the plot and JSON to ``where.out``, and print the probes and the
    choice."""
    from ..finder.task import tune_task

    where.at("before the search started, while the task was set up")
    placement: dict[str, Any] = {"backend": backend, "address": address}
    with range_test_progress(f"tune {t.name} (budget {budget:g} of a run)") as progress:
        result = tune_task(
            t if backend == "local" else spec,
            optimizer,
            budget=budget,
            seed=seed,
            batch_size=batch_size,
            total_steps=total_steps,
            weight_decay=weight_decay,
            progress=progress,
            **placement,
        )
    where.at("after the search, before its result was written")
    out = where.out
    if distributed.is_writer():
        out.mkdir(parents=True, exist_ok=True)
    png, js = out / "tune.png", out / "tune.json"
    where.writing = True
    result.plot(png)
    result.to_json(js)
    where.writing = False
    where.at("after the search")
    where.written = f"{png} and {js} were written"
    print_tune(t, result)
    console.print(f"wrote {png} and {js}")


def print_tune(t: Task, result: TuneResult) -> None:
    """The probes of a search as a table, the chosen peak and how it was chosen."""
    better = "higher" if result.maximize else "lower"
    table = Table(title=f"probes on {t.name} ({result.score_name}, {better} is better)")
    for col in ("peak", "steps", result.score_name, "round"):
        table.add_column(col)
    for p in result.probes:
        score = "diverged" if p.diverged else fmt(p.score, 4)
        table.add_row(fmt(p.peak), str(p.steps), score, str(p.round))
    console.print(table)
    console.print(
        f"tuned one-cycle peak for {result.total_steps} steps: [bold]{fmt(result.peak)}[/bold] "
        f"(range test suggestion {fmt(result.range_test.suggestion)}); spent "
        f"{result.spent:.2f} of a run (budget {result.budget:g})",
        highlight=False,
    )
    console.print(f"how: {result.reason}", highlight=False, markup=False)
