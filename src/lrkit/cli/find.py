"""``lrkit find``: the LR range test on a built-in task or the user's own."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from .._files import atomic_write_text, check_writable_dir
from ..engine import distributed
from ._common import (
    AddressOption,
    BackendOption,
    console,
    fail,
    fmt,
    interrupted,
    range_test_progress,
)

if TYPE_CHECKING:
    from ..finder.task import HyperName
    from ..tasks import Task


def register(app: typer.Typer) -> None:
    """Add the ``find`` command to ``app``."""

    @app.command("find")
    def find_cmd(
        task: Annotated[
            str, typer.Option(help="Built-in task (see `lrkit tasks`) or module:function.")
        ] = "mnist1d-cnn",
        optimizer: Annotated[
            str | None, typer.Option(help="Optimizer name (default: the task's).")
        ] = None,
        steps: Annotated[int, typer.Option(help="Optimizer updates in the sweep.")] = 100,
        repeats: Annotated[
            int, typer.Option(help="Sweeps with different data orders (uncertainty band).")
        ] = 1,
        start_lr: Annotated[float, typer.Option(help="First LR of the sweep.")] = 1e-7,
        end_lr: Annotated[float, typer.Option(help="Last LR of the sweep.")] = 10.0,
        batch_size: Annotated[
            int | None, typer.Option(help="Batch size (default: the task's).")
        ] = None,
        weight_decay: Annotated[float, typer.Option(help="Weight decay during the sweep.")] = 0.0,
        seed: Annotated[int, typer.Option(help="Model and data-order seed.")] = 0,
        out: Annotated[
            Path, typer.Option(help="Folder for the plot (PNG) and the result (JSON).")
        ] = Path("lrkit-out"),
        test: Annotated[
            str,
            typer.Option(
                help="What to test: 'lr' (the range test), or Smith's 'weight-decay' or "
                "'momentum' test (one range test per value, all curves on one plot)."
            ),
        ] = "lr",
        values: Annotated[
            str | None,
            typer.Option(
                help="Comma-separated values for --test weight-decay (default 1e-3,1e-4,1e-5,0) "
                "or momentum (default 0.99,0.97,0.95,0.9; beta1 for Adam)."
            ),
        ] = None,
        budget: Annotated[
            float | None,
            typer.Option(
                help="Search for the one-cycle peak with this fraction of one training run "
                "(e.g. 0.5): a range test, then short runs of the schedule scored on the "
                "validation metric (lrkit.tune_lr)."
            ),
        ] = None,
        total_steps: Annotated[
            int | None,
            typer.Option(
                help="With --budget: the length of the run to tune for (default: the task's)."
            ),
        ] = None,
        backend: BackendOption = "local",
        address: AddressOption = None,
    ) -> None:
        """Run the LR range test, print the suggestions and bounds, write the plot and JSON.

        With --test weight-decay or --test momentum, run Smith's test instead and print each
        value's lowest loss and suggestion with the recommended value. With --budget, search for
        the peak of the one-cycle run itself and print the probes and the choice.

        Under torchrun (torchrun --nproc_per_node=N -m lrkit find ...) every process trains the
        model in DistributedDataParallel on its part of the data (--batch-size per process);
        the result is the same on every rank and rank 0 prints and writes it.
        """
        from ..finder import METHODS
        from ..finder.search import TuneInterrupted
        from ..finder.task import find_lr
        from ..tasks import get_task

        if test not in ("lr", "weight-decay", "momentum"):
            raise fail(ValueError(f"--test must be lr, weight-decay or momentum, not {test!r}"))
        where = _Where(out)
        try:
            check_writable_dir(out)
            grid = _parse_values(values)
            if grid is not None and test == "lr":
                raise ValueError("--values applies to --test weight-decay or momentum only")
            if budget is not None and test != "lr":
                raise ValueError("--budget applies to --test lr only")
            if total_steps is not None and budget is None:
                raise ValueError("--total-steps applies with --budget")
            if (backend != "local" or address is not None) and budget is None:
                raise ValueError(
                    "--backend and --address apply with --budget (the search's probes run on "
                    "Ray; a range test runs here)"
                )
            t = get_task(task)
            if budget is not None:
                where.at("before the search started, while the task was set up")
                placement = {"backend": backend, "address": address}
                spec: Task | str = t if backend == "local" else task
                _tune(
                    t,
                    optimizer,
                    budget,
                    total_steps,
                    seed,
                    batch_size,
                    weight_decay,
                    out,
                    spec,
                    placement,
                    where,
                )
                return
            if test != "lr":
                where.at(f"before the {test} test's first range test")
                _hyper(
                    t,
                    test,
                    grid,
                    optimizer,
                    seed,
                    batch_size,
                    steps,
                    weight_decay,
                    start_lr,
                    end_lr,
                    out,
                    where,
                )
                return
            where.at("before the range test started")
            with range_test_progress(f"range test {t.name}") as bar:
                progress = where.follow(bar, _lr_sweep)
                result = find_lr(
                    t,
                    optimizer,
                    seed=seed,
                    batch_size=batch_size,
                    steps=steps,
                    repeats=repeats,
                    weight_decay=weight_decay,
                    start_lr=start_lr,
                    end_lr=end_lr,
                    progress=progress,
                )
        except (ValueError, TypeError) as err:
            raise fail(err) from err
        except TuneInterrupted as err:
            raise interrupted(f"{err.where}; nothing was written") from None
        except KeyboardInterrupt:
            raise interrupted(where.message()) from None
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
            table.add_row(name, fmt(sug.lr), band, sug.reason)
        console.print(table)
        if result.suggestion is None:
            console.print(f"[yellow]no suggestion:[/yellow] {result.suggestion_reason}")
        else:
            bounds = Table(title="bounds (base, peak)")
            bounds.add_column("for")
            bounds.add_column("base")
            bounds.add_column("peak")
            for kind in ("one_cycle", "cyclic"):
                base, peak = result.bounds(kind)
                bounds.add_row(kind, fmt(base), fmt(peak))
            console.print(bounds)
        console.print(f"wrote {out / 'range_test.png'} and {out / 'range_test.json'}")


def _tune(
    t: Task,
    optimizer: str | None,
    budget: float,
    total_steps: int | None,
    seed: int,
    batch_size: int | None,
    weight_decay: float,
    out: Path,
    spec: Task | str,
    placement: dict[str, Any],
    where: _Where,
) -> None:
    from ..finder.task import tune_task

    with range_test_progress(f"tune {t.name} (budget {budget:g} of a run)") as progress:
        result = tune_task(
            spec,
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
    if distributed.is_writer():
        out.mkdir(parents=True, exist_ok=True)
    png, js = out / "tune.png", out / "tune.json"
    where.writing = True
    result.plot(png)
    result.to_json(js)
    where.writing = False
    where.at("after the search")
    where.written = f"{png} and {js} were written"
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
    console.print(f"how: {result.reason}", highlight=False)
    console.print(f"wrote {png} and {js}")


class _Where:
    """How far ``lrkit find`` got, for the message after Ctrl-C: what it was doing (the step of
    the range test it was in, from the progress callback) and what it had written."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.doing = "before the work started"
        self.written = "nothing was written"
        self.writing = False
        self.sweeping = False
        self.sweeps = self.done = self.total = 0
        self.name = "the range test"

    def at(self, doing: str) -> None:
        """Note what the command does now (outside a range test)."""
        self.doing, self.sweeping = doing, False

    def follow(
        self, update: Callable[[int, int, float, float], None], sweep: Callable[[int], str]
    ) -> Callable[[int, int, float, float], None]:
        """A progress callback that feeds ``update`` and notes the step reached; ``sweep(k)``
        names the ``k``-th range test that reports to it (1 first)."""

        def progress(done: int, total: int, lr: float, loss: float) -> None:
            if not self.sweeping or done <= self.done:
                self.sweeps += 1
                self.name = sweep(self.sweeps)
            self.sweeping = True
            self.done, self.total = done, total
            update(done, total, lr, loss)

        return progress

    def message(self) -> str:
        """Where Ctrl-C stopped the command, and what it left written."""
        if self.writing:
            return f"while the results were written to {self.out}; they may be incomplete"
        doing = self.doing
        if self.sweeping:
            doing = f"in {self.name}, after {self.done} of its {self.total} steps"
        return f"{doing}; {self.written}"


def _lr_sweep(k: int) -> str:
    """The name of the ``k``-th sweep of ``lrkit find``'s range test (1 first)."""
    return "the range test" if k == 1 else "the range test's second, longer sweep"


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


def _parse_values(values: str | None) -> list[float] | None:
    if values is None:
        return None
    try:
        return [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise ValueError(
            f"--values must be numbers separated by commas, e.g. 1e-3,1e-4,0; got {values!r}"
        ) from None


def _hyper(
    t: Task,
    test: str,
    grid: list[float] | None,
    optimizer: str | None,
    seed: int,
    batch_size: int | None,
    steps: int,
    weight_decay: float,
    start_lr: float,
    end_lr: float,
    out: Path,
    where: _Where,
) -> None:
    from ..finder.task import hyper_test_task

    name: HyperName = "weight_decay" if test == "weight-decay" else "momentum"
    label = name.replace("_", " ")
    tried = _grid(name, grid)

    def sweep(k: int) -> str:
        value = f"{label} {tried[k - 1]:g} " if k <= len(tried) else ""
        return f"the range test of {value}({k} of {len(tried)}) of the {test} test"

    with range_test_progress(f"{test} test {t.name} (one sweep per value)") as bar:
        progress = where.follow(bar, sweep)
        result = hyper_test_task(
            t,
            name,
            grid,
            optimizer,
            seed=seed,
            batch_size=batch_size,
            steps=steps,
            weight_decay=weight_decay,
            start_lr=start_lr,
            end_lr=end_lr,
            progress=progress,
        )
    where.at(f"after the {test} test, before its result was written")
    png, js = out / f"{name}_test.png", out / f"{name}_test.json"
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
            f"{test} test, after {len(last.lrs)} of its {steps} steps; the partial curves are "
            f"in {png} and {js}; no value is recommended"
        )
    table = Table(title=f"{label} test on {t.name}")
    for col in (label, "lowest loss (smoothed)", "lrkit lr", "stopped"):
        table.add_column(col)
    for value, res, low in zip(result.values, result.results, result.lowest, strict=True):
        mark = " (best)" if result.best is not None and value == result.best else ""
        table.add_row(f"{value:g}{mark}", fmt(low, 4), fmt(res.suggestion), res.stop_reason)
    console.print(table)
    if result.best is None:
        console.print(f"[yellow]no recommendation:[/yellow] {result.reason}")
    else:
        console.print(f"recommended {label}: {result.best:g} ({result.reason})")
    console.print(f"wrote {png} and {js}")
