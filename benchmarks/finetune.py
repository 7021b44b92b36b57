"""Fine-tuning a pretrained transformer: which way of choosing its learning rate holds up?

The Hugging Face ``Trainer`` has no LR finder because, its maintainers said
(huggingface/transformers#16013), a finder "does not give reliable results for Transformers
models (usually indicates one in the 1e-3 when the actual best value is in the 1e-5 range)".
This benchmark measures that here, offline, on a model whose pretrained weights matter.

**Model and pretraining** (``_finetune_data.py``): a tiny BERT-like encoder (2 layers, hidden
64, 2 heads, intermediate 128) over a word-level vocabulary built from the standard library's
source, pretrained with masked LM on the train regions of that source for a few minutes (cached).

**Tasks**: ``module`` (which of 8 stdlib modules a 63-token snippet comes from) and ``replaced``
(whether a snippet is as written or has a quarter of its tokens replaced by tokens drawn at the
corpus's word frequencies, so that only context gives them away); 1,600 training and 800
validation examples each in the short setting, the validation ones cut from text pretraining
never saw.

**Fine-tuning** as the Trainer does by default: AdamW (betas 0.9/0.999, eps 1e-8, weight decay
0), the linear schedule without warmup (``transformers.get_scheduler("linear")``), gradient
norm clipped at 1.0 (``max_grad_norm``), batch 32, 2 epochs; scored by accuracy on the validation
split after the last update. Two settings: ``short`` (1,600 training examples, 100 updates per
run) and ``long`` (6,400 examples, 400 updates; ``--setting long``), each with its own cache; the
report shows every setting that has results. The grid's runs use a plain loop with exactly those
settings (faster than building a Trainer per run); the finders read a real ``Trainer``.

**Ground truth**: 13 learning rates from 1e-6 to 1e-2 a third of a decade apart × 3 seeds, on the
pretrained encoder and on the same architecture from scratch. *best* is the grid's highest mean
accuracy, *median* the median of the 13 means.

**Methods** (pretrained encoder only), each with finder seeds 0, 1, 2 (the classifier head's
init, the data order and the finder's own seed): the Trainer's default 5e-5; the range test
(100 updates from 1e-7 to 10) read by lrkit's rule, ``minimum`` (the minimum's LR / 10),
``steepest`` and ``valley``; ``tune_lr`` at budgets 0.25 and 0.5 with the Trainer's linear
schedule. The finders see only the training split: ``tune_lr`` trains its probes on its first
80% and scores them on the last 20%. A chosen LR is trained on the grid's seeds and scored by
their mean accuracy; with ``--interpolate`` (or where the deadline left no time) a chosen LR inside
the grid scores the grid's mean accuracy interpolated linearly in log10(LR) between the two grid
points around it. A finder seed without a suggestion scores the median.
normalised regret = (best − score) ÷ (best − median).

Results are cached in runs/bench-finetune/results.json after every run; a rerun trains only what
is missing (``--fresh`` starts over, ``--deadline HH:MM`` stops starting new work at that UTC time
and reports what ran).

    python benchmarks/finetune.py [--setting short|long] [--seeds 3] [--finder-seeds 3]
        [--scratch-every 1] [--interpolate] [--deadline HH:MM]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

import _finetune_data as D
import _finetune_report as R
from _finetune_data import BATCH, BUDGETS, EPOCHS, GRID, RULES

from _report import ROOT

CACHE = ROOT / "runs" / "bench-finetune"
RESULTS = CACHE / "results.json"
PRETRAINED = CACHE / "pretrained"
FIGURE = ROOT / "docs" / "gallery" / "finetune_grid.png"

SETTINGS = {"short": 1600, "long": 6400}  # training examples (2 epochs: 100 / 400 updates)
STEPS = EPOCHS * math.ceil(D.N_TRAIN / BATCH)  # optimizer updates per run (100)
WARMUP = 0  # the Trainer's default warmup
MAX_GRAD_NORM = 1.0  # the Trainer's default
DEFAULT_LR = 5e-5  # the Trainer's default learning_rate
RANGE_STEPS = 100
TUNE_HOLDOUT = 0.2  # fraction of the training split tune_lr scores its probes on
FINDER_SEED_BASE = 100  # finder seed s builds its model with seed 100 + s


def use_setting(name: str) -> None:
    """Point the run length, the tasks' training split and the cache at one setting."""
    global STEPS, RESULTS
    D.N_TRAIN = SETTINGS[name]
    STEPS = EPOCHS * math.ceil(D.N_TRAIN / BATCH)
    RESULTS = CACHE / ("results.json" if name == "short" else f"results-{name}.json")


# -- cache ---------------------------------------------------------------------------------


class Cache:
    """A JSON file of results, written after every entry."""

    def __init__(self, path: Path, fresh: bool) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        if path.exists() and not fresh:
            self.data = json.loads(path.read_text())

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def put(self, key: str, value: Any) -> None:
        if self.path.exists():  # keep what another invocation wrote meanwhile
            self.data = {**json.loads(self.path.read_text()), **self.data}
        self.data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        tmp.replace(self.path)


# -- data and training ---------------------------------------------------------------------


class Examples(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Token windows and labels as the dicts a ``Trainer``'s default collator stacks."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.x[i], "labels": self.y[i]}


@torch.no_grad()
def accuracy(model: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    hits = sum(
        int((model(input_ids=xb).logits.argmax(-1) == yb).sum())
        for xb, yb in zip(x.split(200), y.split(200), strict=True)
    )
    model.train()
    return hits / len(y)


def train_run(data: dict[str, Any], n_labels: int, pretrained: bool, lr: float, seed: int) -> float:
    """One fine-tuning run with the Trainer's default optimizer, schedule and clipping."""
    import transformers

    model = D.classifier(n_labels, PRETRAINED if pretrained else None, seed)
    x, y = (torch.from_numpy(a) for a in data["train"])
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
    sched = transformers.get_scheduler(
        "linear", opt, num_warmup_steps=WARMUP, num_training_steps=STEPS
    )
    model.train()
    step = 0
    while step < STEPS:
        for idx in torch.randperm(len(y), generator=g).split(BATCH):
            loss = model(input_ids=x[idx], labels=y[idx]).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step == STEPS:
                break
    xv, yv = (torch.from_numpy(a) for a in data["val"])
    return accuracy(model, xv, yv)


def linear_schedule(peak: float, steps: int) -> Any:
    """The Trainer's ``lr_scheduler_type="linear"`` without warmup, as an lrkit schedule."""
    from lrkit import schedules as S

    return S.linear(peak, 0.0, steps)


def check_linear_schedule() -> float:
    """Largest difference between :func:`linear_schedule` and ``get_scheduler("linear")``."""
    import transformers

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
    sched = transformers.get_scheduler("linear", opt, num_warmup_steps=0, num_training_steps=STEPS)
    theirs = []
    for _ in range(STEPS + 1):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = linear_schedule(3e-4, STEPS)(np.arange(STEPS + 1))
    return float(np.max(np.abs(np.asarray(ours) - np.asarray(theirs))))


# -- finders -------------------------------------------------------------------------------


def make_trainer(
    train: Examples, evaluation: Examples | None, n_labels: int, seed: int, out: str
) -> Any:
    """A ``Trainer`` as a user would write it: defaults, batch 32, the run's length, accuracy."""
    import transformers

    def compute_metrics(pred: Any) -> dict[str, float]:
        return {"accuracy": float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())}

    args = transformers.TrainingArguments(
        output_dir=out, per_device_train_batch_size=BATCH, per_device_eval_batch_size=200,
        max_steps=STEPS, learning_rate=DEFAULT_LR, warmup_steps=WARMUP, seed=seed,
        report_to=[], save_strategy="no", logging_strategy="no", eval_strategy="no",
        use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
        metric_for_best_model="accuracy", greater_is_better=True,
    )  # fmt: skip
    model = D.classifier(n_labels, PRETRAINED, FINDER_SEED_BASE + seed)
    return transformers.Trainer(
        model=model, args=args, train_dataset=train, eval_dataset=evaluation,
        compute_metrics=compute_metrics if evaluation is not None else None,
    )  # fmt: skip


def run_range_test(data: dict[str, Any], n_labels: int, seed: int) -> dict[str, Any]:
    """The range test on the Trainer's model and training data; every rule's LR."""
    from lrkit import huggingface as lh

    train = Examples(*data["train"])
    with tempfile.TemporaryDirectory() as out:
        trainer = make_trainer(train, None, n_labels, seed, out)
        result = lh.range_test(trainer, steps=RANGE_STEPS, seed=seed)
    via = "lrkit.huggingface.range_test(trainer)"
    rules = {rule: result.suggest(rule, band=False).lr for rule in RULES}
    return {"rules": rules, "via": via, "stop": str(result.stop_reason)}


def run_tune(data: dict[str, Any], n_labels: int, seed: int, budget: float) -> dict[str, Any]:
    """``tune_lr`` on a Trainer whose training data is the first 80% of the training split
    and whose evaluation data is the last 20% (the validation split stays unseen)."""
    from lrkit import huggingface as lh

    x, y = data["train"]
    cut = int(len(y) * (1 - TUNE_HOLDOUT))
    train, held = Examples(x[:cut], y[:cut]), Examples(x[cut:], y[cut:])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        trainer = make_trainer(train, held, n_labels, seed, out)
        result = lh.tune_lr(trainer, budget=budget, seed=seed)
    via = "lrkit.huggingface.tune_lr(trainer)"
    return {
        "peak": float(result.peak),
        "spent": float(result.spent),
        "score": str(result.score_name),
        "seconds": round(time.perf_counter() - start, 1),
        "via": via,
        "reason": str(result.reason),
        "range_test_updates": len(result.range_test.lrs),
        "probes": [[float(p.peak), int(p.steps), float(p.score)] for p in result.probes],
    }


# -- the benchmark -------------------------------------------------------------------------


class Deadline:
    """Stops new work at a wall-clock time (UTC) so that what ran is still reported."""

    def __init__(self, hhmm: str | None) -> None:
        self.at: float | None = None
        if hhmm:
            now = datetime.now(timezone.utc)
            h, m = (int(v) for v in hhmm.split(":"))
            self.at = now.replace(hour=h, minute=m, second=0, microsecond=0).timestamp()

    def passed(self) -> bool:
        return self.at is not None and time.time() >= self.at


def grid_key(task: str, init: str, lr: float, seed: int) -> str:
    return f"grid|{task}|{init}|{lr:.3e}|{seed}"


def run_grid(
    cache: Cache, corpus: D.Corpus, task: str, init: str, lrs: list[float], seeds: range,
    deadline: Deadline,
) -> None:  # fmt: skip
    data = D.task_data(corpus, task)
    n_labels = D.TASKS[task][1]
    for seed in seeds:
        for lr in lrs:
            key = grid_key(task, init, lr, seed)
            if cache.get(key) is not None or deadline.passed():
                continue
            start = time.perf_counter()
            acc = train_run(data, n_labels, init == "pretrained", lr, seed)
            cache.put(key, acc)
            print(f"{key}: {acc:.3f} ({time.perf_counter() - start:.1f}s)", flush=True)


def run_finders(
    cache: Cache, corpus: D.Corpus, task: str, finder_seeds: range, deadline: Deadline
) -> None:
    data = D.task_data(corpus, task)
    n_labels = D.TASKS[task][1]
    for seed in finder_seeds:
        key = f"range_test|{task}|{seed}"
        if cache.get(key) is None and not deadline.passed():
            cache.put(key, run_range_test(data, n_labels, seed))
            print(f"{key}: {cache.get(key)}", flush=True)
        for budget in BUDGETS:
            key = f"tune|{task}|{budget}|{seed}"
            if cache.get(key) is None and not deadline.passed():
                cache.put(key, run_tune(data, n_labels, seed, budget))
                print(f"{key}: {cache.get(key)}", flush=True)


def grid_means(cache: Cache, task: str, init: str) -> dict[float, tuple[float, float, int]]:
    """LR -> (mean, std, n) of the grid's final accuracies that ran."""
    out = {}
    for lr in GRID:
        accs = [
            cache.get(grid_key(task, init, lr, s))
            for s in range(10)
            if cache.get(grid_key(task, init, lr, s)) is not None
        ]
        if accs:
            out[lr] = (float(np.mean(accs)), float(np.std(accs)), len(accs))
    return out


def interpolate(means: dict[float, tuple[float, float, int]], lr: float) -> float | None:
    """The grid's mean accuracy at ``lr``, linear in log10(LR); None outside the grid."""
    xs = sorted(means)
    if not xs or lr < xs[0] * (1 - 1e-9) or lr > xs[-1] * (1 + 1e-9):
        return None
    lx = [math.log10(v) for v in xs]
    return float(np.interp(math.log10(lr), lx, [means[v][0] for v in xs]))


def method_lrs(cache: Cache, task: str, finder_seeds: int) -> dict[str, list[float | None]]:
    """Each method's chosen LR per finder seed (None: no suggestion)."""
    out: dict[str, list[float | None]] = {"default 5e-5": [DEFAULT_LR]}
    for rule in RULES:
        rts = [cache.get(f"range_test|{task}|{s}") for s in range(finder_seeds)]
        got = [r["rules"][rule] for r in rts if r is not None]
        if got:
            out[f"range test: {rule}"] = got
    for budget in BUDGETS:
        tunes = [cache.get(f"tune|{task}|{budget}|{s}") for s in range(finder_seeds)]
        got = [t["peak"] for t in tunes if t is not None]
        if got:
            out[f"tune_lr({budget:g})"] = got
    return out


def score_lr(
    cache: Cache, corpus: D.Corpus, task: str, lr: float | None, seeds: int,
    median: float, deadline: Deadline, train: bool, direct: bool,
) -> tuple[float | None, str]:  # fmt: skip
    """Mean validation accuracy for ``lr`` over the grid's seeds: trained directly (with
    ``direct``, or outside the grid), else interpolated in the grid."""
    if lr is None:
        return median, "no suggestion: median"
    means = grid_means(cache, task, "pretrained")
    inside = interpolate(means, lr)
    accs = []
    for seed in range(seeds):
        key = f"direct|{task}|{lr:.4e}|{seed}"
        if cache.get(key) is None and train and (direct or inside is None):
            if deadline.passed():
                break
            data = D.task_data(corpus, task)
            cache.put(key, train_run(data, D.TASKS[task][1], True, lr, seed))
            print(f"{key}: {cache.get(key):.3f}", flush=True)
        if cache.get(key) is not None:
            accs.append(cache.get(key))
    if len(accs) == seeds and (direct or inside is None):
        return float(np.mean(accs)), "trained"
    if inside is not None:
        return inside, "interpolated"
    return None, "not trained yet"


# -- report --------------------------------------------------------------------------------


def _geo(lrs: list[float | None]) -> float | None:
    got = [v for v in lrs if v is not None]
    return float(math.exp(statistics.mean(math.log(v) for v in got))) if got else None


def summarise(
    cache: Cache, corpus: D.Corpus, seeds: int, finder_seeds: int, deadline: Deadline,
    train: bool, direct: bool,
) -> dict[str, Any]:  # fmt: skip
    """Per task: the grids, best/median, and every method's LRs, score and regret."""
    tasks: dict[str, Any] = {}
    for task in D.TASKS:
        means = grid_means(cache, task, "pretrained")
        if len(means) < 3:
            continue
        best_lr = max(means, key=lambda v: means[v][0])
        best = means[best_lr][0]
        median = statistics.median(m for m, _, _ in means.values())
        scratch = grid_means(cache, task, "scratch")
        methods = {}
        for name, lrs in method_lrs(cache, task, finder_seeds).items():
            scored = [
                score_lr(cache, corpus, task, lr, seeds, median, deadline, train, direct)
                for lr in lrs
            ]
            got = [s for s, _ in scored if s is not None]
            score = float(np.mean(got)) if len(got) == len(lrs) else None
            regret = None if score is None else (best - score) / max(best - median, 1e-9)
            methods[name] = {
                "lrs": lrs, "lr": _geo(lrs), "score": score, "regret": regret,
                "how": sorted({h for _, h in scored}),
                "decades": [None if v is None else math.log10(v / best_lr) for v in lrs],
            }  # fmt: skip
        tasks[task] = {
            "means": means, "best_lr": best_lr, "best": best, "median": median,
            "complete": all(n >= seeds for _, _, n in means.values()) and len(means) == len(GRID),
            "scratch": scratch, "methods": methods,
        }  # fmt: skip
    return tasks


# -- main ----------------------------------------------------------------------------------


def collect(
    current: str, corpus: D.Corpus, deadline: Deadline, train: bool, direct: bool
) -> dict[str, dict[str, Any]]:
    """Every setting with results: its summary (training what is missing only for
    ``current`` when ``train``), its configuration and how its finders ran."""
    blocks = {}
    for setting in SETTINGS:
        use_setting(setting)
        if not RESULTS.exists():
            continue
        cache = Cache(RESULTS, False)
        cfg = cache.get("config") or {"seeds": 3, "finder_seeds": 3, "scratch_every": 1}
        summary = summarise(
            cache, corpus, cfg["seeds"], cfg["finder_seeds"], deadline,
            train and setting == current, direct if setting == current else cfg.get("direct", True),
        )  # fmt: skip
        vias = {v["via"] for k, v in cache.data.items() if k.startswith(("range_test|", "tune|"))}
        if summary:
            blocks[setting] = {
                "tasks": summary, "config": cfg, "vias": sorted(vias),
                "n_train": D.N_TRAIN, "steps": STEPS,
                "tunes": {k: v for k, v in cache.data.items() if k.startswith("tune|")},
            }  # fmt: skip
    use_setting(current)
    return blocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--finder-seeds", type=int, default=3)
    parser.add_argument("--scratch-every", type=int, default=1, help="1: the whole grid")
    parser.add_argument("--tasks", default=",".join(D.TASKS))
    parser.add_argument("--deadline", default=None, help="UTC HH:MM: start no new run after")
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument(
        "--interpolate", dest="direct", action="store_false",
        help="score chosen LRs inside the grid by interpolation instead of training them",
    )  # fmt: skip
    parser.add_argument("--only", choices=["all", "grid", "finders"], default="all")
    parser.add_argument(
        "--figure-only", action="store_true",
        help=f"redraw {FIGURE.relative_to(ROOT)} from the cache; train nothing, write no report",
    )  # fmt: skip
    parser.add_argument("--setting", choices=list(SETTINGS), default="short")
    a = parser.parse_args()
    use_setting(a.setting)
    torch.set_num_threads(1)
    deadline = Deadline(a.deadline)
    cache = Cache(RESULTS, a.fresh)
    if a.figure_only:
        if not RESULTS.exists():
            raise SystemExit(f"no results in {RESULTS}: run benchmarks/finetune.py first")
        R.figure(collect(a.setting, D.Corpus(), deadline, False, a.direct), FIGURE)
        return
    gap = check_linear_schedule()
    if gap > 1e-12:
        raise SystemExit(f"lrkit's linear schedule differs from the Trainer's by {gap:g}")
    corpus = D.Corpus()
    cache.put("pretrain", D.pretrain(corpus, PRETRAINED))
    cache.put("config", {"seeds": a.seeds, "finder_seeds": a.finder_seeds,
                         "scratch_every": a.scratch_every, "direct": a.direct})  # fmt: skip
    tasks = a.tasks.split(",")
    scratch = GRID[:: a.scratch_every] if a.scratch_every else []

    def write(train: bool = False) -> None:
        blocks = collect(a.setting, corpus, deadline, train, a.direct)
        if blocks:
            R.report(blocks, cache.get("pretrain") or {})
            R.figure(blocks, FIGURE)

    grid: list[Callable[[str], None]] = [
        lambda t: run_grid(cache, corpus, t, "pretrained", GRID, range(1), deadline),
        lambda t: run_grid(cache, corpus, t, "pretrained", GRID, range(1, a.seeds), deadline),
        lambda t: run_grid(cache, corpus, t, "scratch", scratch, range(a.seeds), deadline),
    ]
    finders: list[Callable[[str], None]] = [
        lambda t: run_finders(cache, corpus, t, range(1), deadline),
        lambda t: run_finders(cache, corpus, t, range(1, a.finder_seeds), deadline),
    ]
    stages = {"all": grid[:1] + finders[:1] + grid[1:] + finders[1:], "grid": grid}
    stages["finders"] = finders
    for stage in stages[a.only]:
        for task in tasks:
            stage(task)
        write()
    write(train=True)


if __name__ == "__main__":
    main()
