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

`--suite heldout` runs the same protocol on the tasks of `heldout_tasks.py`, which the rules
were not designed on, and writes its own section: how the rules do on models they have never
seen.

Results are cached in runs/bench-regret (runs/bench-regret-heldout for the held-out suite;
resumable); `--fresh` starts over.

    python benchmarks/suggestion_regret.py [--suite builtin|heldout] [--tasks a,b] [--seeds 3]
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
from heldout_tasks import DESIGN as HELDOUT_DESIGN
from heldout_tasks import TEST as HELDOUT_TEST

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "runs" / "bench-regret"
GRID = 13
SUITES = ("builtin", "heldout")
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


def suggestions(task_name: str, cache: Path) -> dict[str, float | None]:
    """Each rule's peak for a task."""
    stem = task_name.replace(":", "_")
    result = find_lr(task_name, cache=cache / "range_tests" / f"{stem}.json")
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


def _short(task_name: str) -> str:
    """A task's name without the module of a held-out task."""
    return task_name.rpartition(":")[2].replace("_", "-")


def _rule_name(rule: str) -> str:
    return f"**{rule}** (default)" if rule == "lrkit" else rule


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--suite", choices=SUITES, default="builtin")
    ap.add_argument("--tasks", default=None, help="comma-separated (default: the whole suite)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--fresh", action="store_true", help="discard cached results")
    args = ap.parse_args()
    heldout = args.suite == "heldout"
    if args.tasks:
        tasks = [t for t in args.tasks.split(",") if t]
    else:
        tasks = [*HELDOUT_DESIGN, *HELDOUT_TEST] if heldout else task_names()
    cache = CACHE.with_name(CACHE.name + "-heldout") if heldout else CACHE
    if args.fresh and cache.exists():
        shutil.rmtree(cache)
    rd = RunDir(cache, {"benchmark": "suggestion_regret", "seeds": args.seeds, "grid": GRID})
    sugg = {t: suggestions(t, cache) for t in tasks}
    unique: dict[str, Trial] = {}  # two rules may give peaks equal to 6 digits: one trial
    for t in tasks:
        peaks = set(grid(t)) | {p for p in sugg[t].values() if p is not None}
        for p in sorted(peaks):
            unique.update((x.key, x) for x in (trial(t, p, s) for s in range(args.seeds)))
    trials = list(unique.values())
    done = {r.key: r for r in run_trials(trials, run_trial, rd, workers=args.workers)}

    shortfall: dict[str, dict[str, float]] = {r: {} for r in RULES}
    regret: dict[str, dict[str, float]] = {r: {} for r in RULES}
    task_rows = []
    for t in tasks:
        means = [score(done, t, p, args.seeds) for p in grid(t)]
        best, median = max(means), statistics.median(means)
        best_peak = grid(t)[int(np.argmax(means))]
        task_rows.append(
            f"| {_short(t)} | {best_peak:.3g} | {100 * best:.2f} | {100 * median:.2f} |"
        )
        for rule in RULES:
            peak = sugg[t][rule]
            s = score(done, t, peak, args.seeds) if peak is not None else median
            shortfall[rule][t] = 100 * (best - s)
            regret[rule][t] = (best - s) / max(best - median, 1e-9)
    table = ["| task | " + " | ".join(_rule_name(r) for r in RULES) + " |"]
    table.append("|---|" + "---:|" * len(RULES))
    for t in tasks:
        cells = []
        for rule in RULES:
            p = sugg[t][rule]
            peak = "none" if p is None else f"{p:.3g}"
            cells.append(f"{peak}: {-shortfall[rule][t]:+.2f} ({regret[rule][t]:.2f})")
        table.append(f"| {_short(t)} | " + " | ".join(cells) + " |")
    groups = [("mean regret", tasks)]
    if heldout:
        groups += [
            ("mean regret, design half", [t for t in tasks if t in HELDOUT_DESIGN]),
            ("mean regret, test half", [t for t in tasks if t in HELDOUT_TEST]),
        ]
    for label, members in groups:
        if members:
            means = [float(np.mean([regret[r][t] for t in members])) for r in RULES]
            table.append(f"| **{label}** | " + " | ".join(f"**{m:.2f}**" for m in means) + " |")
    worst = [max(shortfall[r].values()) for r in RULES]
    table.append("| worst shortfall (pp) | " + " | ".join(f"{w:.2f}" for w in worst) + " |")
    within = [sum(shortfall[r][t] <= 1.0 for t in tasks) for r in RULES]
    table.append("| tasks within 1 pp | " + " | ".join(f"{n}/{len(tasks)}" for n in within) + " |")
    print("\n".join(table), flush=True)
    if heldout:
        title = (
            "## LR-finder suggestion regret on held-out tasks "
            "(`benchmarks/suggestion_regret.py --suite heldout`)"
        )
        intro = (
            f"The same protocol on {len(tasks)} tasks of `benchmarks/heldout_tasks.py`, made "
            "after lrkit's rule was fixed and never used to tune it: deeper, plain and "
            "normalised (BatchNorm, LayerNorm, residual) networks, tanh, a GRU, SGD and AdamW, "
            "classification and regression. They split into a design half and a test half: a "
            "future change to the rule may look at the design half only. No target: this is "
            "how far the rules carry to models they have never seen."
        )
    else:
        title = "## LR-finder suggestion regret (`benchmarks/suggestion_regret.py`)"
        intro = "Targets: lrkit's default within 1 pp on every task and the lowest mean regret."
    body = (
        f"{title}\n\n"
        f"Each rule's suggestion (from one range test, seed 0) used directly as the one-cycle "
        f"peak; {args.seeds} seeds; grid of {GRID} peaks a third of a decade apart. Cell: "
        "suggested peak: its mean final metric minus the grid's best, in percentage points "
        "(accuracy, or r2 × 100 for regression; positive when it beats every grid peak) and, "
        "in brackets, the normalised regret "
        "(shortfall ÷ (best − grid median); 0 is perfect; a rule that gives no suggestion "
        f"scores the grid median). {intro}\nMachine: {machine()}.\n\n"
        "| task | best grid peak | best mean (%) | grid median (%) |\n|---|---:|---:|---:|\n"
        + "\n".join(task_rows)
        + "\n\n"
        + "\n".join(table)
    )
    write_section("suggestion_regret_heldout" if heldout else "suggestion_regret", body)


if __name__ == "__main__":
    main()
