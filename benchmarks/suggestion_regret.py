"""How good is each LR-finder rule's suggestion when used directly as the one-cycle peak?

For every built-in task: a grid of 13 one-cycle peaks (a third of a decade apart, spanning two
decades either side of the task's usual LR) × 3 seeds gives the best achievable final metric.
Each rule (lrkit's default, minimum/10, steepest, valley, pytorch-lr-finder's steepest-gradient
suggestion, and no finder at all) reads one range test (seed 0) and its suggestion trains the
same one-cycle run over the same 3 seeds.

Scores per rule and task:
- shortfall: best grid mean minus the rule's mean, in percentage points of the metric
  (accuracy; r2 for the regression task) — the target is ≤ 1 pp for lrkit's default;
- normalised regret: shortfall ÷ (best − median of the grid) (0 is perfect; the LITERATURE
  measurement averaged 0.21–0.27 for minimum/10 and 5.9–6.1 for steepest rules).

Results are cached in runs/bench-regret (resumable); `--fresh` starts over.

    python benchmarks/suggestion_regret.py [--tasks mnist1d-cnn,digits-cnn] [--seeds 3]
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrkit import schedules as S
from lrkit.experiments import RunDir, Trial, run_trial, run_trials
from lrkit.experiments.trial import encode_lr, find_lr
from lrkit.finder import METHODS
from lrkit.tasks import get_task, task_names
from lrkit.train.history import History
from lrkit.train.optimizers import build_optimizer

from _report import machine, write_section

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "runs" / "bench-regret"
GRID = 13
RULES = (*METHODS, "torch-lr-finder", "no finder")


def grid(task_name: str) -> list[float]:
    """13 peaks, a third of a decade apart, centred on the task's usual LR."""
    lr0 = get_task(task_name).default_lr
    return [float(lr0 * 10 ** (k / 3)) for k in range(-6, 7)]


def torch_lr_finder_suggestion(task_name: str) -> float | None:
    """pytorch-lr-finder's own suggestion (steepest gradient) on the same model and data."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from torch_lr_finder import LRFinder
    except ImportError:
        return None
    import contextlib
    import io

    task = get_task(task_name)
    model = task.make_model(0)
    opt = build_optimizer(task.optimizer, model.parameters(), lr=1e-7)
    train, _ = task.loaders(seed=0)
    torch.manual_seed(0)
    finder = LRFinder(model, opt, task.loss_fn, device="cpu")
    with contextlib.redirect_stdout(io.StringIO()):
        finder.range_test(train, end_lr=10, num_iter=100)
        _, lr = finder.plot(suggest_lr=True)
    finder.reset()
    return float(lr) if lr is not None else None


def suggestions(task_name: str) -> dict[str, float | None]:
    """Each rule's peak for a task."""
    result = find_lr(task_name, cache=CACHE / "range_tests" / f"{task_name}.json")
    out: dict[str, float | None] = {m: result.suggest(m).lr for m in METHODS}
    out["torch-lr-finder"] = torch_lr_finder_suggestion(task_name)
    out["no finder"] = get_task(task_name).default_lr
    return out


def trial(task_name: str, peak: float, seed: int) -> Trial:
    task = get_task(task_name)
    steps = task.epochs * task.steps_per_epoch()
    cfg: dict[str, Any] = {
        "arm": f"{task_name} peak={peak:.6g}",
        "task": task_name,
        "seed": seed,
        "optimizer": task.optimizer,
        "lr": encode_lr(S.one_cycle(peak, steps)),
        "steps": steps,
        "eval_every": steps,
    }
    return Trial(f"{task_name}/peak={peak:.6g}/seed={seed}", cfg)


def score(records: dict[str, Any], task_name: str, peak: float, seeds: int) -> float:
    """Mean final metric over seeds (a diverged run scores as chance: 0 accuracy / r2 0)."""
    vals = []
    for s in range(seeds):
        rec = records[f"{task_name}/peak={peak:.6g}/seed={s}"]
        h = History.from_dict(rec.result["history"]) if rec.result.get("history") else None
        m = h.final_metric if h is not None and not h.diverged else None
        vals.append(max(0.0, m) if m is not None and math.isfinite(m) else 0.0)
    return float(np.mean(vals))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", default=",".join(task_names()))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--fresh", action="store_true", help="discard cached results")
    args = ap.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    if args.fresh and CACHE.exists():
        shutil.rmtree(CACHE)
    rd = RunDir(CACHE, {"benchmark": "suggestion_regret", "seeds": args.seeds, "grid": GRID})
    sugg = {t: suggestions(t) for t in tasks}
    trials: list[Trial] = []
    for t in tasks:
        peaks = set(grid(t)) | {p for p in sugg[t].values() if p is not None}
        trials += [trial(t, p, s) for p in sorted(peaks) for s in range(args.seeds)]
    done = {r.key: r for r in run_trials(trials, run_trial, rd, workers=args.workers)}

    shortfall: dict[str, dict[str, float]] = {r: {} for r in RULES}
    regret: dict[str, dict[str, float]] = {r: {} for r in RULES}
    task_rows = []
    for t in tasks:
        means = [score(done, t, p, args.seeds) for p in grid(t)]
        best, median = max(means), statistics.median(means)
        best_peak = grid(t)[int(np.argmax(means))]
        task_rows.append(f"| {t} | {best_peak:.3g} | {100 * best:.2f} | {100 * median:.2f} |")
        for rule in RULES:
            peak = sugg[t][rule]
            s = score(done, t, peak, args.seeds) if peak is not None else median
            shortfall[rule][t] = 100 * (best - s)
            regret[rule][t] = (best - s) / max(best - median, 1e-9)
    header = "| rule | " + " | ".join(tasks) + " | mean regret | worst shortfall (pp) |"
    sep = "|---|" + "---:|" * (len(tasks) + 2)
    rows = []
    for rule in RULES:
        cells = []
        for t in tasks:
            p = sugg[t][rule]
            peak = "none" if p is None else f"{p:.3g}"
            cells.append(f"{peak}: −{shortfall[rule][t]:.2f} pp ({regret[rule][t]:.2f})")
        mean_r = float(np.mean(list(regret[rule].values())))
        worst = max(shortfall[rule].values())
        name = f"**{rule}** (default)" if rule == "lrkit" else rule
        rows.append(f"| {name} | " + " | ".join(cells) + f" | **{mean_r:.2f}** | {worst:.2f} |")
        print(rows[-1], flush=True)
    body = (
        "## LR-finder suggestion regret (`benchmarks/suggestion_regret.py`)\n\n"
        f"Each rule's suggestion used directly as the one-cycle peak; {args.seeds} seeds; "
        f"grid of {GRID} peaks a third of a decade apart. Cell: suggested peak: shortfall "
        "from the grid's best mean final metric in percentage points (accuracy, or r2 × 100 "
        "for friedman-mlp) and, in brackets, the normalised regret (shortfall ÷ (best − grid "
        "median); 0 is perfect). Targets: lrkit's default within 1 pp on every task and the "
        f"lowest mean regret.\nMachine: {machine()}.\n\n"
        "| task | best grid peak | best mean (%) | grid median (%) |\n|---|---:|---:|---:|\n"
        + "\n".join(task_rows)
        + "\n\n"
        + header
        + "\n"
        + sep
        + "\n"
        + "\n".join(rows)
    )
    write_section("suggestion_regret", body)


if __name__ == "__main__":
    main()
