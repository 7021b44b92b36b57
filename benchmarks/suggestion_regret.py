"""How good is each way of choosing a learning rate, judged by a full one-cycle training run?

**Ground truth.** For every task: a grid of 13 one-cycle peaks (a third of a decade apart,
spanning two decades either side of the task's default LR) over the task's full length, each
trained on 3 seeds (0, 1, 2); the best mean final metric is *best*, the median over the grid of
the means is *median*.

**Finders.** Each finder method suggests a peak with 3 finder seeds (0, 1, 2): the finder seed
sets the model's initialization (``task.make_model(finder_seed)``), the training loader's order
(``task.loaders(seed=finder_seed)``) and the finder's own randomness, as a user's single finder
run would on their own model. Every suggestion is trained as the one-cycle peak (same schedule
and length as the grid) on 3 fresh training seeds (100, 101, 102), so that a user's one finder
run and one training run are both drawn at random. A method's score on a task is the mean final
metric over its 3 × 3 runs; a finder seed without a suggestion scores the grid median. Methods:
lrkit's rule, minimum/10, steepest and valley (all read from one lrkit range test per finder
seed: "the range test alone" is lrkit's rule), pytorch-lr-finder's own suggestion, and
``lrkit.finder.search.tune_lr`` at ``budget=0.5`` (its defaults otherwise: it scores its probes on
the validation loss of training batches it holds out itself; the task's validation set, which
scores the runs, is never shown to a finder).

**Peers.** The task's default LR (0.1 for SGD, 1e-3 for AdamW) as the peak, and four
learning-rate-free optimizers (Prodigy, D-Adaptation, DoG, Schedule-Free; settings and reasons in
`benchmarks/_lr_free.py` and in the report), each trained on the same 3 fresh seeds for the
task's full length, evaluated after the last update like every other run.

**Noise floor.** The grid's best peak retrained on the 3 fresh seeds and scored the same way: the
regret of a method that always picked the best grid peak.

**Scores.** shortfall = best − score (percentage points of accuracy, or of r2 for regression);
normalised regret = shortfall ÷ (best − median) (0 is perfect, negative beats the grid's best). A
diverged run scores 0 (chance accuracy, r2 0).

**Targets** (issue 10), on every suite: tune_lr's mean regret ≤ max(0.10, noise floor + 0.05), no
task above 0.5, below every rule's, the default LR's and every LR-free optimizer's; its wall time,
measured side by side with a training run of the same task in the same process and thread count,
≤ 0.5 of a run in the median over tasks and ≤ 1.0 on every task. The range test alone (lrkit's
rule): mean regret below the default LR's and every other rule's.

Suites: ``builtin`` (lrkit's built-in tasks) and ``heldout`` (the DESIGN and TEST lists of
`heldout_tasks.py`, reported as two halves). Trials are cached in runs/bench-regret2/<suite>
(resumable); ``--fresh`` starts the suite over. ``--methods`` runs some methods only; the report
still shows every method whose runs are in the cache. A finder's suggestions are keyed by a hash
of its source (tune_lr: lrkit/finder/search.py), so changing it reruns only its own suggestions,
and training runs whose peak did not move are reused.

    python benchmarks/suggestion_regret.py [--suite builtin|heldout] [--tasks a,b]
        [--methods tune_lr,default] [--seeds 3] [--grid 13] [--workers 2] [--fresh]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lrkit import schedules as S
from lrkit.experiments import RunDir, Trial, TrialRecord, run_trials
from lrkit.experiments.trial import encode_lr
from lrkit.finder import METHODS
from lrkit.tasks import get_task
from lrkit.train.history import History

import _lr_free
from _regret_trials import (
    BUDGET,
    TUNE_VALIDATION,
    bench_trial,
    range_test_version,
    torch_lr_finder_version,
    total_steps,
    tune_version,
)
from _report import machine, write_section
from heldout_tasks import DESIGN as HELDOUT_DESIGN
from heldout_tasks import TEST as HELDOUT_TEST

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "runs" / "bench-regret2"
GRID = 13
SUITES = ("builtin", "heldout")
BUILTIN_SUITE = (
    "mnist1d-mlp",
    "mnist1d-cnn",
    "digits-cnn",
    "friedman-mlp",
    "breast-cancer-mlp",
    "wine-mlp",
)
"""The built-in suite the recorded figures were measured on; built-in tasks added later for the
experiments (the MNIST-1D paper's CNN and its transfer halves) are left out so the figures stay
comparable."""
EVAL_SEED = 100
"""First of the fresh training seeds for suggestions, peers and the noise floor."""

RULES = (*METHODS, "torch-lr-finder")
FINDERS = (*RULES, "tune_lr")
LR_FREE = _lr_free.OPTIMIZERS
PEERS = ("default", *LR_FREE)
COLUMNS = (*FINDERS, *PEERS)
ALIASES = {"all": COLUMNS, "rules": RULES, "finders": FINDERS, "lr-free": LR_FREE}
LABELS = {
    "lrkit": "lrkit rule (range test)",
    "tune_lr": "**tune_lr**",
    "default": "default LR",
    **_lr_free.LABELS,
}

TUNE_REGRET_FLOOR = 0.10
TUNE_NOISE_MARGIN = 0.05
TASK_REGRET_CAP = 0.5
WALL_MEDIAN_CAP = 0.5
WALL_MAX_CAP = 1.0


# -- the plan ----------------------------------------------------------------------------------


def grid(task_name: str, n: int = GRID) -> list[float]:
    """``n`` peaks (odd), a third of a decade apart, centred on the task's default LR."""
    lr0 = get_task(task_name).default_lr
    half = n // 2
    return [float(lr0 * 10 ** (k / 3)) for k in range(-half, half + 1)]


def _peak(p: float) -> float:
    """A peak rounded to 6 significant digits: peaks that agree to 6 digits share their runs."""
    return float(f"{p:.6g}")


def train_key(task_name: str, peak: float, seed: int) -> str:
    return f"{task_name}/peak={_peak(peak):.6g}/seed={seed}"


def train_trial(task_name: str, peak: float, seed: int) -> Trial:
    steps = total_steps(task_name)
    p = _peak(peak)
    cfg: dict[str, Any] = {
        "kind": "train",
        "arm": f"{task_name} peak={p:.6g}",
        "task": task_name,
        "seed": seed,
        "optimizer": get_task(task_name).optimizer,
        "lr": encode_lr(S.one_cycle(p, steps)),
        "steps": steps,
        "eval_every": steps,
    }
    return Trial(train_key(task_name, p, seed), cfg)


def _settings_tag(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]


def lr_free_trial(task_name: str, name: str, seed: int) -> Trial:
    spec = _lr_free.settings(name, get_task(task_name))
    cfg = {
        "kind": "lr-free",
        "task": task_name,
        "optimizer": name,
        "settings": spec,
        "seed": seed,
        "steps": total_steps(task_name),
    }
    return Trial(f"{task_name}/lr-free={name}-{_settings_tag(spec)}/seed={seed}", cfg)


@dataclass(frozen=True)
class Versions:
    """The source hashes that key each finder's suggestions."""

    range_test: str
    torch_lr_finder: str
    tune: str
    tune_val: str

    @classmethod
    def now(cls, tune_val: str) -> Versions:
        return cls(
            range_test_version(), torch_lr_finder_version(), tune_version(tune_val), tune_val
        )


def finder_trial(task_name: str, method: str, finder_seed: int, v: Versions) -> Trial:
    """The trial that makes ``method``'s suggestion (the range test serves every rule)."""
    base = {"task": task_name, "finder_seed": finder_seed}
    if method in METHODS:
        key = f"{task_name}/range-test-{v.range_test}/finder={finder_seed}"
        return Trial(key, {"kind": "range-test", **base})
    if method == "torch-lr-finder":
        key = f"{task_name}/torch-lr-finder-{v.torch_lr_finder}/finder={finder_seed}"
        return Trial(key, {"kind": "torch-lr-finder", **base})
    if method == "tune_lr":
        key = f"{task_name}/tune_lr-{v.tune}/finder={finder_seed}"
        cfg = {
            "kind": "tune",
            **base,
            "budget": BUDGET,
            "tune_val": v.tune_val,
            "steps": total_steps(task_name),
        }
        return Trial(key, cfg)
    raise ValueError(f"{method!r} is not a finder")


# -- reading the results -----------------------------------------------------------------------

Records = Mapping[str, TrialRecord]


def run_metric(rec: TrialRecord | None) -> float | None:
    """A finished run's final metric (a diverged run scores as chance: 0); ``None`` if the run is
    missing or failed."""
    if rec is None or rec.status == "failed":
        return None
    res = rec.result
    if "history" in res:
        h = History.from_dict(res["history"]) if res["history"] else None
        m = h.final_metric if h is not None and not h.diverged else None
    else:
        m = None if res.get("diverged") else res.get("final_metric")
    return max(0.0, float(m)) if m is not None and math.isfinite(m) else 0.0


def mean_metric(records: Records, keys: Iterable[str]) -> float | None:
    vals = [run_metric(records.get(k)) for k in keys]
    if not vals or any(v is None for v in vals):
        return None
    return float(np.mean([v for v in vals if v is not None]))


_MISSING = object()


def suggestion(records: Records, task_name: str, method: str, f: int, v: Versions) -> Any:
    """``method``'s peak for finder seed ``f`` (``None``: no suggestion), or ``_MISSING``."""
    rec = records.get(finder_trial(task_name, method, f, v).key)
    if rec is None or rec.status == "failed":
        return _MISSING
    if method in METHODS:
        lr = rec.result["suggestions"].get(method)
    else:
        lr = rec.result.get("peak")
    return None if lr is None or not math.isfinite(lr) or lr <= 0 else _peak(float(lr))


@dataclass
class Column:
    """One method on one task: peaks chosen (per finder seed), score, shortfall and regret."""

    peaks: list[float | None] = field(default_factory=list)
    score: float | None = None
    shortfall: float | None = None
    regret: float | None = None


@dataclass
class TaskResult:
    name: str
    steps: int
    grid: list[float]
    means: list[float | None]
    best: float | None = None
    median: float | None = None
    best_peak: float | None = None
    noise: float | None = None
    columns: dict[str, Column] = field(default_factory=dict)
    wall: list[float] = field(default_factory=list)
    spent: list[float] = field(default_factory=list)
    timing_diverged: bool = False

    @property
    def complete(self) -> bool:
        return self.best is not None

    def regret_of(self, score: float) -> float:
        assert self.best is not None and self.median is not None
        return (self.best - score) / max(self.best - self.median, 1e-9)


def collect(records: Records, task_name: str, seeds: int, n_grid: int, v: Versions) -> TaskResult:
    """Everything the report needs for one task, from the records (missing parts are ``None``)."""
    peaks = grid(task_name, n_grid)
    grid_seeds = range(seeds)
    fresh = [EVAL_SEED + s for s in range(seeds)]
    means = [mean_metric(records, (train_key(task_name, p, s) for s in grid_seeds)) for p in peaks]
    out = TaskResult(task_name, total_steps(task_name), peaks, means)
    if any(m is None for m in means):
        return out
    vals = [m for m in means if m is not None]
    out.best, out.median = max(vals), statistics.median(vals)
    out.best_peak = peaks[int(np.argmax(vals))]
    out.noise = mean_metric(records, (train_key(task_name, out.best_peak, s) for s in fresh))
    for method in FINDERS:
        col = Column()
        scores: list[float] = []
        for f in range(seeds):
            p = suggestion(records, task_name, method, f, v)
            if p is _MISSING:
                scores = []
                break
            col.peaks.append(p)
            if p is None:
                scores.append(out.median)
                continue
            s = mean_metric(records, (train_key(task_name, p, e) for e in fresh))
            if s is None:
                scores = []
                break
            scores.append(s)
        if scores:
            col.score = float(np.mean(scores))
        out.columns[method] = col
    default = get_task(task_name).default_lr
    out.columns["default"] = Column(
        [_peak(default)], mean_metric(records, (train_key(task_name, default, e) for e in fresh))
    )
    for name in LR_FREE:
        keys = (lr_free_trial(task_name, name, e).key for e in fresh)
        out.columns[name] = Column([], mean_metric(records, keys))
    for col in out.columns.values():
        if col.score is not None:
            col.shortfall = 100 * (out.best - col.score)
            col.regret = out.regret_of(col.score)
    for f in range(seeds):
        rec = records.get(finder_trial(task_name, "tune_lr", f, v).key)
        if rec is not None and rec.status != "failed":
            r = rec.result
            out.wall.append(r["tune_seconds"] / max(r["train_seconds"], 1e-9))
            out.spent.append(r["spent"])
            out.timing_diverged |= bool(r.get("train_diverged"))
    return out


# -- running -----------------------------------------------------------------------------------


def first_phase(
    tasks: Sequence[str], seeds: int, n_grid: int, methods: Sequence[str], v: Versions
) -> list[Trial]:
    """Finder trials first (the second phase needs them), then every run that needs none."""
    makers = [m for m in ("torch-lr-finder", "tune_lr") if m in methods]
    if any(m in METHODS for m in methods):
        makers.insert(0, "lrkit")  # one range test serves every rule
    finders = [finder_trial(t, m, f, v) for t in tasks for f in range(seeds) for m in makers]
    fresh = [EVAL_SEED + s for s in range(seeds)]
    runs = [train_trial(t, p, s) for t in tasks for p in grid(t, n_grid) for s in range(seeds)]
    if "default" in methods:
        runs += [train_trial(t, get_task(t).default_lr, e) for t in tasks for e in fresh]
    runs += [lr_free_trial(t, m, e) for t in tasks for m in LR_FREE if m in methods for e in fresh]
    return _unique([*finders, *runs])


def second_phase(
    records: Records,
    tasks: Sequence[str],
    seeds: int,
    n_grid: int,
    methods: Sequence[str],
    v: Versions,
) -> list[Trial]:
    """The noise floor (needs the grid) and the runs at each suggested peak."""
    fresh = [EVAL_SEED + s for s in range(seeds)]
    trials: list[Trial] = []
    for t in tasks:
        res = collect(records, t, seeds, n_grid, v)
        if res.best_peak is not None:
            trials += [train_trial(t, res.best_peak, e) for e in fresh]
        for m in methods:
            if m not in FINDERS:
                continue
            for f in range(seeds):
                p = suggestion(records, t, m, f, v)
                if isinstance(p, float):
                    trials += [train_trial(t, p, e) for e in fresh]
    return _unique(trials)


def _unique(trials: Iterable[Trial]) -> list[Trial]:
    return list({t.key: t for t in trials}.values())


def _progress(rec: TrialRecord, done: int, total: int) -> None:
    note = f" ({rec.status})" if rec.status != "ok" else ""
    print(f"  [{done}/{total}] {rec.key} {rec.seconds:.1f}s{note}", flush=True)


def run_suite(
    rd: RunDir,
    tasks: Sequence[str],
    seeds: int,
    n_grid: int,
    methods: Sequence[str],
    workers: int | None,
    v: Versions,
) -> dict[str, TrialRecord]:
    first = first_phase(tasks, seeds, n_grid, methods, v)
    print(f"phase 1: {len(first)} trials (finders, grid, default LR, LR-free)", flush=True)
    run_trials(first, bench_trial, rd, workers=workers, progress=_progress)
    records = {r.key: r for r in rd.records()}
    second = second_phase(records, tasks, seeds, n_grid, methods, v)
    print(f"phase 2: {len(second)} trials (noise floor, suggested peaks)", flush=True)
    run_trials(second, bench_trial, rd, workers=workers, progress=_progress)
    return {r.key: r for r in rd.records()}


# -- the report --------------------------------------------------------------------------------


def _short(task_name: str) -> str:
    """A task's name without the module of a held-out task."""
    return task_name.rpartition(":")[2].replace("_", "-")


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "–" if x is None else format(x, spec)


def _mean(values: Sequence[float | None]) -> float | None:
    if not values or any(x is None for x in values):
        return None
    return float(np.mean([x for x in values if x is not None]))


def _cell(col: Column | None) -> str:
    if col is None or col.score is None:
        return "–"
    chosen = [p for p in col.peaks if p is not None]
    if col.peaks and not chosen:
        peak = "none: "
    elif chosen:
        gm = math.exp(float(np.mean(np.log(chosen))))
        missing = len(col.peaks) - len(chosen)
        peak = f"{gm:.3g}{f' ({missing} none)' if missing else ''}: "
    else:
        peak = ""
    shortfall = col.shortfall if col.shortfall is not None else 0.0
    return f"{peak}{-shortfall + 0.0:+.2f} ({_fmt(col.regret)})"


@dataclass
class Group:
    """The tasks of one suite (or half of one) and their summary numbers."""

    label: str
    results: list[TaskResult]

    def regrets(self, method: str) -> list[float | None]:
        return [r.columns[method].regret if r.complete else None for r in self.results]

    def mean_regret(self, method: str) -> float | None:
        return _mean(self.regrets(method))

    def noise_floor(self) -> float | None:
        return _mean(
            [
                r.regret_of(r.noise) if r.complete and r.noise is not None else None
                for r in self.results
            ]
        )

    def wall(self) -> list[float | None]:
        return [float(np.median(r.wall)) if r.wall else None for r in self.results]


def _task_tables(group: Group) -> list[str]:
    lines = [
        "| task | steps | best grid peak | best (%) | median (%) | noise floor (regret) "
        "| tune_lr spent | tune_lr time / run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in group.results:
        noise = r.regret_of(r.noise) if r.complete and r.noise is not None else None
        spent = _fmt(float(np.mean(r.spent)), ".2f") if r.spent else "–"
        wall = _fmt(float(np.median(r.wall)), ".2f") if r.wall else "–"
        if r.timing_diverged:
            wall += " (timed run diverged)"
        lines.append(
            f"| {_short(r.name)} | {r.steps} | {_fmt(r.best_peak, '.3g')} | "
            f"{_fmt(None if r.best is None else 100 * r.best)} | "
            f"{_fmt(None if r.median is None else 100 * r.median)} | {_fmt(noise)} | {spent} | "
            f"{wall} |"
        )
    lines += ["", "| task | " + " | ".join(LABELS.get(c, c) for c in COLUMNS) + " |"]
    lines.append("|---|" + "---:|" * len(COLUMNS))
    for r in group.results:
        cells = [_cell(r.columns.get(c)) for c in COLUMNS]
        lines.append(f"| {_short(r.name)} | " + " | ".join(cells) + " |")
    means = [_fmt(group.mean_regret(c)) for c in COLUMNS]
    lines.append(
        f"| **mean regret, {group.label}** | " + " | ".join(f"**{m}**" for m in means) + " |"
    )
    above = []
    for c in COLUMNS:
        regs = group.regrets(c)
        above.append(
            "–"
            if any(x is None for x in regs)
            else str(sum(x > TASK_REGRET_CAP for x in regs if x is not None))
        )
    lines.append(f"| tasks above {TASK_REGRET_CAP} | " + " | ".join(above) + " |")
    worst = []
    for c in COLUMNS:
        shorts = [r.columns[c].shortfall if r.complete else None for r in group.results]
        worst.append(
            "–"
            if any(x is None for x in shorts)
            else f"{max(x for x in shorts if x is not None):.2f}"
        )
    lines.append("| worst shortfall (pp) | " + " | ".join(worst) + " |")
    return lines


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**not met**")


def _targets(groups: Sequence[Group]) -> list[str]:
    head = "| target | " + " | ".join(g.label for g in groups) + " |"
    lines = [head, "|---|" + "---|" * len(groups)]

    def row(label: str, cells: Iterable[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    noise_cells, tune_cells, cap_cells, peer_cells, wall_med, wall_max, rt_cells = (
        [] for _ in range(7)
    )
    for g in groups:
        nf = g.noise_floor()
        bound = None if nf is None else max(TUNE_REGRET_FLOOR, nf + TUNE_NOISE_MARGIN)
        margin = None if nf is None else nf + TUNE_NOISE_MARGIN
        noise_cells.append(f"{_fmt(nf)} (+{TUNE_NOISE_MARGIN}: {_fmt(margin)})")
        tune = g.mean_regret("tune_lr")
        ok = None if tune is None or bound is None else tune <= bound
        tune_cells.append(f"{_fmt(tune)} ≤ {_fmt(bound)}: {_verdict(ok)}")
        regs = g.regrets("tune_lr")
        if any(x is None for x in regs):
            cap_cells.append(_verdict(None))
        else:
            over = [
                _short(r.name)
                for r, x in zip(g.results, regs, strict=True)
                if x is not None and x > TASK_REGRET_CAP
            ]
            cap_cells.append(f"{', '.join(over) or 'none'}: {_verdict(not over)}")
        others = [c for c in COLUMNS if c != "tune_lr"]
        beaten = _beats(g, "tune_lr", others)
        peer_cells.append(beaten)
        walls = g.wall()
        if walls and all(w is not None for w in walls):
            ws = [w for w in walls if w is not None]
            med, mx = float(np.median(ws)), max(ws)
            worst = _short(g.results[int(np.argmax(ws))].name)
            wall_med.append(f"{med:.2f}: {_verdict(med <= WALL_MEDIAN_CAP)}")
            wall_max.append(f"{mx:.2f} ({worst}): {_verdict(mx <= WALL_MAX_CAP)}")
        else:
            wall_med.append(_verdict(None))
            wall_max.append(_verdict(None))
        rt_cells.append(_beats(g, "lrkit", [c for c in (*RULES, "default") if c != "lrkit"]))
    row("noise floor, mean regret (+ margin)", noise_cells)
    row(
        f"tune_lr mean regret ≤ max({TUNE_REGRET_FLOOR}, noise floor + {TUNE_NOISE_MARGIN})",
        tune_cells,
    )
    row(f"tune_lr: tasks above {TASK_REGRET_CAP}", cap_cells)
    row("tune_lr below every rule, the default LR and every LR-free optimizer", peer_cells)
    row(f"tune_lr time / run, median over tasks ≤ {WALL_MEDIAN_CAP}", wall_med)
    row(f"tune_lr time / run, every task ≤ {WALL_MAX_CAP}", wall_max)
    row("range test alone (lrkit rule) below the default LR and every other rule", rt_cells)
    return lines


def _beats(g: Group, method: str, others: Sequence[str]) -> str:
    mine = g.mean_regret(method)
    theirs = {c: g.mean_regret(c) for c in others}
    if mine is None or any(x is None for x in theirs.values()):
        return _verdict(None)
    lost = [f"{LABELS.get(c, c)} {x:.2f}" for c, x in theirs.items() if x is not None and x <= mine]
    best_other = min((x for x in theirs.values() if x is not None), default=math.inf)
    if lost:
        return f"{mine:.2f}, not below {', '.join(lost)}: {_verdict(False)}"
    return f"{mine:.2f} < {best_other:.2f}: {_verdict(True)}"


def _lr_free_lines(tasks: Sequence[str]) -> list[str]:
    lines = []
    by_setting: dict[str, list[str]] = {}
    for name in LR_FREE:
        for t in tasks:
            desc = f"{_lr_free.LABELS[name]}: `{_lr_free.describe(name, get_task(t))}`"
            by_setting.setdefault(desc, []).append(_short(t))
    for desc, ts in by_setting.items():
        lines.append(f"- {desc} on {', '.join(ts)}")
    return lines


PROTOCOL = (
    "Ground truth: a grid of {grid} one-cycle peaks a third of a decade apart over the task's full "
    "length, {seeds} seeds each; *best* is the best mean final metric, *median* the grid's median. "
    "Each finder suggests a peak with {seeds} finder seeds (model initialization, data order and "
    "the finder's randomness), and each suggestion trains the same one-cycle run on {seeds} fresh "
    "seeds ({fresh}); a method's score is the mean over its {runs} runs (a finder seed without a "
    "suggestion scores the median). The default LR and the LR-free optimizers train on the same "
    "fresh seeds. The noise floor is the grid's best peak retrained on the fresh seeds. Cell: the "
    "peak chosen (geometric mean over finder seeds), the score minus *best* in percentage points "
    "(accuracy, or r2 × 100), and in brackets the normalised regret, (best − score) ÷ (best − "
    "median): 0 is perfect, negative beats the grid's best. tune_lr runs at budget {budget}, "
    "scoring its probes on {tune_val}; its time is measured beside a training run of the same "
    "task in the same process, one torch thread each."
)

LR_FREE_WHY = (
    "LR-free optimizers, each with the settings its README recommends for training from scratch "
    "(weight decay 0 as in every other run; reasons in `benchmarks/_lr_free.py`): Prodigy lr=1 "
    "with cosine annealing over the run and no warmup (README: lr=1 for all networks; no "
    "scheduler or cosine with T_max=total_steps); D-Adaptation lr=1 with the schedule these tasks "
    "train with, "
    "one-cycle with peak 1 as the multiplier (README: 'use the same learning rate scheduler you "
    "would normally use'), DAdaptAdam for AdamW tasks, DAdaptSGD with the tasks' momentum 0.9 for "
    "SGD tasks; DoG lr=1, reps_rel 1e-6 (1e-4 with BatchNorm), the averaged model of its "
    "PolynomialDecayAverager evaluated (README: must be combined with iterate averaging); "
    "Schedule-Free at its constructor's lr (AdamW 0.0025, 2.5× the tasks' AdamW lr; SGD 1.0, 10× "
    "the tasks' SGD lr; README: 1–10× and 10–50× the usual), warmup over 2% of the run (the "
    "warmup_factor of the package's AlgoPerf submissions), optimizer.eval() before evaluating and "
    "BatchNorm statistics recomputed from 50 training batches (README caveat)."
)


def render(
    suite: str,
    groups: Sequence[Group],
    tasks: Sequence[str],
    seeds: int,
    n_grid: int,
    tune_val: str,
) -> str:
    fresh = ", ".join(str(EVAL_SEED + s) for s in range(seeds))
    protocol = PROTOCOL.format(
        grid=n_grid,
        seeds=seeds,
        fresh=fresh,
        runs=seeds * seeds,
        budget=BUDGET,
        tune_val=TUNE_VALIDATION[tune_val],
    )
    if suite == "heldout":
        title = (
            "## LR-finder suggestion regret on held-out tasks "
            "(`benchmarks/suggestion_regret.py --suite heldout`)"
        )
        intro = (
            f"{len(tasks)} tasks of `benchmarks/heldout_tasks.py`, none used to design lrkit's "
            "rule, split before any was trained into a design half (a method may be tuned by "
            "looking at it) and a test half (which judges it); every target holds on each half."
        )
    else:
        title = "## LR-finder suggestion regret (`benchmarks/suggestion_regret.py`)"
        intro = f"lrkit's {len(tasks)} built-in tasks."
    parts = [
        title,
        "",
        f"{intro} {protocol}",
        "",
        LR_FREE_WHY,
        "",
        *_lr_free_lines(tasks),
        "",
        f"Machine: {machine()}.",
    ]
    for g in groups:
        parts += ["", f"### {g.label}", "", *_task_tables(g)]
    parts += ["", "### Targets", "", *_targets(groups)]
    return "\n".join(parts)


# -- the command -------------------------------------------------------------------------------


def _suite_tasks(suite: str) -> list[str]:
    return [*HELDOUT_DESIGN, *HELDOUT_TEST] if suite == "heldout" else list(BUILTIN_SUITE)


def _resolve_tasks(names: str, suite: str) -> list[str]:
    known = {_short(t): t for t in _suite_tasks(suite)}
    out = []
    for name in (n.strip() for n in names.split(",")):
        if name:
            out.append(known.get(name, name))
    return out


def _resolve_methods(spec: str | None) -> list[str]:
    if not spec:
        return list(COLUMNS)
    chosen: list[str] = []
    for name in (n.strip() for n in spec.split(",")):
        if not name:
            continue
        expand = ALIASES.get(name, (name,))
        for m in expand:
            if m not in COLUMNS:
                raise SystemExit(
                    f"unknown method {m!r}; use some of {', '.join(COLUMNS)} "
                    f"(or {', '.join(ALIASES)})"
                )
            if m not in chosen:
                chosen.append(m)
    return chosen


def _groups(suite: str, results: Sequence[TaskResult]) -> list[Group]:
    if suite != "heldout":
        return [Group("builtin", list(results))]
    design = [r for r in results if r.name in HELDOUT_DESIGN]
    test = [r for r in results if r.name in HELDOUT_TEST]
    other = [r for r in results if r.name not in HELDOUT_DESIGN and r.name not in HELDOUT_TEST]
    groups = [Group("held-out design", design), Group("held-out test", test)]
    if other:
        groups.append(Group("other tasks", other))
    return [g for g in groups if g.results]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--suite", choices=SUITES, default="builtin")
    ap.add_argument("--tasks", default=None, help="comma-separated (default: the whole suite)")
    ap.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated, to run: {', '.join(COLUMNS)} or {', '.join(ALIASES)} "
        "(default all; the grid and the noise floor always run)",
    )
    ap.add_argument("--seeds", type=int, default=3, help="grid, finder and fresh seeds (each)")
    ap.add_argument("--grid", type=int, default=GRID, help="grid peaks (odd; 13 for the record)")
    ap.add_argument(
        "--tune-val",
        choices=tuple(TUNE_VALIDATION),
        default="split",
        help="what tune_lr scores its probes on: "
        + "; ".join(f"{k}: {v}" for k, v in TUNE_VALIDATION.items()),
    )
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--fresh", action="store_true", help="discard this suite's cached results")
    ap.add_argument(
        "--no-write", action="store_true", help="print the section without writing BENCHMARKS.md"
    )
    args = ap.parse_args(argv)
    if args.grid < 3 or args.grid % 2 == 0:
        raise SystemExit("--grid must be odd and at least 3")
    if args.seeds < 1:
        raise SystemExit("--seeds must be at least 1")
    tasks = _resolve_tasks(args.tasks, args.suite) if args.tasks else _suite_tasks(args.suite)
    methods = _resolve_methods(args.methods)
    cache = CACHE / args.suite
    if args.fresh and cache.exists():
        shutil.rmtree(cache)
    rd = RunDir(cache, {"benchmark": "suggestion_regret", "protocol": "issue-10"})
    v = Versions.now(args.tune_val)
    print(f"versions: {v}", flush=True)
    records = run_suite(rd, tasks, args.seeds, args.grid, methods, args.workers, v)
    results = [collect(records, t, args.seeds, args.grid, v) for t in tasks]
    groups = _groups(args.suite, results)
    body = render(args.suite, groups, tasks, args.seeds, args.grid, args.tune_val)
    print(body, flush=True)
    if args.seeds != 3 or args.grid != GRID or args.tasks:
        print("BENCHMARKS.md not written: only the whole suite at --seeds 3 --grid 13 is recorded")
    elif not args.no_write:
        name = "suggestion_regret_heldout" if args.suite == "heldout" else "suggestion_regret"
        write_section(name, body)


if __name__ == "__main__":
    main()
