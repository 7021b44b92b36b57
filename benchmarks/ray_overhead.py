"""What running a sweep on Ray costs against the local process pool, on the same cores.

A sweep of ``--trials`` short trials (``run_trial`` on breast-cancer-mlp, ``--steps`` SGD
updates each, every trial the same length) runs with ``run_trials`` on the local pool of
``--cores`` processes and as Ray tasks on a local Ray cluster of ``--cores`` CPUs that this
script starts (and stops). The Ray cluster's start is timed apart. The first Ray sweep after
connecting starts the worker processes (cold); the later ones reuse them (warm), while every
local sweep starts its pool again, as every sweep does.

Overhead per trial: the time a core spends on a trial beyond the trial itself,
``wall × cores / trials − mean trial seconds`` (the trial's own time as the store records it).

    python benchmarks/ray_overhead.py [--trials 24] [--steps 400] [--rounds 3] [--cores 2]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import ray

from lrkit.experiments import RunDir, Trial, run_trial, run_trials

from _report import machine, write_section

TASK = "breast-cancer-mlp"


def _trials(n: int, steps: int) -> list[Trial]:
    return [
        Trial(
            f"seed={s}",
            {
                "task": TASK,
                "seed": s,
                "optimizer": "sgd",
                "lr": 0.05,
                "steps": steps,
                "eval_every": steps,
            },
        )
        for s in range(n)
    ]


def _sweep(folder: Path, trials: list[Trial], **kwargs: Any) -> tuple[float, float]:
    """Wall seconds of one sweep into a fresh run directory, and the mean trial seconds."""
    t0 = time.perf_counter()
    records = run_trials(trials, run_trial, RunDir(folder, {"bench": 1}), **kwargs)
    wall = time.perf_counter() - t0
    if any(r.status != "ok" for r in records):
        raise SystemExit(f"a trial failed: {[r.error for r in records if r.error]}")
    return wall, statistics.mean(r.seconds for r in records)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    trials = _trials(args.trials, args.steps)
    n, cores = args.trials, args.cores
    walls: dict[str, list[float]] = {"local": [], "ray cold": [], "ray warm": []}
    seconds: dict[str, list[float]] = {k: [] for k in walls}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        ray.init(
            address="local",
            num_cpus=cores,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
        started = time.perf_counter() - t0
        try:
            wall, mean = _sweep(root / "ray-cold", trials, backend="ray")
            walls["ray cold"].append(wall)
            seconds["ray cold"].append(mean)
            for r in range(args.rounds):  # interleaved, so that both see the same machine
                for name, kwargs in (
                    ("local", {"workers": cores}),
                    ("ray warm", {"backend": "ray"}),
                ):
                    wall, mean = _sweep(root / f"{name}-{r}", trials, **kwargs)
                    walls[name].append(wall)
                    seconds[name].append(mean)
                    print(f"{name}: {wall:.2f} s wall, trial {mean:.3f} s", flush=True)
        finally:
            ray.shutdown()

    rows = []
    wall = {k: statistics.median(v) for k, v in walls.items()}
    over = {k: wall[k] * cores / n - statistics.median(seconds[k]) for k in walls}
    for name in walls:
        ratio = wall[name] / wall["local"]
        rows.append(
            f"| {name} | {wall[name]:.2f} | {statistics.median(seconds[name]):.3f} "
            f"| {over[name]:.3f} | {over[name] - over['local']:+.3f} | **{ratio:.2f}** |"
        )
        print(rows[-1])
    body = (
        "## Sweeps on Ray vs the local pool (`benchmarks/ray_overhead.py`)\n\n"
        f"{n} trials of `run_trial` on {TASK} ({args.steps} SGD updates each, 1 torch thread) "
        f"on {cores} cores: the local pool of {cores} processes against Ray tasks of 1 CPU on a "
        f"local Ray cluster of {cores} CPUs. Cold: the first Ray sweep after connecting "
        "(worker processes start); warm: later sweeps on the same connection; every local "
        "sweep starts its pool. Median of "
        f"{args.rounds} interleaved rounds (cold: one). Overhead per trial = wall × cores / "
        "trials − the trial's own seconds; those include what a fresh worker process does "
        "once (import the task's libraries, load its data), which warm Ray workers have "
        "done already. Starting the Ray cluster itself took "
        f"{started:.1f} s (not counted).\n"
        f"Machine: {machine()}.\n\n"
        "| backend | wall s | trial s | overhead per trial s | vs local s | wall ratio |\n"
        "|---|---:|---:|---:|---:|---:|\n" + "\n".join(rows)
    )
    write_section("ray_overhead", body)


if __name__ == "__main__":
    main()
