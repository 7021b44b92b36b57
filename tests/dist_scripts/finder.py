"""Run by tests/test_distributed.py under torchrun: the range test, the search and the task
finder on every rank, then calls that must fail on every rank. Each rank writes what it saw to
``OUT/report_rank{r}.json``; lrkit's own files go to ``OUT/lrkit`` under rank-specific names, so
the test can tell which ranks wrote."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path
from typing import Any

import problem
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import lrkit
from lrkit.engine import distributed
from lrkit.finder.task import find_lr


def _curve(result: lrkit.RangeTestResult) -> dict[str, Any]:
    def listed(a: Any) -> Any:
        return None if a is None else [float(v) for v in a]

    return {
        "lrs": listed(result.lrs),
        "losses": listed(result.losses),
        "val_losses": listed(result.val_losses),
        "metrics": listed(result.metrics),
        "stop_reason": result.stop_reason,
        "suggestion": result.suggestion,
    }


def _error(call: Any) -> str | None:
    try:
        call()
    except ValueError as err:
        return str(err)
    return None


def main(out: Path) -> None:
    torch.set_num_threads(1)
    rank, world = dist.get_rank(), dist.get_world_size()
    files = out / "lrkit"
    train = problem.part(problem.train_batches(), rank, world)
    val = problem.part(problem.val_batches(), rank, world)
    report: dict[str, Any] = {}

    model = problem.make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ddp = DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    plain = lrkit.range_test(ddp, opt, train, F.cross_entropy, **problem.range_kwargs())
    report["plain"] = _curve(plain)
    scored = lrkit.range_test(
        ddp, opt, train, F.cross_entropy, val_data=val, metric_fn=problem.accuracy,
        **problem.range_kwargs(),
    )  # fmt: skip
    report["scored"] = _curve(scored)
    accumulated = lrkit.range_test(
        ddp, opt, train, F.cross_entropy, accumulation_steps=2, **problem.range_kwargs()
    )
    report["accumulated"] = _curve(accumulated)
    report["restored"] = all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    plain.to_json(files / f"range_rank{rank}.json")
    plain.plot(files / f"range_rank{rank}.png")

    tuned = lrkit.tune_lr(
        ddp, opt, train, F.cross_entropy, val_data=val, total_steps=200, budget=1.0, seed=0
    )
    report["tune"] = {
        "peak": tuned.peak,
        "probes": [[p.peak, p.steps, p.score] for p in tuned.probes],
        "spent": tuned.spent,
    }
    tuned.to_json(files / f"tune_rank{rank}.json")

    task = find_lr("wine-mlp", steps=20, cache=files / f"cache_rank{rank}.json")
    report["task"] = _curve(task)

    report["errors"] = {
        "different_steps": _error(
            lambda: lrkit.range_test(
                ddp,
                opt,
                train,
                F.cross_entropy,
                start_lr=1e-3,
                end_lr=10.0 * (rank + 1),
                steps=30 - 10 * rank,
            )
        ),
        "empty_data_on_rank_1": _error(
            lambda: lrkit.range_test(
                ddp, opt, train if rank == 0 else [], F.cross_entropy, steps=20
            )
        ),
        "not_wrapped": _error(lambda: lrkit.range_test(model, opt, train, F.cross_entropy)),
        "different_budget": _error(
            lambda: lrkit.tune_lr(
                ddp,
                opt,
                train,
                F.cross_entropy,
                val_data=val,
                total_steps=200,
                budget=1.0 - 0.5 * rank,
            )
        ),
    }
    report["after_errors"] = _curve(
        lrkit.range_test(ddp, opt, train, F.cross_entropy, **problem.range_kwargs())
    )
    (out / f"report_rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    main(Path(sys.argv[1]))
    distributed.close()
