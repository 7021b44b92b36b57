"""One self-contained HTML report of a run directory (figures embedded as PNG data URIs)."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._files import atomic_write_text
from ..plot import new_figure, outside_legend
from .grid_figure import peak_grid_figure
from .store import RunDir
from .summary import Arm, Speedup, fmt_values, group_arms, speedup

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["read_findings", "task_target", "write_findings", "write_report"]

RANGE_TESTS = "range_tests"
TUNED = "tune"
"""The folder of a run directory that caches :func:`lrkit.tune_lr`'s results."""
FINDINGS = "findings.json"
"""The findings of a recipe (the lines the console prints, verdict last), in its run folder."""

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}
li.verdict{font-weight:600}
figure{margin:1em 0}figcaption{font-size:.85em;color:#555}
img{max-width:100%}.meta{color:#555;font-size:.9em}.err{color:#a00;font-family:monospace;
font-size:.85em;white-space:pre-wrap}
"""

_CHECK_IMAGES = """
<script>
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; }
  }
  document.body.setAttribute('data-images-loaded', ok + '/' + imgs.length);
});
</script>
"""


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(fig: Figure, caption: str) -> str:
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{_png(fig)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _ema(xs: Sequence[float], beta: float = 0.9) -> np.ndarray:
    out = np.empty(len(xs))
    avg = 0.0
    for i, x in enumerate(xs):
        avg = beta * avg + (1 - beta) * x
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def _band(ax: Axes, xs: np.ndarray, rows: list[np.ndarray], label: str, color: str) -> None:
    n = min(len(r) for r in rows)
    if n == 0:
        return
    stack = np.vstack([r[:n] for r in rows])
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(stack, axis=0)
        std = np.nanstd(stack, axis=0, ddof=1) if len(rows) > 1 else np.zeros(n)
    ax.plot(xs[:n], mean, color=color, lw=1.5, label=f"{label} (n={len(rows)})")
    ax.fill_between(xs[:n], mean - std, mean + std, color=color, alpha=0.2, lw=0)


def _color(i: int, n: int) -> str:
    """The colour of arm ``i`` of ``n``: matplotlib's ten default colours, or for more arms the
    twenty of ``tab20``, in which neighbours are a dark and a light shade of one hue (arms listed
    in pairs, such as the transfer recipe's pretrained and from-scratch runs of one optimizer,
    share a hue)."""
    if n <= 10:
        return f"C{i % 10}"
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    return str(to_hex(colormaps["tab20"](i % 20)))


def _schedules_figure(arms: list[Arm]) -> Figure | None:
    firsts = [(a, a.histories[0]) for a in arms if a.histories]
    if not firsts:
        return None
    has_mom = any(np.isfinite(h.momentum).any() for _, h in firsts if h.momentum)
    fig = new_figure(9, 3.4)
    axes = fig.subplots(1, 2 if has_mom else 1, squeeze=False)[0]
    for i, (arm, h) in enumerate(firsts):
        c = _color(i, len(firsts))
        axes[0].plot(np.arange(len(h.lr)), h.lr, color=c, lw=1.3, label=arm.label)
        if has_mom:
            axes[1].plot(np.arange(len(h.momentum)), h.momentum, color=c, lw=1.3)
    lrs = [v for _, h in firsts for v in h.lr if v > 0]
    if lrs and max(lrs) / min(lrs) > 200:
        axes[0].set_yscale("log")
    axes[0].set(xlabel="optimizer step", ylabel="learning rate", title="learning rate")
    axes[0].legend(fontsize=7)
    if has_mom:
        axes[1].set(xlabel="optimizer step", ylabel="momentum / beta1", title="momentum")
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig


def _curves_figure(arms: list[Arm], metric_name: str) -> Figure | None:
    if not any(a.histories for a in arms):
        return None
    fig = new_figure(12, 3.6)
    ax_loss, ax_vloss, ax_metric = fig.subplots(1, 3)
    for i, arm in enumerate(arms):
        hs = arm.histories
        if not hs:
            continue
        c = _color(i, len(arms))
        losses = [_ema(h.loss) for h in hs if h.loss]
        if losses:
            _band(ax_loss, np.arange(max(len(x) for x in losses)), losses, arm.label, c)
        evals = [h for h in hs if h.eval_step]
        if evals:
            longest = max(evals, key=lambda h: len(h.eval_step))
            steps = np.asarray(longest.eval_step)
            _band(ax_vloss, steps, [np.asarray(h.val_loss) for h in evals], arm.label, c)
            _band(ax_metric, steps, [np.asarray(h.metric) for h in evals], arm.label, c)
    ax_loss.set(xlabel="optimizer step", ylabel="training loss (EMA 0.9)", title="training loss")
    ax_vloss.set(xlabel="optimizer step", ylabel="validation loss", title="validation loss")
    ax_metric.set(xlabel="optimizer step", ylabel=metric_name, title=f"validation {metric_name}")
    for ax in (ax_loss, ax_vloss):
        ax.set_yscale("log")
    for ax in (ax_loss, ax_vloss, ax_metric):
        ax.grid(alpha=0.3)
    ax_metric.legend(fontsize=7)
    return fig


def _headline_plot(head: Speedup, metric_name: str) -> Figure:
    """The claimant's and the best rival's validation metric against steps (mean ± std over
    seeds), the target (the rival's mean final metric) and each one's mean steps to it, marked
    by a dotted line and a dot and given in the legend (outside the axes, so that no number
    lands on another or on the curves)."""
    fig = new_figure(10, 4.2)
    ax = fig.subplots()
    tops, lows = [], []
    for arm, steps, color in (
        (head.claimant, head.claimant_steps, "C0"),
        (head.baseline, head.baseline_steps, "C1"),
    ):
        evals = [h for h in arm.histories if h.eval_step]
        if evals:
            xs = np.asarray(max(evals, key=lambda h: len(h.eval_step)).eval_step)
            rows = [np.asarray(h.metric, dtype=float) for h in evals]
            _band(ax, xs, rows, arm.label, color)
            n = min(len(r) for r in rows)
            tops.append(float(np.nanmax(np.vstack([r[:n] for r in rows]))))
            lows.append(float(np.nanmin(np.vstack([r[:n] for r in rows]))))
        if arm is head.claimant and head.reached == 0:
            continue  # no steps to mark
        mean = float(np.mean(steps))
        label = f"{arm.label}: {mean:.0f} steps to the target"
        ax.axvline(mean, color=color, ls=":", lw=1.3, label=label)
        ax.plot([mean], [head.target], "o", color=color, ms=7, zorder=5)
    ax.axhline(head.target, color="0.3", ls="--", lw=1.0, label=f"target {head.target:.4g}")
    if tops and lows:  # the last third of the climb to the target, where the arms differ
        span = max(tops) - min(lows)
        if span > 0:
            ax.set_ylim(max(min(lows), head.target - span / 3), max(tops) + span / 50)
    ax.set(
        xlabel="optimizer step",
        ylabel=f"validation {metric_name}",
        title=f"{head.claimant.label}: {head.words(metric_name)}",
    )
    ax.grid(alpha=0.3)
    outside_legend(ax)
    return fig


def _headline_figure(head: Speedup, metric_name: str, rivals: str) -> str:
    """:func:`_headline_plot` with its caption, as HTML."""
    caption = (
        f"{head.describe(metric_name)}. {head.baseline.label} has the highest mean final "
        f"{metric_name} of the {rivals}; its mean final {metric_name} is the target (dashed). "
        "Lines: the mean over seeds; bands: ± one standard deviation; dotted lines and dots: "
        "the mean steps to the target (given in the legend), at the first evaluation that "
        "reaches it."
    )
    return _figure(_headline_plot(head, metric_name), caption)


def _headline(arms: list[Arm], headline: object, metric_name: str) -> str:
    """The headline section of a run whose configuration names a ``headline`` (a
    ``{"claimant": prefix, "rivals": prefix}`` of arm labels), or ``""``."""
    if not isinstance(headline, dict):
        return ""
    claimant, rivals = str(headline.get("claimant", "")), str(headline.get("rivals", ""))
    head = speedup(arms, claimant, rivals)
    if head is None:
        return ""
    n = sum(a.label.startswith(rivals) and a is not head.claimant for a in arms)
    return (
        f"<h2>{html.escape(head.claimant.label)} against the best {html.escape(rivals)} arm"
        f"</h2>{_headline_figure(head, metric_name, f'{n} {rivals} arms')}"
    )


def _peak_grid(arms: list[Arm], grid: object, metric_name: str) -> str:
    """The section of a run whose configuration names a ``peak_grid`` (a label prefix), or
    ``""``."""
    if not isinstance(grid, str):
        return ""
    fig = peak_grid_figure(arms, grid, metric_name)
    if fig is None:
        return ""
    caption = (
        f"Final {metric_name} of one cycle at each peak of the {grid} (line: the mean over "
        "seeds; band: ± one standard deviation; star: the grid's best), and every other arm at "
        "the peak it chose (marker: the mean; bar: ± one standard deviation)."
    )
    return f"<h2>Final {html.escape(metric_name)} against the peak</h2>{_figure(fig, caption)}"


def _range_test_figures(folder: Path) -> list[str]:
    files = sorted((folder / RANGE_TESTS).glob("*.json")) if (folder / RANGE_TESTS).is_dir() else []
    tuned = sorted((folder / TUNED).glob("*.json")) if (folder / TUNED).is_dir() else []
    if not files and not tuned:
        return []
    from ..finder import RangeTestResult, TuneResult

    out = []
    for f in files:
        result = RangeTestResult.from_dict(json.loads(f.read_text()))
        fig = new_figure(7, 3.6)
        result.plot(fig.subplots())
        sug = result.suggest()
        note = f"suggestion {sug.lr:.3g}" if sug.lr is not None else f"no suggestion: {sug.reason}"
        out.append(_figure(fig, f"LR range test {f.stem}: {note}"))
    for f in tuned:
        tune = TuneResult.from_json(f)
        fig = new_figure(7, 3.6)
        ax = tune.range_test.plot(fig.subplots())
        ax.axvline(tune.peak, color="black", lw=2, label=f"tuned peak {tune.peak:.3g}")
        ax.legend(loc="best", fontsize="small")
        lr = tune.range_test.suggestion
        rt = f"the range test's suggestion {lr:.3g}" if lr is not None else "no suggestion"
        out.append(
            _figure(
                fig,
                f"LR range test of tune_lr ({f.stem}): {rt}; the peak chosen (black) "
                f"{tune.peak:.3g} after {len(tune.probes)} short probes, {tune.spent:.2f} of a "
                f"run: {tune.reason}",
            )
        )
    return out


def task_target(metric_name: str, target: object) -> str:
    """The task's target in words, as the summary table's step and second columns name it:
    ``accuracy ≥ 0.9 (task target)``."""
    if isinstance(target, int | float) and not isinstance(target, bool):
        return f"{metric_name} ≥ {target:g} (task target)"
    return "the task's target"


def _summary_table(arms: list[Arm], metric_name: str, target: object) -> str:
    goal = html.escape(task_target(metric_name, target))
    head = (
        "<tr><th>arm</th><th>trials</th><th>final "
        f"{html.escape(metric_name)} (mean ± std)</th><th>steps to {goal}</th>"
        f"<th>seeds that reached it</th><th>seconds to {goal}</th><th>train seconds</th></tr>"
    )
    rows = []
    for arm in arms:
        r = arm.summary_row()
        status = ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items()))
        steps = [s for s in arm.steps_to_target() if math.isfinite(s)]
        secs = [s for s in arm.seconds_to_target() if math.isfinite(s)]
        rows.append(
            f"<tr><td>{html.escape(arm.label)}</td><td>{html.escape(status)}</td>"
            f"<td>{fmt_values(arm.final_metrics())}</td><td>{fmt_values(steps, 5)}</td>"
            f"<td>{r['reached_target']}</td><td>{fmt_values(secs, 3)}</td>"
            f"<td>{fmt_values(arm.train_seconds(), 3)}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def write_findings(run_dir: str | os.PathLike[str], findings: Sequence[str]) -> Path:
    """Store a recipe's findings (the lines the console prints, verdict last) in its run folder
    for :func:`write_report`; returns the file's path."""
    path = Path(run_dir) / FINDINGS
    atomic_write_text(path, json.dumps([str(x) for x in findings], indent=1) + "\n")
    return path


def read_findings(run_dir: str | os.PathLike[str]) -> list[str]:
    """The findings stored by :func:`write_findings` (empty when there are none)."""
    path = Path(run_dir) / FINDINGS
    if not path.exists():
        return []
    return [str(x) for x in json.loads(path.read_text(encoding="utf-8"))]


def _findings(lines: Sequence[str]) -> str:
    items = [
        f"<li class='verdict'>{html.escape(x)}</li>"
        if x.startswith("verdict:")
        else f"<li>{html.escape(x)}</li>"
        for x in lines
    ]
    return f"<h2>Findings</h2><ul>{''.join(items)}</ul>"


def _failures(arms: list[Arm]) -> str:
    items = []
    for arm in arms:
        for r in arm.records:
            if r.status == "failed" and r.error:
                last = r.error.strip().splitlines()[-1]
                items.append(
                    f"<li>{html.escape(r.key)}: <span class='err'>{html.escape(last)}</span></li>"
                )
            elif r.status == "diverged":
                reason = r.result.get("history", {}).get("stop_reason", "diverged")
                items.append(
                    f"<li>{html.escape(r.key)}: diverged ({html.escape(str(reason))})</li>"
                )
    return f"<h2>Failed and diverged trials</h2><ul>{''.join(items)}</ul>" if items else ""


def write_report(
    run_dir: str | os.PathLike[str],
    path: str | os.PathLike[str] | None = None,
    findings: Sequence[str] | None = None,
) -> Path:
    """Write ``report.html`` (or ``path``) for a run directory and return its path.

    The page holds the claim tested, a summary table (final metric, steps and seconds to the
    task's target, named in the headers; mean ± std over seeds, or the value and ``n=1`` for one
    seed), the findings the console printed with the verdict on the claim (``findings``, by
    default those stored in the run folder by :func:`write_findings`), any LR range tests with
    their suggestions (and the peak :func:`lrkit.tune_lr` chose, where it ran), the schedules
    (LR and momentum), and training loss, validation loss and metric curves as mean ± std bands
    across seeds. Everything is embedded: the file can be mailed or archived on its own.

    A run whose configuration names a ``headline`` (``{"claimant": ..., "rivals": ...}``, label
    prefixes, as the demo's) opens with its headline figure instead: the claimant's and the best
    rival's validation metric against steps (mean ± std bands), the rival's mean final metric
    as the target, each one's steps to it marked and the speed-up in the caption
    (:func:`~lrkit.experiments.summary.speedup`); then the range tests, the schedules, the
    summary and the findings.
    """
    rd = RunDir(run_dir)
    records = list(rd.records())
    if not records:
        raise ValueError(f"{rd.path} holds no finished trials yet; run the recipe first")
    arms = group_arms(records)
    cfg = rd.config
    metric_name = str(cfg.get("metric_name") or _metric_name(arms))
    title = str(cfg.get("title") or cfg.get("recipe") or rd.path.name)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    meta = {k: cfg[k] for k in ("recipe", "task", "seeds", "target") if k in cfg}
    if meta:
        parts.append(
            "<p class='meta'>"
            + " · ".join(f"{html.escape(k)}: {html.escape(str(v))}" for k, v in meta.items())
            + "</p>"
        )
    for key, label in (("claim", "Claim tested"), ("source", "Source")):
        if cfg.get(key):
            parts.append(f"<p><b>{label}:</b> {html.escape(str(cfg[key]))}</p>")
    summary = ["<h2>Summary</h2>", _summary_table(arms, metric_name, cfg.get("target"))]
    lines = list(findings) if findings is not None else read_findings(rd.path)
    if lines:
        summary.append(_findings(lines))
    head = _peak_grid(arms, cfg.get("peak_grid"), metric_name)
    head += _headline(arms, cfg.get("headline"), metric_name)
    if head:  # the headline figure first, the numbers after the figures that explain them
        parts.append(head)
    else:
        parts.extend(summary)
    rt = _range_test_figures(rd.path)
    if rt:
        parts.append("<h2>LR range tests</h2>")
        parts.extend(rt)
    fig = _schedules_figure(arms)
    if fig is not None:
        parts.append("<h2>Schedules</h2>")
        parts.append(_figure(fig, "Learning rate and momentum per optimizer step (first seed)"))
    if head:
        parts.extend(summary)
    fig = _curves_figure(arms, metric_name)
    if fig is not None:
        parts.append("<h2>Curves</h2>")
        parts.append(_figure(fig, "Mean ± one standard deviation across seeds"))
    parts.append(_failures(arms))
    parts.append(_CHECK_IMAGES)
    parts.append("</body></html>")
    out = Path(path) if path is not None else rd.path / "report.html"
    out.write_text("\n".join(parts), encoding="utf-8")
    return out


def _metric_name(arms: list[Arm]) -> str:
    for arm in arms:
        for h in arm.histories:
            return h.metric_name
    return "metric"


def summary_rows(arms: list[Arm]) -> list[dict[str, Any]]:
    """The summary table as plain rows (for the CLI)."""
    rows = []
    for a in arms:
        r = a.summary_row()
        rows.append(
            {
                "arm": a.label,
                "final": fmt_values(a.final_metrics()),
                "steps_to_target": fmt_values(
                    [s for s in a.steps_to_target() if math.isfinite(s)], 5
                ),
                "reached": r["reached_target"],
                "seconds": fmt_values(a.train_seconds(), 3),
            }
        )
    return rows
