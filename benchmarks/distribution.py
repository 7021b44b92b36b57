"""Learning-rate finders judged on a distribution of tasks (`task_distribution.py`), with ground
truth cached in the repository (`benchmarks/data/distribution_truth.json`).

**Ground truth.** For every task: one-cycle runs at 13 peaks a third of a decade apart, centred
on the optimizer's usual LR (0.1 for SGD, 1e-3 for the others), over the task's full length with
its optimizer and weight decay, on training seeds 0, 1, 2. While the best mean sits at an end of
the grid, two more peaks are added beyond that end (at most three times). *best* is the best
mean, *median* the median of the means over the grid's first 13 peaks. The **noise floor**: the
best peak retrained on fresh seeds 100, 101, 102, scored as a method would be: the regret of a
method that always picks the grid's best.

**Scores.** A finder's peak is scored by the grid: the mean final metric interpolated linearly
in log(peak) between the two nearest grid peaks (a peak outside the grid scores its nearest
end, and is counted). normalised regret = (best − score) ÷ (best − median); 0 is the best
peak's, 1 the median peak's. A diverged run scores 0 (chance accuracy, r2 0). The LR-free
optimizers are trained themselves on the fresh seeds, for the task's full length.

    python benchmarks/distribution.py truth [--half design|test|all] [--workers 2]
    python benchmarks/distribution.py methods [--half ...] [--methods ...]
    python benchmarks/distribution.py report
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import task_distribution as td
from _distribution_trials import trial as dist_trial
from lrkit import schedules as S
from lrkit.experiments import RunDir, Trial, TrialRecord, run_trials
from lrkit.experiments.trial import encode_lr
from lrkit.tasks import get_task

import _lr_free

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "runs" / "bench-distribution"
TRUTH = Path(__file__).resolve().parent / "data" / "distribution_truth.json"
GRID = 13
SEEDS = (0, 1, 2)
FRESH = (100, 101, 102)
GROW = 2
MAX_GROWTH = 3


def _peak(p: float) -> float:
    return float(f"{p:.6g}")


def grid(name: str) -> list[float]:
    lr0 = td.spec_of(name).default_lr
    half = GRID // 2
    return [_peak(lr0 * 10 ** (k / 3)) for k in range(-half, half + 1)]


def train_trial(name: str, peak: float, seed: int) -> Trial:
    spec = td.spec_of(name)
    p = _peak(peak)
    cfg: dict[str, Any] = {
        "kind": "train",
        "task": name,
        "seed": seed,
        "optimizer": spec.optimizer,
        "weight_decay": spec.weight_decay,
        "lr": encode_lr(S.one_cycle(p, spec.steps)),
        "steps": spec.steps,
        "eval_every": spec.steps,
    }
    return Trial(f"{name}/peak={p:.6g}/seed={seed}", cfg)


def run_metric(rec: TrialRecord | None) -> float | None:
    """A run's final metric (diverged: 0, as chance), ``None`` when missing or failed."""
    if rec is None or rec.status == "failed":
        return None
    res = rec.result
    if "history" in res:
        from lrkit.train.history import History

        h = History.from_dict(res["history"]) if res["history"] else None
        m = h.final_metric if h is not None and not h.diverged else None
    else:
        m = None if res.get("diverged") else res.get("final_metric")
    return max(0.0, float(m)) if m is not None and math.isfinite(m) else 0.0


Records = Mapping[str, TrialRecord]


def _means(records: Records, name: str, peaks: Iterable[float]) -> dict[float, float | None]:
    out: dict[float, float | None] = {}
    for p in peaks:
        vals = [run_metric(records.get(train_trial(name, p, s).key)) for s in SEEDS]
        out[p] = None if any(v is None for v in vals) else float(np.mean(vals))  # type: ignore[arg-type]
    return out


def grown_peaks(records: Records, name: str) -> tuple[list[float], bool]:
    """The task's peaks so far (the grid, grown past an end where the best sits) and whether
    they are complete (every run present, the best not at an end, or growth exhausted)."""
    peaks = grid(name)
    step = 10 ** (1 / 3)
    for _ in range(MAX_GROWTH):
        means = _means(records, name, peaks)
        if any(v is None for v in means.values()):
            return peaks, False
        best = max(peaks, key=lambda p: means[p])  # type: ignore[arg-type,return-value]
        if best == peaks[0]:
            peaks = [_peak(peaks[0] / step**k) for k in range(GROW, 0, -1)] + peaks
        elif best == peaks[-1]:
            peaks = peaks + [_peak(peaks[-1] * step**k) for k in range(1, GROW + 1)]
        else:
            return peaks, True
    means = _means(records, name, peaks)
    return peaks, all(v is not None for v in means.values())


def truth_trials(records: Records, names: Sequence[str]) -> list[Trial]:
    """The runs still needed for the ground truth of ``names``, given ``records``."""
    trials: list[Trial] = []
    for name in names:
        peaks, complete = grown_peaks(records, name)
        trials += [train_trial(name, p, s) for p in peaks for s in SEEDS]
        if complete:
            means = _means(records, name, peaks)
            best = max(peaks, key=lambda p: means[p])  # type: ignore[arg-type,return-value]
            trials += [train_trial(name, best, s) for s in FRESH]
    return list({t.key: t for t in trials}.values())


def _progress(rec: TrialRecord, done: int, total: int) -> None:
    note = f" ({rec.status})" if rec.status != "ok" else ""
    print(f"  [{done}/{total}] {rec.key} {rec.seconds:.1f}s{note}", flush=True)


def names_of(half: str) -> list[str]:
    names = list(td.TASKS)
    if half == "all":
        return sorted(names, key=lambda n: (td.half(n) != "design", n))
    return [n for n in names if td.half(n) == half]


def run_dir() -> RunDir:
    return RunDir(CACHE, {"benchmark": "distribution", "seed": td.SEED, "count": td.COUNT})


def run_truth(names: Sequence[str], workers: int) -> None:
    rd = run_dir()
    for round_ in range(MAX_GROWTH + 2):
        records = {r.key: r for r in rd.records()}
        todo = [t for t in truth_trials(records, names) if t.key not in records]
        if not todo:
            break
        print(f"truth, round {round_ + 1}: {len(todo)} runs", flush=True)
        run_trials(todo, dist_trial, rd, workers=workers, progress=_progress)
    write_truth()


def truth_of(records: Records, name: str) -> dict[str, Any] | None:
    """One task's ground truth from the runs, or ``None`` while incomplete."""
    peaks, complete = grown_peaks(records, name)
    if not complete:
        return None
    means = _means(records, name, peaks)
    best_peak = max(peaks, key=lambda p: means[p])  # type: ignore[arg-type,return-value]
    fresh = [run_metric(records.get(train_trial(name, best_peak, s).key)) for s in FRESH]
    if any(v is None for v in fresh):
        return None
    runs = {
        f"{p:.6g}": [run_metric(records[train_trial(name, p, s).key]) for s in SEEDS] for p in peaks
    }
    spec = td.spec_of(name)
    return {
        "half": td.half(name),
        "family": spec.family,
        "optimizer": spec.optimizer,
        "weight_decay": spec.weight_decay,
        "steps": spec.steps,
        "batch_size": spec.batch_size,
        "usual_lr": spec.default_lr,
        "peaks": peaks,
        "runs": runs,
        "best_peak": best_peak,
        "best": means[best_peak],
        "median": statistics.median(means[p] for p in grid(name)),  # type: ignore[type-var]
        "fresh_at_best": fresh,
    }


def write_truth() -> None:
    records = {r.key: r for r in run_dir().records()}
    tasks = {}
    for name in td.TASKS:
        t = truth_of(records, name)
        if t is not None:
            tasks[name] = t
    TRUTH.parent.mkdir(exist_ok=True)
    doc = {
        "about": (
            "Ground truth of benchmarks/distribution.py: per task, the final metric of one-cycle "
            "runs at each peak on seeds 0, 1, 2 (runs[peak]), and at the best peak on fresh "
            "seeds 100, 101, 102 (fresh_at_best). Written by `distribution.py truth`."
        ),
        "generator_seed": td.SEED,
        "tasks": tasks,
    }
    TRUTH.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"wrote {TRUTH} ({len(tasks)} of {len(td.TASKS)} tasks)", flush=True)


# -- the methods ---------------------------------------------------------------------------------

FINDER_DIR = Path(__file__).resolve().parent.parent / "src" / "lrkit" / "finder"
RANGE_FILES = ("range_test.py", "suggest.py", "result.py", "_sweep_math.py", "classic_rules.py")
BUDGETS = (0.5, 0.25)
RULES = ("lrkit", "min/10", "steepest", "valley", "torch-lr-finder")
LR_FREE = _lr_free.OPTIMIZERS
TUNES = tuple(f"tune_lr({b:g})" for b in BUDGETS)


def _digest(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(path.read_bytes())
    return h.hexdigest()[:10]


def range_version() -> str:
    """A hash of the range test and its rules."""
    return _digest(FINDER_DIR / f for f in RANGE_FILES)


def tune_version() -> str:
    """A hash of the whole finder (the search, the range test, the horizon model's data)."""
    return _digest([*FINDER_DIR.glob("*.py"), FINDER_DIR / "horizon_model.json"])


def range_trial(name: str, f: int) -> Trial:
    cfg = {"kind": "range-test", "task": name, "finder_seed": f}
    return Trial(f"{name}/range-test-{range_version()}/finder={f}", cfg)


def tune_trial(name: str, f: int, budget: float, version: str | None = None) -> Trial:
    cfg = {
        "kind": "tune",
        "task": name,
        "finder_seed": f,
        "budget": budget,
        "steps": td.spec_of(name).steps,
    }
    return Trial(f"{name}/tune-{version or tune_version()}-b{budget:g}/finder={f}", cfg)


def lr_free_trial(name: str, opt: str, seed: int) -> Trial:
    spec = td.spec_of(name)
    settings = _lr_free.settings(opt, get_task(name), spec.steps, spec.weight_decay)
    cfg = {
        "kind": "lr-free",
        "task": name,
        "optimizer": opt,
        "settings": settings,
        "seed": seed,
        "steps": spec.steps,
    }
    tag = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return Trial(f"{name}/lr-free={opt}-{tag}/seed={seed}", cfg)


def method_trials(names: Sequence[str], methods: Sequence[str]) -> list[Trial]:
    trials: list[Trial] = []
    for name in names:
        for f in SEEDS:
            if any(m in RULES for m in methods):
                trials.append(range_trial(name, f))
            for b in BUDGETS:
                if f"tune_lr({b:g})" in methods:
                    trials.append(tune_trial(name, f, b))
        trials += [lr_free_trial(name, o, e) for o in LR_FREE if o in methods for e in FRESH]
    return list({t.key: t for t in trials}.values())


def run_methods(names: Sequence[str], methods: Sequence[str], workers: int) -> None:
    rd = run_dir()
    trials = method_trials(names, methods)
    print(f"methods: {len(trials)} trials", flush=True)
    run_trials(trials, dist_trial, rd, workers=workers, progress=_progress)


# -- scoring -------------------------------------------------------------------------------------


def grid_score(truth: Mapping[str, Any], peak: float | None) -> tuple[float, bool]:
    """The grid's mean final metric at ``peak``, interpolated in log(peak); whether the peak
    lies outside the grid (scored at its nearest end). No peak scores the grid's median."""
    peaks = sorted(float(p) for p in truth["runs"])
    means = [float(np.mean(truth["runs"][f"{p:.6g}"])) for p in peaks]
    if peak is None or not math.isfinite(peak) or peak <= 0:
        return float(truth["median"]), False
    x = math.log(peak)
    xs = [math.log(p) for p in peaks]
    outside = x < xs[0] - 1e-9 or x > xs[-1] + 1e-9
    return float(np.interp(x, xs, means)), outside


def regret(truth: Mapping[str, Any], score: float) -> float:
    span = truth["best"] - truth["median"]
    return (truth["best"] - score) / span if span > 1e-12 else 0.0


def floor_of(truth: Mapping[str, Any]) -> float:
    return regret(truth, float(np.mean(truth["fresh_at_best"])))


def load_truth() -> dict[str, Any]:
    return dict(json.loads(TRUTH.read_text())["tasks"])


def _rec_result(records: Records, key: str) -> dict[str, Any] | None:
    rec = records.get(key)
    if rec is None or rec.status == "failed":
        return None
    return rec.result


def method_peaks(records: Records, name: str, version: str | None = None) -> dict[str, list[Any]]:
    """Each finder's peak per finder seed (``None``: no suggestion; missing trials left out)."""
    out: dict[str, list[Any]] = {}
    for f in SEEDS:
        res = _rec_result(records, range_trial(name, f).key)
        if res is not None:
            for m in RULES:
                lr = res["torch-lr-finder"] if m == "torch-lr-finder" else res["suggestions"][m]
                out.setdefault(m, []).append(lr)
        for b in BUDGETS:
            res = _rec_result(records, tune_trial(name, f, b, version).key)
            if res is not None:
                out.setdefault(f"tune_lr({b:g})", []).append(res)
    return out


def score_task(records: Records, name: str, truth: Mapping[str, Any]) -> dict[str, Any]:
    """Every method's normalised regret on one task (``None`` where its trials are missing)."""
    row: dict[str, Any] = {"floor": floor_of(truth), "outside": {}, "notes": {}}
    for m, vals in method_peaks(records, name).items():
        peaks = []
        for v in vals:
            if isinstance(v, dict):  # a tune trial
                if v.get("peak") is None:  # refused: the user runs the range test alone
                    row["notes"][m] = "budget below the range test: the range test's rule"
                    rt = [x for x in method_peaks(records, name).get("lrkit", [])]
                    v = rt[len(peaks)] if len(rt) > len(peaks) else None
                else:
                    v = v["peak"]
            peaks.append(v)
        scored = [grid_score(truth, p) for p in peaks]
        row[m] = float(np.mean([regret(truth, s) for s, _ in scored]))
        row["outside"][m] = sum(o for _, o in scored)
    usual, _ = grid_score(truth, truth["usual_lr"])
    row["usual LR"] = regret(truth, usual)
    for o in LR_FREE:
        vals = [run_metric(records.get(lr_free_trial(name, o, e).key)) for e in FRESH]
        if all(v is not None for v in vals):
            row[o] = regret(truth, float(np.mean(vals)))  # type: ignore[arg-type]
    return row


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("truth", "methods", "report"))
    ap.add_argument("--half", default="design", choices=("design", "test", "all"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--methods", default=",".join((*RULES, *TUNES, *LR_FREE)))
    args = ap.parse_args(argv)
    names = names_of(args.half)
    if args.what == "truth":
        run_truth(names, args.workers)
    elif args.what == "methods":
        run_methods(names, args.methods.split(","), args.workers)


if __name__ == "__main__":
    main()
