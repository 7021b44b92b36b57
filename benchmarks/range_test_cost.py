"""Cost of the LR range test per step against a plain training step of the same model.

Target: ``range_test`` time per update ≤ 1.1× a plain training loop's (smoothing, snapshot,
restore, bookkeeping and the suggestion under 10 %). Both run the same model, optimizer, batches
and number of updates; rounds are interleaved and the median is reported. The range test's time
is the whole call (snapshot, sweep, restore, default suggestion with its bootstrap band).

    python benchmarks/range_test_cost.py [--steps 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lrkit import range_test
from lrkit.tasks import get_task
from lrkit.train.optimizers import build_optimizer

from _report import machine, write_section


def _batches(task_name: str, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    task = get_task(task_name)
    train, _ = task.loaders(seed=0)
    out: list[tuple[torch.Tensor, torch.Tensor]] = []
    while len(out) < n:
        out.extend((x, y) for x, y in train)
    return out[:n]


def plain(task_name: str, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Seconds per update of a plain loop: forward, loss, backward, step, loss.item()."""
    task = get_task(task_name)
    model = task.make_model(0)
    opt = build_optimizer(task.optimizer, model.parameters(), lr=1e-4)
    model.train()
    t0 = time.perf_counter()
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        loss = task.loss_fn(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
    return (time.perf_counter() - t0) / len(batches)


def finder(task_name: str, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Seconds per update of ``lrkit.range_test`` over the same batches, whole call."""
    task = get_task(task_name)
    model = task.make_model(0)
    opt = build_optimizer(task.optimizer, model.parameters(), lr=1e-4)
    t0 = time.perf_counter()
    result = range_test(
        model,
        opt,
        batches,
        task.loss_fn,
        start_lr=1e-6,
        end_lr=1e-3,
        steps=len(batches),
        extend=1,  # one sweep: an extension is a second sweep, a stated extra cost
    )
    seconds = time.perf_counter() - t0
    if len(result.lrs) != len(batches):
        raise RuntimeError(f"the sweep stopped early ({result.stop_reason}); widen the LR range")
    return seconds / len(batches)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in ("mnist1d-cnn", "digits-cnn", "mnist1d-mlp"):
        batches = _batches(name, args.steps)
        plain(name, batches[:10])  # warm-up
        finder(name, batches[:20])
        p, f = [], []
        for _ in range(args.rounds):
            p.append(plain(name, batches))
            f.append(finder(name, batches))
        mp, mf = statistics.median(p), statistics.median(f)
        rows.append(f"| {name} | {mp * 1e3:.2f} | {mf * 1e3:.2f} | **{mf / mp:.3f}** |")
        print(rows[-1], flush=True)
    body = (
        "## Range test cost (`benchmarks/range_test_cost.py`)\n\n"
        f"Milliseconds per optimizer update, {args.steps} updates, median of {args.rounds} "
        "interleaved rounds, 1 torch thread. The range test's time is the whole call: snapshot, "
        "sweep with smoothing and divergence checks, restore, and the default suggestion with its "
        f"bootstrap band. Target: ratio ≤ 1.1.\nMachine: {machine()}.\n\n"
        "| task | plain training step ms | range test ms per step | ratio |\n"
        "|---|---:|---:|---:|\n" + "\n".join(rows)
    )
    write_section("range_test_cost", body)


if __name__ == "__main__":
    main()
