"""``lrkit schedule``: draw any schedule to a PNG."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from .. import schedules as S
from ..schedules import Hyper, Schedule
from ._common import check_plot_file, console, fail

Kind = Enum("Kind", {n.replace("-", "_"): n for n in S.NAMES}, type=str)  # type: ignore[misc]
"""Schedules the command can build from options (:data:`lrkit.schedules.NAMES`)."""

KindArgument = Annotated[
    Kind,
    typer.Argument(
        metavar="KIND",
        show_choices=False,
        help="Which schedule to draw: " + ", ".join(k.value for k in Kind) + ".",
    ),
]
PlotOption = Annotated[Path, typer.Option(help="Where to write the plot (.png, .svg or .pdf).")]
BaseOption = Annotated[float | None, typer.Option(help="Lowest LR of a cycle / one-cycle start.")]
StepSizeOption = Annotated[
    int | None, typer.Option(help="Half cycle (cyclic) or decay interval (step).")
]
MomentumOption = Annotated[
    bool,
    typer.Option(
        "--momentum/--no-momentum",
        help="Cycle momentum (0.95 to 0.85) with one-cycle and the cyclic schedules.",
    ),
]
MilestonesOption = Annotated[
    str | None, typer.Option(help="Multistep: comma-separated steps, e.g. 500,750.")
]
SpecOption = Annotated[
    Path | None,
    typer.Option(help="Draw a schedule saved as JSON by Schedule.to_dict() instead."),
]


def schedule_cmd(
    kind: KindArgument,
    peak: Annotated[float, typer.Option(help="Largest learning rate.")] = 0.1,
    steps: Annotated[int, typer.Option(help="Optimizer steps to draw (schedule length).")] = 1000,
    out: PlotOption = Path("schedule.png"),
    base: BaseOption = None,
    end: Annotated[float | None, typer.Option(help="Final learning rate.")] = None,
    step_size: StepSizeOption = None,
    gamma: Annotated[float | None, typer.Option(help="Decay factor.")] = None,
    window: Annotated[str, typer.Option(help="triangular, welch or hann.")] = "triangular",
    pct_start: Annotated[float, typer.Option(help="One-cycle: share of the rise.")] = 0.3,
    anneal: Annotated[str, typer.Option(help="One-cycle: cos or linear.")] = "cos",
    three_phase: Annotated[bool, typer.Option(help="One-cycle: three phases.")] = False,
    momentum: MomentumOption = True,
    cycle_steps: Annotated[int | None, typer.Option(help="SGDR: first cycle length.")] = None,
    cycle_mult: Annotated[int, typer.Option(help="SGDR: cycle length multiplier.")] = 1,
    warmup_steps: Annotated[int | None, typer.Option(help="Warmup length.")] = None,
    decay_steps: Annotated[int | None, typer.Option(help="WSD: decay length.")] = None,
    milestones: MilestonesOption = None,
    spec: SpecOption = None,
    log: Annotated[bool, typer.Option(help="Log-scale LR axis.")] = False,
) -> None:
    """Draw a schedule (learning rate, and momentum when cycled) to a PNG."""
    from ..plot import plot_schedule
    from ..schedules import check_values

    try:
        check_plot_file(out)
        if spec is not None:
            sched: Schedule | Hyper = _read_spec(spec)
        else:
            sched = S.named(
                kind.value,
                peak=peak,
                steps=steps,
                base=base,
                end=end,
                step_size=step_size,
                gamma=gamma,
                window=window,
                pct_start=pct_start,
                anneal=anneal,
                three_phase=three_phase,
                momentum=(0.95, 0.85) if momentum else None,
                cycle_steps=cycle_steps,
                cycle_mult=cycle_mult,
                warmup_steps=warmup_steps,
                decay_steps=decay_steps,
                milestones=_parse_milestones(milestones),
            )
        check_values(sched, steps, "the schedule")
    except (ValueError, TypeError) as err:
        raise fail(err) from err
    plot_schedule(sched, steps, out, log=log)
    print_schedule(sched, steps)
    console.print(f"wrote {out}")


def print_schedule(sched: Schedule | Hyper, steps: int) -> None:
    """The schedule's repr, and its values at nine steps spread over ``steps``."""
    lr = sched.lr if isinstance(sched, Hyper) else sched
    mom = sched.momentum if isinstance(sched, Hyper) else None
    console.print(repr(lr), soft_wrap=True, highlight=False)
    table = Table()
    table.add_column("step", justify="right")
    table.add_column("lr", justify="right")
    if mom is not None:
        table.add_column("momentum", justify="right")
    for t in np.unique(np.linspace(0, steps - 1, 9).astype(int)):
        row = [str(t), f"{lr(int(t)):.4g}"]
        if mom is not None:
            row.append(f"{mom(int(t)):.4g}")
        table.add_row(*row)
    console.print(table)


def _read_spec(spec: Path) -> Schedule | Hyper:
    try:
        text = spec.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(
            f"--spec {spec}: cannot read the file ({err.strerror or err}); give the path of a "
            "JSON file written from Schedule.to_dict()"
        ) from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ValueError(f"--spec {spec} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--spec {spec} must hold a JSON object from Schedule.to_dict()")
    try:
        return S.from_dict(data)
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"--spec {spec} does not describe a schedule: {err}") from None


def _parse_milestones(milestones: str | None) -> list[int] | None:
    if milestones is None:
        return None
    try:
        out = [int(m) for m in milestones.split(",") if m.strip()]
    except ValueError:
        out = []
    if not out:
        raise ValueError(
            f"--milestones must be whole step numbers separated by commas, e.g. 500,750; "
            f"got {milestones!r}"
        )
    return out
