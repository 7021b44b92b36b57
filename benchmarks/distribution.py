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

**The horizon model** of ``tune_lr`` (``lrkit/finder/horizon_model.json``) is fitted here on
the design half's searches (``fit``), and the evidence factor chosen, by leave-one-task-out
cross-validation.

    python benchmarks/distribution.py truth [--half design|test|all] [--workers 2]
    python benchmarks/distribution.py methods [--half ...] [--methods ...]
    python benchmarks/distribution.py fit --version <search version> [--write]
    python benchmarks/distribution.py report --half all
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
from lrkit.finder.peak_choice import decide
from lrkit.tasks import get_task
from suggestion_regret import run_metric

import _lr_free
from _report import README, machine, write_section

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
RULES = ("lrkit", "minimum", "steepest", "valley", "torch-lr-finder")
LR_FREE = _lr_free.OPTIMIZERS
TUNES = tuple(f"tune_lr({b:g})" for b in BUDGETS)


def _digest(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(path.read_bytes())
    return h.hexdigest()[:10]


TRIALS = Path(__file__).resolve().parent / "_distribution_trials.py"


def range_version() -> str:
    """A hash of the range test, its rules and the trials' set-up."""
    return _digest([*(FINDER_DIR / f for f in RANGE_FILES), TRIALS])


def tune_version() -> str:
    """A hash of the whole finder (the search, the range test, the horizon model's data) and
    the trials' set-up."""
    return _digest([*FINDER_DIR.glob("*.py"), FINDER_DIR / "horizon_model.json", TRIALS])


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


def method_peaks(
    records: Records, name: str, version: str | None = None
) -> dict[str, dict[int, Any]]:
    """Each finder's outcome by finder seed, missing trials left out: a rule's peak (``None``:
    no suggestion), or a tune trial's result."""
    out: dict[str, dict[int, Any]] = {}
    for f in SEEDS:
        res = _rec_result(records, range_trial(name, f).key)
        if res is not None:
            for m in RULES:
                lr = res["torch-lr-finder"] if m == "torch-lr-finder" else res["suggestions"][m]
                out.setdefault(m, {})[f] = lr
        for b in BUDGETS:
            res = _rec_result(records, tune_trial(name, f, b, version).key)
            if res is not None:
                out.setdefault(f"tune_lr({b:g})", {})[f] = res
    return out


def score_task(records: Records, name: str, truth: Mapping[str, Any]) -> dict[str, Any]:
    """Every method's normalised regret on one task (``None`` where its trials are missing),
    and how many of its peaks fell outside the grid."""
    row: dict[str, Any] = {"floor": floor_of(truth), "outside": {}, "notes": {}}
    found = method_peaks(records, name)
    for m, by_seed in found.items():
        peaks = []
        for f, v in by_seed.items():
            if isinstance(v, dict):  # a tune trial
                if v.get("peak") is None:  # refused: the user runs the range test alone
                    row["notes"][m] = "budget below the range test: the range test's rule"
                    v = found.get("lrkit", {}).get(f)
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


# -- the horizon model, fitted on the design half -------------------------------------------------

HORIZON = FINDER_DIR / "horizon_model.json"
RIDGE = (0.3, 1.0, 3.0, 10.0, 30.0, math.inf)
"""Ridge penalties tried; ``inf`` is a constant shift (the features left out)."""
EVIDENCE_GRID = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, math.inf)
SHIFT_RANGE = (-4.0, 2.0)
MAX_DOUBLINGS = 4.0
"""Probes shorter than a sixteenth of the run are not evidence (``peak_choice.MIN_FRACTION``):
the model is fitted on the searches whose probes were at least that long."""


def smooth_best(truth: Mapping[str, Any]) -> float:
    """The best peak of the grid refined by a parabola through the best mean and its two
    neighbours in log(peak), kept between them."""
    peaks = sorted(float(p) for p in truth["runs"])
    means = [float(np.mean(truth["runs"][f"{p:.6g}"])) for p in peaks]
    i = int(np.argmax(means))
    if i == 0 or i == len(peaks) - 1:
        return peaks[i]
    x = np.log([peaks[i - 1], peaks[i], peaks[i + 1]])
    a, b, _ = np.polyfit(x, means[i - 1 : i + 2], 2)
    if a >= 0:
        return peaks[i]
    return float(np.exp(np.clip(-b / (2 * a), x[0], x[2])))


def design_rows(records: Records, truth: Mapping[str, Any], version: str) -> list[dict[str, Any]]:
    """One row per design search (task, budget, finder seed) with recorded probes: its
    evidence and the target ``log2(best full-run peak / best probe peak)``."""
    rows = []
    for name, t in truth.items():
        if t["half"] != "design":
            continue
        best = smooth_best(t)
        for b in BUDGETS:
            for f in SEEDS:
                res = _rec_result(records, tune_trial(name, f, b, version).key)
                if res is None or res.get("peak") is None:
                    continue
                ev = res["result"].get("evidence")
                rows.append(
                    {
                        "task": name, "budget": b, "seed": f, "evidence": ev,
                        "peak": res["peak"], "anchor": res["range_test_peak"],
                        "y": math.log2(best / ev["vertex"]) if ev and ev.get("vertex") else None,
                    }
                )  # fmt: skip
    return rows


def _fit_ridge(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
    """Ridge regression on standardized ``x``; an infinite penalty is the constant model."""
    if math.isinf(lam):
        return np.zeros(x.shape[1]), float(y.mean())
    a = x.T @ x + lam * np.eye(x.shape[1])
    beta = np.linalg.solve(a, x.T @ (y - y.mean()))
    return beta, float(y.mean())


def fit_horizon(version: str) -> dict[str, Any]:
    """Fit the horizon model on the design half's recorded searches (``version``: the search's
    source hash they ran with), choose the ridge penalty and the evidence factor by
    leave-one-task-out cross-validation, and return the model with its report."""
    from lrkit.finder.horizon import FEATURES, HorizonModel

    records = {r.key: r for r in run_dir().records()}
    truth = load_truth()
    rows = [r for r in design_rows(records, truth, version) if r["evidence"] is not None]
    fit_rows = [
        r
        for r in rows
        if r["y"] is not None
        and r["evidence"].get("learned")
        and r["evidence"]["features"]["doublings"] <= MAX_DOUBLINGS + 1e-9
    ]
    x = np.array([[r["evidence"]["features"][k] for k in FEATURES] for r in fit_rows])
    y = np.array([r["y"] for r in fit_rows])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    tasks = sorted({r["task"] for r in fit_rows})

    def loto(lam: float) -> np.ndarray:
        pred = np.zeros(len(y))
        for t in tasks:
            held = np.array([r["task"] == t for r in fit_rows])
            beta, c = _fit_ridge(z[~held], y[~held], lam)
            pred[held] = c + z[held] @ beta
        return np.clip(pred, *SHIFT_RANGE)

    cv = {lam: float(np.sqrt(np.mean((loto(lam) - y) ** 2))) for lam in RIDGE}
    lam = min(cv, key=cv.__getitem__)
    pred_cv = loto(lam)
    beta, c = _fit_ridge(z, y, lam)
    const_rmse = float(np.sqrt(np.mean((y - y.mean()) ** 2)))
    shifts = {
        (r["task"], r["budget"], r["seed"]): p for r, p in zip(fit_rows, pred_cv, strict=True)
    }
    choice = {}
    for k in EVIDENCE_GRID:
        regrets = {b: [] for b in BUDGETS}
        for r in rows:
            peak = _decide(r, k, shifts.get((r["task"], r["budget"], r["seed"])))
            regrets[r["budget"]].append(
                regret(truth[r["task"]], grid_score(truth[r["task"]], peak)[0])
            )
        choice[k] = {b: float(np.mean(v)) for b, v in regrets.items()}
    model = HorizonModel(
        intercept=c,
        coef={k: float(v) for k, v in zip(FEATURES, beta, strict=True)},
        mean={k: float(v) for k, v in zip(FEATURES, mean, strict=True)},
        scale={k: float(v) for k, v in zip(FEATURES, scale, strict=True)},
        low=SHIFT_RANGE[0],
        high=SHIFT_RANGE[1],
        cv_rmse=cv[lam],
        about=(
            f"ridge (penalty {lam:g}; inf: a constant shift) on {len(fit_rows)} searches of "
            f"{len(tasks)} design tasks of "
            f"benchmarks/task_distribution.py (search version {version}); leave-one-task-out "
            f"RMSE {cv[lam]:.2f} doublings, against {cv[math.inf]:.2f} for a constant shift"
        ),
    )
    return {"model": model, "cv": cv, "lambda": lam, "const_rmse": const_rmse,
            "evidence": choice, "rows": len(rows), "fit_rows": len(fit_rows)}  # fmt: skip


def _decide(row: Mapping[str, Any], k: float, shift: float | None) -> float:
    """What the search answers for a recorded row with evidence factor ``k`` and horizon shift
    ``shift`` (``None``: no shift available, the suggestion), by the search's own rule
    (:func:`lrkit.finder.peak_choice.decide`). A recorded ``None`` is an infinite noise or gap
    (JSON has no infinity)."""
    ev = row["evidence"]
    if shift is None:
        return float(ev["anchor"])
    inf = {key: math.inf for key in ("noise", "gap") if ev.get(key) is None}
    return decide({**ev, **inf, "shift": shift}, k)[0]


def run_fit(version: str, write: bool) -> None:
    out = fit_horizon(version)
    print(f"design searches: {out['rows']}, fitted on {out['fit_rows']} whose probes learned")
    print("leave-one-task-out RMSE (doublings) by ridge penalty:", out["cv"])
    print(f"a constant, in sample (not cross-validated): {out['const_rmse']:.3f}")
    print("design mean regret by evidence factor (cross-validated shifts):")
    for k, v in out["evidence"].items():
        print(f"  k={k:g}: " + ", ".join(f"budget {b:g}: {r:.3f}" for b, r in v.items()))
    print(json.dumps(out["model"].to_dict(), indent=1))
    if write:
        HORIZON.write_text(json.dumps(out["model"].to_dict(), indent=1, sort_keys=True) + "\n")
        print(f"wrote {HORIZON}")


# -- the report ---------------------------------------------------------------------------------

LABELS = {
    "tune_lr(0.5)": "**tune_lr(0.5)**",
    "tune_lr(0.25)": "**tune_lr(0.25)**",
    "lrkit": "range test (lrkit rule)",
    "minimum": "minimum (min/10)",
    "steepest": "steepest",
    "valley": "valley",
    "torch-lr-finder": "torch-lr-finder",
    "usual LR": "usual LR",
    **_lr_free.LABELS,
}
COLUMNS = tuple(LABELS)
PEERS = tuple(c for c in COLUMNS if not c.startswith("tune_lr"))
NOISE_MARGIN = {"tune_lr(0.5)": 0.05, "tune_lr(0.25)": 0.10}
TASK_CAP = 0.5
TASK_FLOOR_MARGIN = 0.25


def _mean(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return float(np.mean(vals)) if vals and len(vals) == len(xs) else None


def _median(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return float(np.median(vals)) if vals and len(vals) == len(xs) else None


def _clip(x: float | None) -> float | None:
    return None if x is None else min(max(x, -1.0), 3.0)


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def scored(half: str) -> dict[str, dict[str, Any]]:
    records = {r.key: r for r in run_dir().records()}
    truth = load_truth()
    return {n: score_task(records, n, t) for n, t in truth.items() if t["half"] == half}


def _wall(half: str) -> dict[str, list[float]]:
    """tune_lr's wall time over a training run's, per budget, over the half's searches."""
    records = {r.key: r for r in run_dir().records()}
    out: dict[str, list[float]] = {}
    for name in names_of(half):
        for b in BUDGETS:
            for f in SEEDS:
                res = _rec_result(records, tune_trial(name, f, b).key)
                if res and res.get("peak") is not None:
                    out.setdefault(f"tune_lr({b:g})", []).append(
                        res["tune_seconds"] / res["train_seconds"]
                    )
    return out


def _targets(rows: Mapping[str, Mapping[str, Any]]) -> list[str]:
    floor = float(np.mean([r["floor"] for r in rows.values()]))
    lines = [f"Noise floor of the half (mean over tasks): **{floor:.2f}**.", ""]
    for m, margin in NOISE_MARGIN.items():
        vals = [r.get(m) for r in rows.values()]
        mean = _mean(vals)
        if mean is None:
            lines.append(f"- {m}: not measured")
            continue
        med = float(np.median(vals))  # type: ignore[arg-type]
        over = [n for n, r in rows.items() if r[m] > max(TASK_CAP, r["floor"] + TASK_FLOOR_MARGIN)]
        peers = {p: _mean([r.get(p) for r in rows.values()]) for p in PEERS}
        worse = [LABELS[p] for p, v in peers.items() if v is not None and v <= mean]
        unmeasured = [LABELS[p] for p, v in peers.items() if v is None]
        ok = "met" if mean <= floor + margin else "**not met**"
        lines.append(
            f"- {m}: mean {mean:.2f} against floor + {margin:g} = {floor + margin:.2f}: {ok}"
        )
        if m == "tune_lr(0.5)":
            lines.append(
                f"  - median {med:.2f} (target ≤ 0.05): {'met' if med <= 0.05 else '**not met**'}"
            )
            lines.append(
                f"  - tasks above max(0.5, floor + 0.25): {len(over)}"
                + (f" ({', '.join(sorted(over))})" if over else "")
            )
        lines.append(
            "  - below every peer: "
            + ("met" if not worse else f"**not met** (level or better: {', '.join(worse)})")
            + (f" (not run on this half: {', '.join(unmeasured)})" if unmeasured else "")
        )
    rt = _mean([r.get("lrkit") for r in rows.values()])
    others = {p: _mean([r.get(p) for r in rows.values()]) for p in PEERS if p != "lrkit"}
    worse = [LABELS[p] for p, v in others.items() if v is not None and rt is not None and v <= rt]
    missing = [LABELS[p] for p, v in others.items() if v is None]
    lines.append(
        f"- the range test alone: mean {_f(rt)}; below every other rule, the usual LR and the "
        "LR-free optimizers: "
        + ("met" if not worse else f"**not met** (level or better: {', '.join(worse)})")
        + (f" (not run on this half: {', '.join(missing)})" if missing else "")
    )
    return lines


def render(half: str) -> str:
    rows = scored(half)
    cols = [c for c in COLUMNS if any(c in r for r in rows.values())]
    out = [
        f"## LR finders on a task distribution (`benchmarks/distribution.py`), {half} half",
        "",
        f"{len(rows)} tasks of `benchmarks/task_distribution.py` (generator seed {td.SEED}; "
        "the halves fixed by a hash of the names before any task was trained). Mean normalised "
        "regret (0: the best grid peak; 1: the grid's median peak; lower is better), ground "
        "truth from `benchmarks/data/distribution_truth.json`. " + PROTOCOL,
        "",
    ]
    out += _targets(rows)
    fams = sorted({td.spec_of(n).family for n in rows})
    out += ["", "By family (tasks; mean regret):", ""]
    out.append("| family | n | floor | " + " | ".join(LABELS[c] for c in cols) + " |")
    out.append("|---|---:|---:|" + "---:|" * len(cols))
    for fam in [*fams, "all"]:
        fr = [r for n, r in rows.items() if fam == "all" or td.spec_of(n).family == fam]
        cells = [_f(_mean([r.get(c) for r in fr])) for c in cols]
        name = "**all**" if fam == "all" else fam
        out.append(
            f"| {name} | {len(fr)} | {_f(_mean([r['floor'] for r in fr]))} | "
            + " | ".join(cells)
            + " |"
        )
    every = list(rows.values())
    out.append(
        f"| all, median | {len(every)} | {_f(_median([r['floor'] for r in every]))} | "
        + " | ".join(_f(_median([r.get(c) for r in every])) for c in cols)
        + " |"
    )
    out.append(
        f"| all, clipped to [-1, 3] | {len(every)} | "
        f"{_f(_mean([_clip(r['floor']) for r in every]))} | "
        + " | ".join(_f(_mean([_clip(r.get(c)) for r in every])) for c in cols)
        + " |"
    )
    out += [
        "",
        "The mean is the targets' measure; a task whose grid is nearly flat (best − median a "
        "few thousandths) turns small differences into large regrets either way, so the "
        "median and a mean of regrets clipped to [-1, 3] are shown too.",
    ]
    wall = _wall(half)
    if wall:
        out += [
            "",
            "tune_lr's wall time over one training run of the task (same process and thread):",
            "",
        ]
        for m, v in wall.items():
            out.append(
                f"- {m}: median {np.median(v):.2f} (target ≤ budget + 0.05), "
                f"max {max(v):.2f} (target ≤ 1.0)"
            )
    out += ["", "<details><summary>Per task</summary>", ""]
    out.append("| task | floor | " + " | ".join(LABELS[c] for c in cols) + " |")
    out.append("|---|---:|" + "---:|" * len(cols))
    for n, r in sorted(rows.items()):
        out.append(f"| {n} | {_f(r['floor'])} | " + " | ".join(_f(r.get(c)) for c in cols) + " |")
    notes = sorted({f"{m}: {v}" for r in rows.values() for m, v in r["notes"].items()})
    out += ["", "</details>", ""]
    if notes:
        out += [
            f"Note: {len([1 for r in rows.values() if r['notes']])} tasks where {notes[0]}.",
            "",
        ]
    outside = {c: sum(r["outside"].get(c, 0) for r in rows.values()) for c in cols}
    if any(outside.values()):
        out += [
            "Peaks outside the grid, scored at its nearest end (finder runs, of "
            f"{len(SEEDS) * len(rows)} each): "
            + ", ".join(f"{LABELS[c]} {n}" for c, n in outside.items() if n)
            + ".",
            "",
        ]
    out.append(f"Machine: {machine()}.")
    return "\n".join(out)


def readme_lines() -> str:
    """The README's lines: the test half's headline table and the targets' verdicts."""
    rows = scored("test")
    floor = float(np.mean([r["floor"] for r in rows.values()]))
    means = {c: _mean([r.get(c) for r in rows.values()]) for c in COLUMNS}
    rules = ("minimum", "steepest", "valley", "torch-lr-finder")
    best_rule = min((c for c in rules if means[c] is not None), key=lambda c: means[c])  # type: ignore[arg-type,return-value]
    free = [c for c in LR_FREE if means.get(c) is not None]
    best_free = min(free, key=lambda c: means[c]) if free else None  # type: ignore[arg-type,return-value]
    design = scored("design")
    dmeans = {c: _mean([r.get(c) for r in design.values()]) for c in COLUMNS}
    medians = {c: _median([r.get(c) for r in rows.values()]) for c in COLUMNS}
    clipped = {c: _mean([_clip(r.get(c)) for r in rows.values()]) for c in COLUMNS}
    tuned = means["tune_lr(0.5)"]
    peers = [c for c in PEERS if means.get(c) is not None and tuned is not None]
    below = [c for c in peers if tuned < means[c]]  # type: ignore[operator]
    above = [c for c in peers if c not in below]

    def row(what: str, v: Mapping[str, float | None]) -> str:
        free = f"{LABELS[best_free]} {_f(v[best_free])}" if best_free else "–"
        return (
            f"  | {what} | **{_f(v['tune_lr(0.5)'])}** | {_f(v['tune_lr(0.25)'])} | "
            f"{_f(v['lrkit'])} | {LABELS[best_rule]} {_f(v[best_rule])} | "
            f"{_f(v['usual LR'])} | {free} |"
        )

    lines = [
        f"- Finders on a distribution of {len(rows) + len(design)} generated tasks "
        "(`benchmarks/distribution.py`: MLPs with and without BatchNorm, LayerNorm and dropout, "
        "residual nets, linear models, 1-D and 2-D CNNs, a ResNet, GRU/LSTM, transformers and "
        "character LMs on the standard library's source, factorisation, autoencoders, "
        "fine-tuning; SGD, AdamW, Adam, RMSprop; 200 to 10,000 updates), one-cycle grids of 13+ "
        "peaks × 3 seeds cached in the repository; normalised regret on the test half "
        f"({len(rows)} tasks, untouched while the method was shaped; noise floor {floor:.2f}). "
        "The best rule and LR-free optimizer are chosen by their mean:",
        "",
        "  | | tune_lr(0.5) | tune_lr(0.25) | range test (lrkit rule) | best other rule | usual LR "
        "| best LR-free optimizer |",
        "  |---|---:|---:|---:|---:|---:|---:|",
        row("mean", means),
        row("median", medians),
        row("mean, clipped to [-1, 3]", clipped),
        "",
        "  A task whose grid is nearly flat (the adding problem with SGD, which no peak learns) "
        "turns small differences into regrets of ±100; the clipped row shows the means "
        "without that. By its mean, tune_lr(0.5) is below "
        + (", ".join(LABELS[c] for c in below) or "no peer")
        + (f", and level with or above {', '.join(LABELS[c] for c in above)}" if above else "")
        + "; the targets' verdicts are in BENCHMARKS.md.",
        "",
        f"  On the design half ({len(design)} tasks, where the horizon model and the evidence "
        f"rule were fitted): tune_lr(0.5) {_f(dmeans['tune_lr(0.5)'])}, tune_lr(0.25) "
        f"{_f(dmeans['tune_lr(0.25)'])}, range test {_f(dmeans['lrkit'])}. Per family and "
        "per task, the targets and the wall time: [BENCHMARKS.md](BENCHMARKS.md).",
    ]
    return "\n".join(lines)


PROTOCOL = (
    "Each finder runs with 3 finder seeds (model initialisation, data order, its own "
    "randomness); its peak is scored by interpolating the grid's mean final metric in "
    "log(peak). tune_lr scores its probes on a tenth of the training set held out by the "
    "finder seed, never on the validation set that scores the runs. The usual LR is 0.1 for "
    "SGD and 1e-3 for the others. The LR-free optimizers are trained on 3 fresh seeds with "
    "their recommended settings (`benchmarks/_lr_free.py`) and the task's weight decay. The "
    "noise floor is the regret of the grid's best peak retrained on 3 fresh seeds."
)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("truth", "methods", "fit", "report"))
    ap.add_argument("--version", help="fit: the search version whose design searches to use")
    ap.add_argument("--write", action="store_true", help="fit: write the model into the package")
    ap.add_argument("--half", default="design", choices=("design", "test", "all"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--methods", default=",".join((*RULES, *TUNES, *LR_FREE)))
    args = ap.parse_args(argv)
    names = names_of(args.half)
    if args.what == "truth":
        run_truth(names, args.workers)
    elif args.what == "methods":
        run_methods(names, args.methods.split(","), args.workers)
    elif args.what == "fit":
        run_fit(args.version or tune_version(), args.write)
    elif args.what == "report":
        for half in ("test", "design") if args.half == "all" else (args.half,):
            body = render(half)
            write_section(f"distribution_{half}", body)
            print(body)
        if args.half == "all":
            write_section("distribution_readme", readme_lines(), README)


if __name__ == "__main__":
    main()
