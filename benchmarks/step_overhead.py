"""Cost of one ``Scheduler.step()`` against PyTorch's ``OneCycleLR.step()`` and ``CyclicLR.step()``.

Target: lrkit's step costs at most half of torch's. Each configuration times the three schedulers
in interleaved rounds on identical optimizers and reports the median of the rounds.

    python benchmarks/step_overhead.py [--steps 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch

import lrkit
from lrkit import schedules as S

from _report import machine, write_section


def _optimizer(groups: int) -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(4)) for _ in range(groups)]
    return torch.optim.SGD(
        [{"params": [p], "lr": 0.1 / (i + 1)} for i, p in enumerate(params)], lr=0.1, momentum=0.9
    )


def _time(step: Callable[[], None], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def measure(groups: int, n: int, rounds: int) -> dict[str, float]:
    total = n * (rounds + 1) + 10
    wave = S.triangular(0.1, 1.0, 2000)
    makers: dict[str, Callable[[], Callable[[], None]]] = {
        "lrkit one_cycle": lambda: (
            lrkit.Scheduler(_optimizer(groups), lr=S.one_cycle(0.8, total)).step
        ),
        "lrkit cyclic": lambda: (
            lrkit.Scheduler(_optimizer(groups), lr=wave, momentum=wave.momentum(0.95, 0.85)).step
        ),
        "torch OneCycleLR": lambda: (
            torch.optim.lr_scheduler.OneCycleLR(_optimizer(groups), 0.8, total_steps=total).step
        ),
        "torch CyclicLR": lambda: (
            torch.optim.lr_scheduler.CyclicLR(_optimizer(groups), 0.1, 1.0, step_size_up=2000).step
        ),
    }
    steps = {k: make() for k, make in makers.items()}
    times: dict[str, list[float]] = {k: [] for k in steps}
    for step in steps.values():
        _time(step, 200)  # warm-up
    for _ in range(rounds):
        for k, step in steps.items():
            times[k].append(_time(step, n))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    for groups in (1, 4):
        m = measure(groups, args.steps, args.rounds)
        r1 = m["lrkit one_cycle"] / m["torch OneCycleLR"]
        r2 = m["lrkit cyclic"] / m["torch CyclicLR"]
        rows.append(
            f"| {groups} | {m['lrkit one_cycle'] * 1e6:.2f} | {m['torch OneCycleLR'] * 1e6:.2f} "
            f"| **{r1:.2f}** | {m['lrkit cyclic'] * 1e6:.2f} | {m['torch CyclicLR'] * 1e6:.2f} "
            f"| **{r2:.2f}** |"
        )
        print(rows[-1])
    body = (
        "## Scheduler step overhead (`benchmarks/step_overhead.py`)\n\n"
        "Time per `step()` in microseconds, LR and momentum both scheduled, SGD with momentum; "
        f"median of {args.rounds} interleaved rounds of {args.steps} steps. Target: ratio ≤ 0.5.\n"
        f"Machine: {machine()}.\n\n"
        "| param groups | lrkit one_cycle µs | torch OneCycleLR µs | ratio | lrkit cyclic µs "
        "| torch CyclicLR µs | ratio |\n|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows)
    )
    write_section("step_overhead", body)


if __name__ == "__main__":
    main()
