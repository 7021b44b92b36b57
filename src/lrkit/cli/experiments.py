"""``lrkit run``, ``compare``, ``report``, ``tasks`` and ``demo``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ._common import console, fail, sweep_progress

if TYPE_CHECKING:
    from ..experiments import RecipeRun


def print_run(run: RecipeRun) -> None:
    """The summary table and findings of a finished recipe."""
    from ..experiments.report import summary_rows

    table = Table(title=f"{run.recipe}: mean ± std over seeds")
    for col in ("arm", "final metric", "steps to task target", "reached", "train seconds"):
        table.add_column(col, justify="left" if col == "arm" else "right")
    for row in summary_rows(run.arms):
        table.add_row(
            row["arm"], row["final"], row["steps_to_target"], row["reached"], row["seconds"]
        )
    console.print(table)
    for line in run.findings:
        console.print(f"• {line}", highlight=False)


def run_and_report(
    description: str, job: Callable[..., RecipeRun], *, report: bool = True, **kwargs: Any
) -> None:
    """Run ``job(progress=..., log=..., **kwargs)`` under a progress bar, print its table and
    findings, and write its report; bad input ends with a clear message and status 2."""
    from ..experiments import write_report

    try:
        with sweep_progress(description) as progress:
            run = job(progress=progress, log=_log, **kwargs)
    except (ValueError, TypeError) as err:
        raise fail(err) from err
    print_run(run)
    if report:
        console.print(f"wrote {write_report(run.run_dir)}")


def _log(line: str) -> None:
    console.print(line, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the experiment commands to ``app``."""

    @app.command("tasks")
    def tasks_cmd() -> None:
        """List the built-in tasks."""
        from ..tasks import get_task, task_names

        table = Table(title="built-in tasks")
        for col in ("name", "kind", "metric", "optimizer", "batch", "epochs", "description"):
            table.add_column(col)
        for name in task_names():
            t = get_task(name)
            table.add_row(
                name,
                t.kind,
                t.metric_name,
                t.optimizer,
                str(t.batch_size),
                str(t.epochs),
                t.description,
            )
        console.print(table)

    @app.command("run")
    def run_cmd(
        recipe: Annotated[
            str, typer.Argument(help="Recipe name; `lrkit run --list` lists them.")
        ] = "",
        task: Annotated[
            str, typer.Option(help="Built-in task or module:function.")
        ] = "mnist1d-cnn",
        seeds: Annotated[int, typer.Option(help="Seeds per arm.")] = 3,
        out: Annotated[Path | None, typer.Option(help="Run directory (resumable).")] = None,
        epochs: Annotated[float | None, typer.Option(help="Baseline budget in epochs.")] = None,
        peak: Annotated[float | None, typer.Option(help="Peak LR; skips the range test.")] = None,
        workers: Annotated[
            int | None, typer.Option(help="Processes (default: one per core).")
        ] = None,
        report: Annotated[bool, typer.Option(help="Write report.html at the end.")] = True,
        list_: Annotated[bool, typer.Option("--list", help="List the recipes and exit.")] = False,
    ) -> None:
        """Run a recipe from the literature on a task, over several seeds."""
        from ..experiments import RECIPES, run_recipe

        if list_ or not recipe:
            for r in RECIPES.values():
                console.print(f"[bold]{r.name}[/bold]: {r.claim}\n    [dim]{r.source}[/dim]")
            return
        run_and_report(
            f"{recipe} on {task}",
            run_recipe,
            report=report,
            name=recipe,
            task=task,
            seeds=seeds,
            out=out,
            epochs=epochs,
            peak=peak,
            workers=workers,
        )

    @app.command("compare")
    def compare_cmd(
        task: Annotated[
            str, typer.Option(help="Built-in task or module:function.")
        ] = "mnist1d-cnn",
        optimizers: Annotated[
            str, typer.Option(help="Comma-separated optimizer names.")
        ] = "sgd,adam",
        schedules: Annotated[
            str,
            typer.Option(
                help="Comma-separated: constant, one-cycle, triangular, triangular2, "
                "cosine, warmup-cosine, step."
            ),
        ] = "constant,one-cycle",
        seeds: Annotated[int, typer.Option(help="Seeds per arm.")] = 3,
        out: Annotated[Path | None, typer.Option(help="Run directory (resumable).")] = None,
        epochs: Annotated[float | None, typer.Option(help="Budget in epochs.")] = None,
        peak: Annotated[float | None, typer.Option(help="Peak LR; skips the range tests.")] = None,
        workers: Annotated[
            int | None, typer.Option(help="Processes (default: one per core).")
        ] = None,
    ) -> None:
        """An ad-hoc grid of optimizers × schedules × seeds."""
        from ..experiments import compare

        run_and_report(
            f"compare on {task}",
            compare,
            task=task,
            optimizers=[o.strip() for o in optimizers.split(",") if o.strip()],
            schedules=[x.strip() for x in schedules.split(",") if x.strip()],
            seeds=seeds,
            out=out,
            epochs=epochs,
            peak=peak,
            workers=workers,
        )

    @app.command("report")
    def report_cmd(
        run_dir: Annotated[Path, typer.Argument(help="A run directory made by run/compare/demo.")],
        out: Annotated[
            Path | None, typer.Option(help="HTML path (default RUN_DIR/report.html).")
        ] = None,
    ) -> None:
        """Write one self-contained HTML report of a run directory."""
        from ..experiments import write_report

        try:
            path = write_report(run_dir, out)
        except (ValueError, TypeError) as err:
            raise fail(err) from err
        console.print(f"wrote {path}")

    @app.command("demo")
    def demo_cmd(
        out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/demo"),
        task: Annotated[str, typer.Option(help="Task to demonstrate on.")] = "mnist1d-cnn",
        seeds: Annotated[int, typer.Option(help="Seeds per arm.")] = 2,
        workers: Annotated[
            int | None, typer.Option(help="Processes (default: one per core).")
        ] = None,
    ) -> None:
        """The README's main job: range test, one-cycle at the suggested peak against a
        constant LR, a table, and an HTML report."""
        from ..experiments import run_demo

        run_and_report(
            f"demo on {task}", run_demo, task=task, out=out, seeds=seeds, workers=workers
        )
