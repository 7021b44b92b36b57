"""``lrkit schedule``: draw any schedule to a PNG."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from .. import schedules as S
from ..schedules import Hyper, Schedule


class Kind(str, Enum):
    """Schedules the command can build from options."""

    one_cycle = "one-cycle"
    triangular = "triangular"
    triangular2 = "triangular2"
    exp_range = "exp-range"
    cosine = "cosine"
    warmup_cosine = "warmup-cosine"
    sgdr = "sgdr"
    wsd = "wsd"
    step = "step"
    multistep = "multistep"
    exponential = "exponential"
    linear = "linear"
    polynomial = "polynomial"
    constant = "constant"


def build(
    kind: Kind,
    *,
    peak: float,
    steps: int,
    base: float | None = None,
    end: float | None = None,
    step_size: int | None = None,
    gamma: float | None = None,
    window: str = "triangular",
    pct_start: float = 0.3,
    anneal: str = "cos",
    three_phase: bool = False,
    momentum: tuple[float, float] | None = (0.95, 0.85),
    cycle_steps: int | None = None,
    cycle_mult: int = 1,
    warmup_steps: int | None = None,
    decay_steps: int | None = None,
    milestones: list[int] | None = None,
) -> Schedule | Hyper:
    """Build the schedule named ``kind`` from command-line style options.

    ``peak`` is the largest value; ``steps`` the number of optimizer steps to draw and, for
    finite schedules, their length. Unset options get the defaults the papers use.
    """
    half = step_size if step_size is not None else max(1, steps // 8)
    low = base if base is not None else peak / 4.0
    if kind is Kind.one_cycle:
        return S.one_cycle(
            peak,
            steps,
            start=base,
            end=end,
            pct_start=pct_start,
            anneal=anneal,  # type: ignore[arg-type]
            three_phase=three_phase,
            momentum=momentum,
        )
    if kind in (Kind.triangular, Kind.triangular2, Kind.exp_range):
        mode = {"triangular": "triangular", "triangular2": "triangular2", "exp-range": "exp_range"}
        lr = S.cyclic(
            low,
            peak,
            half,
            mode=mode[kind.value],  # type: ignore[arg-type]
            gamma=gamma if gamma is not None else 0.999,
            window=window,  # type: ignore[arg-type]
        )
        if momentum is None:
            return lr
        return Hyper(lr=lr, momentum=lr.momentum(*momentum))
    if kind is Kind.cosine:
        return S.cosine(peak, steps, end=end or 0.0)
    if kind is Kind.warmup_cosine:
        w = warmup_steps if warmup_steps is not None else max(1, steps // 20)
        return S.warmup(S.cosine(peak, steps - w, end=end or 0.0), w)
    if kind is Kind.sgdr:
        c = cycle_steps if cycle_steps is not None else max(1, steps // 7)
        return S.sgdr(peak, end or 0.0, c, cycle_mult)
    if kind is Kind.wsd:
        w = warmup_steps if warmup_steps is not None else max(1, steps // 20)
        d = decay_steps if decay_steps is not None else max(1, steps // 5)
        return S.wsd(peak, steps, w, d, end=end or 0.0)
    if kind is Kind.step:
        return S.step(peak, step_size or max(1, steps // 3), gamma if gamma is not None else 0.1)
    if kind is Kind.multistep:
        ms = milestones or [steps // 2, steps * 3 // 4]
        return S.multistep(peak, tuple(ms), gamma if gamma is not None else 0.1)
    if kind is Kind.exponential:
        return S.exponential(peak, gamma if gamma is not None else 0.01 ** (1.0 / steps))
    if kind is Kind.linear:
        return S.linear(peak, end or 0.0, steps)
    if kind is Kind.polynomial:
        return S.polynomial(peak, end or 0.0, steps, power=2.0)
    return S.constant(peak)


def register(app: typer.Typer) -> None:
    """Add the ``schedule`` command to ``app``."""

    @app.command("schedule")
    def schedule_cmd(
        kind: Annotated[
            Kind,
            typer.Argument(
                metavar="KIND",
                show_choices=False,
                help="Which schedule to draw: " + ", ".join(k.value for k in Kind) + ".",
            ),
        ],
        peak: Annotated[float, typer.Option(help="Largest learning rate.")] = 0.1,
        steps: Annotated[
            int, typer.Option(help="Optimizer steps to draw (schedule length).")
        ] = 1000,
        out: Annotated[
            Path, typer.Option(help="Where to write the plot (.png, .svg or .pdf).")
        ] = Path("schedule.png"),
        base: Annotated[
            float | None, typer.Option(help="Lowest LR of a cycle / one-cycle start.")
        ] = None,
        end: Annotated[float | None, typer.Option(help="Final learning rate.")] = None,
        step_size: Annotated[
            int | None, typer.Option(help="Half cycle (cyclic) or decay interval (step).")
        ] = None,
        gamma: Annotated[float | None, typer.Option(help="Decay factor.")] = None,
        window: Annotated[str, typer.Option(help="triangular, welch or hann.")] = "triangular",
        pct_start: Annotated[float, typer.Option(help="One-cycle: share of the rise.")] = 0.3,
        anneal: Annotated[str, typer.Option(help="One-cycle: cos or linear.")] = "cos",
        three_phase: Annotated[bool, typer.Option(help="One-cycle: three phases.")] = False,
        momentum: Annotated[
            bool,
            typer.Option(
                "--momentum/--no-momentum",
                help="Cycle momentum (0.95 to 0.85) with one-cycle and the cyclic schedules.",
            ),
        ] = True,
        cycle_steps: Annotated[int | None, typer.Option(help="SGDR: first cycle length.")] = None,
        cycle_mult: Annotated[int, typer.Option(help="SGDR: cycle length multiplier.")] = 1,
        warmup_steps: Annotated[int | None, typer.Option(help="Warmup length.")] = None,
        decay_steps: Annotated[int | None, typer.Option(help="WSD: decay length.")] = None,
        milestones: Annotated[
            str | None, typer.Option(help="Multistep: comma-separated steps, e.g. 500,750.")
        ] = None,
        spec: Annotated[
            Path | None,
            typer.Option(help="Draw a schedule saved as JSON by Schedule.to_dict() instead."),
        ] = None,
        log: Annotated[bool, typer.Option(help="Log-scale LR axis.")] = False,
    ) -> None:
        """Draw a schedule (learning rate, and momentum when cycled) to a PNG."""
        from ..experiments.trial import check_values
        from ..plot import plot_schedule
        from ._common import check_plot_file, fail

        console = Console()
        try:
            check_plot_file(out)
            if spec is not None:
                sched: Schedule | Hyper = _read_spec(spec)
            else:
                sched = build(
                    kind,
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
        console.print(f"wrote {out}")


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
