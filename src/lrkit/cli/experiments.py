"""``lrkit run``, ``compare``, ``report``, ``tasks`` and ``demo``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table

from ._common import TRIALS_FAILED, console, err_console, fail, interrupted, sweep_progress

if TYPE_CHECKING:
    from ..experiments import RecipeRun
    from ..experiments.summary import Arm


def _status(arm: Arm) -> str:
    order = ("ok", "diverged", "failed")
    counts = sorted(
        arm.statuses.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 9
    )
    return ", ".join(f"{n} {status}" for status, n in counts)


def print_run(run: RecipeRun) -> None:
    """The summary table and findings of a finished recipe, and the errors of failed trials."""
    from ..experiments.report import summary_rows, task_target
    from ..experiments.store import read_config

    cfg = read_config(run.run_dir)
    goal = task_target(str(cfg.get("metric_name", "metric")), cfg.get("target"))
    table = Table(title=f"{run.recipe}: mean ± std over seeds")
    cols = ("arm", "trials", "final metric", f"steps to {goal}", "reached", "train seconds")
    for col in cols:
        table.add_column(
            col, justify="left" if col in ("arm", "trials") else "right", no_wrap=col == "arm"
        )
    for arm, row in zip(run.arms, summary_rows(run.arms), strict=True):
        table.add_row(
            row["arm"],
            _status(arm),
            row["final"],
            row["steps_to_target"],
            row["reached"],
            row["seconds"],
        )
    console.print(table)
    for line in run.findings:
        console.print(f"• {line}", highlight=False)
    failed = run.failed
    if failed:
        err_console.print(f"[red]{len(failed)} of {len(run.records)} trials failed:[/red]")
        for rec in failed:
            lines = (rec.error or "no error recorded").strip().splitlines()
            err_console.print(f"  {rec.key}: {lines[-1]}", highlight=False, markup=False)
        err_console.print(
            f"Each full traceback is in {run.run_dir / 'trials.jsonl'}. Fix the cause and run the "
            "same command again: the failed trials run again, the finished ones are kept.",
            highlight=False,
        )


def run_and_report(
    description: str, job: Callable[..., RecipeRun], *, report: bool = True, **kwargs: Any
) -> None:
    """Run ``job(progress=..., log=..., **kwargs)`` under a progress bar, print its table and
    findings, and write its report. Bad input ends with a clear message and status 2, failed
    trials with status 1, Ctrl-C with status 130 and how to resume."""
    from ..experiments import RunInterrupted, write_report

    try:
        with sweep_progress(description) as progress:
            run = job(progress=progress, log=_log, **kwargs)
    except (ValueError, TypeError) as err:
        raise fail(err) from err
    except RunInterrupted as stop:
        raise interrupted(
            f"{stop}; run the same command again to resume (finished trials are kept)"
        ) from None
    except KeyboardInterrupt:
        raise interrupted("nothing was run") from None
    print_run(run)
    if report:
        console.print(f"wrote {write_report(run.run_dir)}")
    if run.failed:
        raise typer.Exit(TRIALS_FAILED)


def _log(line: str) -> None:
    console.print(line, highlight=False)


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def print_tasks() -> None:
    """The built-in tasks: a table of their settings with the descriptions beside them, or
    below them when the terminal is too narrow; task names are never cut."""
    from ..tasks import get_task, task_names

    cols = ("name", "kind", "metric", "optimizer", "batch", "epochs")
    rows = []
    for name in task_names():
        t = get_task(name)
        rows.append((name, t.kind, t.metric_name, t.optimizer, str(t.batch_size), str(t.epochs), t))
    table = Table(title="built-in tasks", box=box.SIMPLE_HEAD, pad_edge=False)
    for i, col in enumerate(cols):
        width = max([len(col)] + [len(str(r[i])) for r in rows])
        table.add_column(col, no_wrap=True, min_width=width)
    beside = console.width >= console.measure(table).maximum + 40
    if beside:
        table.add_column("description", overflow="fold", ratio=1)
    for *cells, t in rows:
        table.add_row(*map(str, cells), *([t.description] if beside else []))
    console.print(table)
    if not beside:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for *cells, t in rows:
            grid.add_row(str(cells[0]), t.description)
        console.print(grid)


def register(app: typer.Typer) -> None:
    """Add the experiment commands to ``app``."""

    @app.command("tasks")
    def tasks_cmd() -> None:
        """List the built-in tasks."""
        print_tasks()

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
            optimizers=_names(optimizers),
            schedules=_names(schedules),
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
        from .._files import check_writable_file
        from ..experiments import write_report

        try:
            check_writable_file(out if out is not None else run_dir / "report.html")
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
        """The README's main job: tune the one-cycle peak (range test and short probes), train
        one cycle at it against a constant LR, a table, and an HTML report."""
        from ..experiments import run_demo

        run_and_report(
            f"demo on {task}", run_demo, task=task, out=out, seeds=seeds, workers=workers
        )
