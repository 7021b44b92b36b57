"""``lrkit run``, ``compare``, ``report``, ``tasks`` and ``demo``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table

from ._common import (
    TRIALS_FAILED,
    console,
    err_console,
    fail,
    interrupted,
    progress_bar,
    sweep_progress,
)
from .options import (
    AddressOption,
    BackendOption,
    TrialCpusOption,
    TrialGpusOption,
    backend_args,
)

if TYPE_CHECKING:
    from rich.progress import TaskID

    from ..experiments import RecipeRun
    from ..experiments.store import TrialRecord
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
    _print_speedup(run, cfg)
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


def _print_speedup(run: RecipeRun, cfg: dict[str, Any]) -> None:
    """For a run whose configuration names a ``headline`` (as the demo's): every arm's steps to
    the best rival's mean final metric and how they compare with the best rival's."""
    import numpy as np

    from ..experiments.summary import fmt_values, speedup, steps_ratio

    headline = cfg.get("headline")
    if not isinstance(headline, dict):
        return
    head = speedup(run.arms, str(headline.get("claimant")), str(headline.get("rivals")))
    if head is None:
        return
    metric = str(cfg.get("metric_name", "metric"))
    best = head.baseline.label
    base_mean = float(np.mean(head.baseline_steps))
    table = Table(
        title=f"steps to {best}'s final {metric} ({head.target:.4g}): {head.claimant.label} "
        + (f"speed-up ×{head.ratio:.2f}" if head.reached else "never reached it"),
        caption="steps: mean over seeds, at the first evaluation that reaches the target; a "
        "seed that never reaches it counts its whole budget",
    )
    for col in ("arm", "steps", f"final {metric}", "steps to target", "reached", f"vs {best}"):
        table.add_column(col, justify="left" if col == "arm" else "right", no_wrap=col == "arm")
    for arm in run.arms:
        if not arm.histories:
            continue
        mean = float(np.mean(arm.steps_to(head.target, budget=True)))
        reached = arm.reached(head.target)
        name = f"[bold]{arm.label}[/bold]" if arm in (head.claimant, head.baseline) else arm.label
        vs = steps_ratio(mean, base_mean, best, short=True)
        table.add_row(
            name + (" (best)" if arm is head.baseline else ""),
            str(arm.histories[0].total_steps),
            fmt_values(arm.final_metrics()),
            f"{mean:.0f}" if reached else "never",
            f"{reached}/{len(arm.histories)}",
            "–" if arm is head.baseline or not reached else vs,
        )
    console.print(table)


@contextmanager
def _trials_progress(description: str) -> Iterator[dict[str, Any]]:
    with sweep_progress(description) as progress:
        yield {"progress": progress, "log": _log}


@contextmanager
def _tune_and_trials_progress(description: str) -> Iterator[dict[str, Any]]:
    """One display of two bars, each appearing when its phase starts: tuning the peak (the
    range test and the probes of ``tune_lr``) and the trials. Callbacks for ``progress``,
    ``tune_progress`` and ``log`` (which recipes call between the two phases)."""
    bar = progress_bar()
    rows: dict[str, TaskID] = {}

    def row(name: str, text: str) -> TaskID:
        if not bar.live.is_started:
            bar.start()
        if name not in rows:
            rows[name] = bar.add_task(text, total=None, info="")
        return rows[name]

    def tune(done: int, total: int, lr: float, loss: float) -> None:
        info = f"lr {lr:.2e} loss {loss:.4g}"
        bar.update(row("tune", "tune the one-cycle peak"), completed=done, total=total, info=info)

    def tuned() -> None:
        if "tune" in rows:
            task = bar.tasks[rows["tune"]]
            bar.update(rows["tune"], completed=task.total or task.completed, info="done")

    def trials(rec: TrialRecord, done: int, total: int) -> None:
        tuned()
        info = f"{rec.key}: {rec.status}"
        bar.update(row("trials", description), completed=done, total=total, info=info)

    def log(line: str) -> None:
        tuned()
        _log(line)

    try:
        yield {"progress": trials, "tune_progress": tune, "log": log}
    finally:
        if bar.live.is_started:
            bar.stop()


def run_and_report(
    description: str,
    job: Callable[..., RecipeRun],
    *,
    report: bool = True,
    tune: bool = False,
    **kwargs: Any,
) -> None:
    """Run ``job(progress=..., log=..., **kwargs)`` under a progress bar (with ``tune``, a
    second bar above it for the tuning, fed by ``job``'s ``tune_progress``), print its table
    and findings, and write its report. Bad input ends with a clear message and status 2,
    failed trials with status 1, Ctrl-C with status 130 and how to resume."""
    from ..experiments import RunInterrupted, write_report

    bars = _tune_and_trials_progress if tune else _trials_progress
    try:
        with bars(description) as callbacks, _sweep_log():
            run = job(**callbacks, **kwargs)
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
    console.print(line, highlight=False, markup=False)


class _ConsoleHandler(logging.Handler):
    """Log records as lines of the command's output: information on stdout, warnings on
    stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        out = console if record.levelno < logging.WARNING else err_console
        out.print(self.format(record), highlight=False, markup=False)


@contextmanager
def _sweep_log() -> Iterator[None]:
    """Show what the sweep logs (how many trials a rerun finds done, failed trials) as
    lines of the command's output while the block runs."""
    logger = logging.getLogger("lrkit.experiments.sweep")
    handler = _ConsoleHandler()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


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


def tasks_cmd() -> None:
    """List the built-in tasks."""
    print_tasks()


def run_cmd(
    recipe: Annotated[str, typer.Argument(help="Recipe name; `lrkit run --list` lists them.")] = "",
    task: Annotated[str, typer.Option(help="Built-in task or module:function.")] = "mnist1d-cnn",
    seeds: Annotated[int, typer.Option(help="Seeds per arm.")] = 3,
    out: Annotated[Path | None, typer.Option(help="Run directory (resumable).")] = None,
    epochs: Annotated[float | None, typer.Option(help="Baseline budget in epochs.")] = None,
    peak: Annotated[float | None, typer.Option(help="Peak LR; skips the range test.")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes (default: one per core).")] = None,
    report: Annotated[bool, typer.Option(help="Write report.html at the end.")] = True,
    list_: Annotated[bool, typer.Option("--list", help="List the recipes and exit.")] = False,
    backend: BackendOption = "local",
    address: AddressOption = None,
    trial_cpus: TrialCpusOption = None,
    trial_gpus: TrialGpusOption = None,
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
        **backend_args(backend, address, trial_cpus, trial_gpus),
    )


def compare_cmd(
    task: Annotated[str, typer.Option(help="Built-in task or module:function.")] = "mnist1d-cnn",
    optimizers: Annotated[str, typer.Option(help="Comma-separated optimizer names.")] = "sgd,adam",
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
    workers: Annotated[int | None, typer.Option(help="Processes (default: one per core).")] = None,
    backend: BackendOption = "local",
    address: AddressOption = None,
    trial_cpus: TrialCpusOption = None,
    trial_gpus: TrialGpusOption = None,
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
        **backend_args(backend, address, trial_cpus, trial_gpus),
    )


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


def demo_cmd(
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/demo"),
    task: Annotated[str, typer.Option(help="Task to demonstrate on.")] = "mnist1d-cnn-paper",
    seeds: Annotated[int, typer.Option(help="Seeds per arm.")] = 3,
    epochs: Annotated[
        float | None,
        typer.Option(help="One cycle's length in epochs (default: the task's)."),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Processes (default: one per core).")] = None,
    backend: BackendOption = "local",
    address: AddressOption = None,
    trial_cpus: TrialCpusOption = None,
    trial_gpus: TrialGpusOption = None,
) -> None:
    """The README's main job: lrkit's peak against the usual LR and a grid of peaks.

    Tunes the one-cycle peak (range test and short probes) and takes the range test's
    suggestion, trains one cycle at each and at seven peaks a third of a decade apart around
    the optimizer's usual LR, prints where each choice lands against the grid's best with
    what it cost, and writes an HTML report."""
    from ..experiments import run_demo

    run_and_report(
        f"demo on {task}",
        run_demo,
        tune=True,
        task=task,
        out=out,
        seeds=seeds,
        epochs=epochs,
        workers=workers,
        **backend_args(backend, address, trial_cpus, trial_gpus),
    )
