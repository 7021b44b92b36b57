"""What ``tune_lr`` costs beyond the updates it trains, as a fraction of one training run.

Target: on the built-in tasks, the search's time beyond its optimizer updates (the snapshot and
its restores, the evaluations that score the probes, the data iterators, the range test's
analysis and the choice) is at most 5% of the run it tunes for.

For each task, in interleaved rounds on one torch thread: one run of the task's length through
lrkit's own update loop (:func:`lrkit.engine.drive` with the one-cycle schedule; no evaluations),
giving the time of one update; and ``tune_lr`` at budget 0.5 on the same set-up as
``tune_task`` (scored on the task's validation data and metric), counting the updates it trains
(every call of ``Engine.update``: the range test's steps, the probes' steps, and any the
GradScaler skipped). Overhead = search time − its updates × the time of one update, over the
run's time; the median over rounds is reported.

    python benchmarks/tune_overhead.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from lrkit import Scheduler
from lrkit import schedules as S
from lrkit.engine import BatchStream, Engine, NoHooks, drive
from lrkit.finder import tune_lr
from lrkit.finder.search import min_total_steps
from lrkit.finder.task import task_setup
from lrkit.tasks import get_task

from _report import README, machine, write_section

TASKS = (
    "mnist1d-mlp",
    "mnist1d-cnn",
    "mnist1d-cnn-paper",
    "digits-cnn",
    "friedman-mlp",
    "breast-cancer-mlp",
    "wine-mlp",
)
BUDGET = 0.5
TARGET = 0.05


def run_seconds(name: str) -> tuple[float, int]:
    """Seconds of one run of the task's length through the update loop, and its updates."""
    task = get_task(name)
    model, opt, train, _ = task_setup(task, task.optimizer, 0, None, 0.0)
    steps = task.epochs * len(train)
    sched = Scheduler(opt, lr=S.one_cycle(task.lr_for(task.optimizer), steps))
    with Engine(model, opt, loss_fn=task.loss_fn) as engine:
        model.train()
        t0 = time.perf_counter()
        drive(engine, BatchStream(train), steps, NoHooks(), scheduler=sched)
        return time.perf_counter() - t0, steps


def tune_seconds(name: str) -> tuple[float, int, float]:
    """Seconds of ``tune_lr`` at :data:`BUDGET` on the task as ``tune_task`` sets it up (the
    set-up itself not timed), the updates it trained, and its ``spent``."""
    task = get_task(name)
    model, opt, train, val = task_setup(task, task.optimizer, 0, None, 0.0)
    steps = task.epochs * len(train)
    calls = 0
    update = Engine.update

    def counted(self: Engine, stream: Any) -> Any:
        nonlocal calls
        calls += 1
        return update(self, stream)

    Engine.update = counted  # type: ignore[method-assign]
    try:
        t0 = time.perf_counter()
        result = tune_lr(
            model, opt, train, task.loss_fn, val_data=val, total_steps=steps, budget=BUDGET,
            metric_fn=task.metric_fn, maximize=True,
        )  # fmt: skip
        return time.perf_counter() - t0, calls, result.spent
    finally:
        Engine.update = update  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows, fractions, refused = [], [], []
    for name in TASKS:
        task = get_task(name)
        length = task.epochs * task.steps_per_epoch()
        if length < min_total_steps(BUDGET):
            refused.append(f"{name} ({length} updates)")
            continue
        run_seconds(name)  # warm-up
        overheads, ratios = [], []
        for _ in range(args.rounds):
            run, steps = run_seconds(name)
            tune, updates, spent = tune_seconds(name)
            per_update = run / steps
            overheads.append((tune - updates * per_update) / run)
            ratios.append(tune / run)
        over, ratio = statistics.median(overheads), statistics.median(ratios)
        fractions.append(over)
        rows.append(
            f"| {name} | {steps} | {run:.2f} | {updates} | {spent:.2f} | {ratio:.3f} | "
            f"**{over:.3f}** |"
        )
        print(rows[-1], flush=True)
    worst = max(fractions)
    median = statistics.median(fractions)
    verdict = "met" if worst <= TARGET else "not met"
    body = (
        "## tune_lr's overhead beyond its updates (`benchmarks/tune_overhead.py`)\n\n"
        f"Target: tune_lr's time beyond the optimizer updates it trains (snapshot, restores, "
        f"the probes' evaluations, data iterators, the range test's analysis, the choice) at "
        f"most {TARGET:.0%} of the run it tunes for, at budget {BUDGET:g}. A run: the task's "
        "length through lrkit's update loop with one cycle, no evaluations; overhead = (search "
        "time − its updates × one update's time) ÷ the run's time; median of "
        f"{args.rounds} interleaved rounds, 1 torch thread. Machine: {machine()}.\n\n"
        "| task | run updates | run s | search updates | spent (runs) | search time ÷ run "
        "| overhead ÷ run |\n|---|---:|---:|---:|---:|---:|---:|\n"
        + "\n".join(rows)
        + f"\n\nOverhead: median {median:.3f}, worst {worst:.3f} of a run: target ≤ "
        f"{TARGET:g} on every task **{verdict}**."
        + (
            f" Left out: {', '.join(refused)}, runs too short for tune_lr at budget "
            f"{BUDGET:g} (its range test alone, {min_total_steps(BUDGET) * BUDGET:.0f} updates, "
            "would exceed the budget; tune_lr refuses them and the range test alone serves)."
            if refused
            else ""
        )
    )
    write_section("tune_overhead", body)
    kept = len(fractions)
    write_section(
        "tune_overhead_readme",
        f"- `tune_lr` (budget {BUDGET:g}) spends {median:.2f} of a run (median over {kept} "
        f"built-in tasks; at most {worst:.2f}) beyond the updates it trains."
        + (f" Runs too short for it ({', '.join(refused)}) are refused." if refused else ""),
        README,
    )


if __name__ == "__main__":
    main()
