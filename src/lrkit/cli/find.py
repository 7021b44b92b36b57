"""``lrkit find``: the LR range test on a built-in task or the user's own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._common import console, fail, fmt, range_test_progress


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
            Path, typer.Option(help="Folder for range_test.png and range_test.json.")
        ] = Path("lrkit-out"),
    ) -> None:
        """Run the LR range test, print the suggestions and bounds, write the plot and JSON."""
        from ..experiments.trial import find_lr
        from ..finder import METHODS
        from ..tasks import get_task

        try:
            t = get_task(task)
            with range_test_progress(f"range test {t.name}") as progress:
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
        out.mkdir(parents=True, exist_ok=True)
        result.plot(out / "range_test.png")
        result.to_json(out / "range_test.json")
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
