"""Reading a learning rate off a range-test curve.

Every rule is a pure function of ``(lrs, losses)`` (NumPy arrays in, a float or ``None`` out):

- :func:`suggest_minimum` -- the LR at the minimum of the smoothed loss, divided by 10 (the rule
  of the CLR literature, e.g. the PyTorch tutorial and fastai's ``minimum``).
- :func:`suggest_steepest` -- the LR where the smoothed loss falls fastest per unit of log-LR,
  leaving out the first 10 and the last 5 points of the sweep (pytorch-lr-finder's suggestion,
  fastai's ``steep``).
- :func:`suggest_valley` -- a point two thirds of the way down the longest descending stretch of
  the smoothed loss (the idea of fastai's ``valley``).
- :func:`suggest_lrkit` -- lrkit's default rule, below; it reads the *raw* losses and does its own
  smoothing.

The first three read the curve they are given, normally the EMA-smoothed loss of the range test
(:func:`ema`). :func:`suggest_lr` applies any of them to raw losses and adds an uncertainty band.

Measured on one-cycle training (LITERATURE.md): steepest-gradient rules fail badly when the loss
spikes and recovers during the sweep; ``valley`` is often 10-30x too low; minimum/10 is the best
classic rule, and with BatchNorm the best one-cycle peak sat near the minimum itself.

lrkit's rule (:func:`analyze_curve`)
------------------------------------
1. Keep the finite prefix of the curve and work in ``x = ln(lr)``.
2. Smooth without lag: a running median over 5 points (removes single-batch spikes), losses
   above the starting level clipped to it (the divergence tail and spikes above the start carry
   no information about where the descent ends, and would drag a kernel smoother), then a
   local-linear Gaussian kernel regression in ``x`` (bandwidth: the larger of 0.1 decade and
   2.5 sample spacings). Unlike the exponential moving average, whose minimum lags behind the
   raw minimum by a distance that depends on ``steps`` and the LR range (often 2-5x in LR at
   the default 100 steps over 8 decades), this smooth is centred, so what the rule reads off it
   does not depend on the sweep speed.
3. Decide whether there is a descent at all. ``start`` is the median of the raw losses in the
   first 10% of the log-LR span, ``noise`` a robust estimate of the raw step-to-step standard
   deviation (``1.4826 * MAD(diff(loss)) / sqrt(2)`` up to the divergence tail, the last
   stretch where the loss stays above ``start``). If ``start - min(smoothed) <= 2 * noise`` the
   curve has no clear descent and the rule returns ``None`` instead of a misleading number
   (on pure noise the drop exceeds 2x the noise in about 1% of sweeps). It also returns
   ``None`` when the minimum lies in the first 5% of the log-LR span (the loss only rises: lower
   ``start_lr``).
4. Find where the loss stops improving. The argmin of the smoothed curve alone is fragile on a
   flat bottom (noise decides where along the bottom it falls), so the rule takes the *basin*:
   the contiguous stretch around the minimum where the smoothed loss is within 10% of the total
   drop of its minimum, and its geometric middle ``lr_mid``. Using this global structure (start
   level, global minimum, basin) instead of local slopes makes the rule immune to early spikes
   that recover: a spike neither moves the global minimum nor survives the median filter.
5. The suggestion is ``lr_mid / 2``. ``lr_mid`` is where a sweep that spends about one step
   per LR stops making progress; a whole training run at that peak sits close to a cliff for
   many models: one-cycle runs of plain MLPs and CNNs collapsed at 0.8-3x ``lr_mid``, BatchNorm
   networks only at 10-20x. Over 20 tasks (lrkit's six built-in ones and 14 held-out ones in
   ``benchmarks/heldout_tasks.py``: MLPs, CNNs, residual and recurrent networks, with and
   without normalization, SGD and AdamW, classification and regression), constant factors
   from 0.4 to 0.85 of ``lr_mid`` had mean regrets within 0.03 of each other (0.23-0.26,
   read off the grids of one-cycle peaks), the lowest of any constant factor; lrkit takes 0.5,
   near the low end, for its margin to the cliff. The curve alone cannot say
   on which side of ``lr_mid`` a task's best peak lies: two plain MLPs with curves of the same
   shape had their best peaks at 0.8x and 1.2x ``lr_mid``. The rule usually lands 1-3x above
   the classic EMA-minimum/10, and never reads the EMA, so the EMA's lag cannot mislead it.

The uncertainty band (:func:`suggest_lr`) comes from the repeats of the sweep when there are
several (the 10th-90th percentile of the rule over the repeat curves), otherwise from a wild
bootstrap of one curve: the raw residuals around the zero-lag smooth are multiplied by random
signs, the rule is re-applied to each of 200 resampled curves, and the 10th-90th percentile of
those suggestions, shifted so that their median sits on the suggestion (the resampled curves
are smoother than the real one, which biases the raw percentiles), is the band. The band always
contains the suggestion.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from lrkit.finder.classic_rules import (
    STEEPEST_SKIP_END,
    STEEPEST_SKIP_START,
    ArrayLike,
    FloatArray,
    ema,
    finite_curve,
    suggest_minimum,
    suggest_steepest,
    suggest_valley,
)

__all__ = [
    "METHODS",
    "STEEPEST_SKIP_END",
    "STEEPEST_SKIP_START",
    "CurveAnalysis",
    "Method",
    "Suggestion",
    "analyze_curve",
    "ema",
    "suggest_lr",
    "suggest_lrkit",
    "suggest_minimum",
    "suggest_steepest",
    "suggest_valley",
    "zero_lag_smooth",
]

Method = Literal["lrkit", "minimum", "steepest", "valley"]
METHODS: tuple[Method, ...] = ("lrkit", "minimum", "steepest", "valley")

_MIN_POINTS = 8
_MEDIAN_WINDOW = 5
_MIN_BANDWIDTH_DECADES = 0.1
_BANDWIDTH_SPACINGS = 2.5
_NOISE_FACTOR = 2.0
_BASIN_TOLERANCE = 0.10
_PEAK_FACTOR = 0.5
_LN10 = math.log(10.0)


@dataclass(frozen=True)
class Suggestion:
    """A suggested learning rate with its uncertainty band.

    ``lr`` is ``None`` when the rule finds nothing usable; ``reason`` then says why (otherwise it
    describes how the value was found). ``low``/``high`` bound the 10th-90th percentile band of
    the suggestion (``None`` with ``lr``).
    """

    lr: float | None
    low: float | None
    high: float | None
    method: str
    reason: str


@dataclass(frozen=True)
class CurveAnalysis:
    """What lrkit's rule (:func:`analyze_curve`) found on a curve; LRs in the units of ``lrs``.

    Attributes:
        lr: the suggestion, or ``None``.
        reason: how it was found, or why there is none.
        n: length of the finite prefix of the curve that was analysed.
        smoothed: the zero-lag smooth of that prefix (length ``n``).
        lr_min: the LR at the minimum of ``smoothed``.
        lr_low, lr_up: the edges of the basin (where ``smoothed`` is within 10% of the drop of
            its minimum); ``lr_up`` is where the loss clearly turns up.
        descent_start: the LR where the smoothed loss has fallen 10% of the drop.
        drop: start level minus the smoothed minimum.
        noise: robust estimate of the raw step-to-step noise (standard deviation).
    """

    lr: float | None
    reason: str
    n: int = 0
    smoothed: FloatArray = field(default_factory=lambda: np.empty(0))
    lr_min: float | None = None
    lr_low: float | None = None
    lr_up: float | None = None
    descent_start: float | None = None
    drop: float = 0.0
    noise: float = 0.0


def _running_median(y: FloatArray, window: int) -> FloatArray:
    half = window // 2
    if y.size <= 2 or half == 0:
        same: FloatArray = y.copy()
        return same
    if y.size < window:
        return np.array([np.median(y[max(0, i - half) : i + half + 1]) for i in range(y.size)])
    out: FloatArray = np.empty_like(y)
    out[half:-half] = np.median(np.lib.stride_tricks.sliding_window_view(y, window), axis=1)
    for i in range(half):  # shrinking windows at the ends
        out[i] = np.median(y[: i + half + 1])
        out[-1 - i] = np.median(y[-(i + half + 1) :])
    return out


def _smoother_matrix(x: FloatArray) -> FloatArray:
    """Rows of weights of a local-linear Gaussian kernel regression at the points ``x``."""
    n = x.size
    if n < 2:
        return np.ones((n, n))
    spacing = float(np.median(np.diff(x)))
    h = max(_BANDWIDTH_SPACINGS * spacing, _MIN_BANDWIDTH_DECADES * _LN10)
    d = x[None, :] - x[:, None]
    w = np.exp(-0.5 * (d / h) ** 2)
    s0 = w.sum(axis=1, keepdims=True)
    s1 = (w * d).sum(axis=1, keepdims=True)
    s2 = (w * d * d).sum(axis=1, keepdims=True)
    denom = s0 * s2 - s1 * s1
    ok = denom > 1e-12 * s0 * s2
    a: FloatArray = np.where(ok, w * (s2 - d * s1) / np.where(ok, denom, 1.0), w / s0)
    return a


def _head(logx: FloatArray, fraction: float) -> int:
    """Number of leading points in the first ``fraction`` of the log-LR span (at least 3)."""
    cut = logx[0] + fraction * (logx[-1] - logx[0])
    return max(3, int(np.searchsorted(logx, cut, side="right")))


def _start_level(logx: FloatArray, y: FloatArray) -> float:
    """Median raw loss over the first 10% of the log-LR span (the level before any descent)."""
    return float(np.median(y[: _head(logx, 0.1)]))


def _noise(y: FloatArray) -> float:
    if y.size < 3:
        return 0.0
    d = np.diff(y)
    mad = float(np.median(np.abs(d - np.median(d))))
    return 1.4826 * mad / math.sqrt(2.0)


def zero_lag_smooth(lrs: ArrayLike, losses: ArrayLike) -> FloatArray:
    """lrkit's smooth of a raw range-test curve (steps 1-2 of :func:`analyze_curve`).

    Running median over 5 points, losses above the starting level clipped to it, then a
    local-linear Gaussian kernel regression in ``ln(lr)``. Returns the smooth of the finite
    prefix of the curve.
    """
    x, y = finite_curve(lrs, losses)
    if y.size == 0:
        return y
    return _smooth(np.log(x), y, _smoother_matrix(np.log(x)))


def _smooth(logx: FloatArray, y: FloatArray, a: FloatArray) -> FloatArray:
    return _smooth_parts(logx, y, a)[0]


def _smooth_parts(logx: FloatArray, y: FloatArray, a: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The zero-lag smooth and the running median it starts from."""
    med = _running_median(y, _MEDIAN_WINDOW)
    top = _start_level(logx, y)
    out: FloatArray = a @ np.minimum(med, top)
    return out, med


def _basin(s: FloatArray, i_min: int, level: float) -> tuple[int, int]:
    lo = i_min
    while lo > 0 and s[lo - 1] <= level:
        lo -= 1
    hi = i_min
    while hi < s.size - 1 and s[hi + 1] <= level:
        hi += 1
    return lo, hi


def _analyze(x: FloatArray, y: FloatArray, a: FloatArray) -> CurveAnalysis:
    n = y.size
    if n < _MIN_POINTS:
        return CurveAnalysis(None, f"too few finite points ({n}, need {_MIN_POINTS})", n)
    logx = np.log(x)
    s, med = _smooth_parts(logx, y, a)
    i_min = int(np.argmin(s))
    start = _start_level(logx, y)
    drop = start - float(s[i_min])
    # the noise of the curve up to its divergence tail, the last stretch where the running
    # median stays above the start level (the tail would dominate any estimate); a flat curve
    # crosses its start level back and forth, so the first crossing is no cut-off
    below = np.flatnonzero(med <= start)
    tail = int(below[-1]) + 1 if below.size else n
    noise = _noise(y[: max(tail, _head(logx, 0.1))])
    lr_min = float(x[i_min])
    scale = max(abs(start), abs(float(s[i_min])), 1e-300)
    if drop <= _NOISE_FACTOR * noise or drop <= 1e-9 * scale:
        reason = (
            f"no clear descent: the smoothed loss falls by {drop:.3g} from its start, not more "
            f"than {_NOISE_FACTOR:g}x the step-to-step noise ({noise:.3g}); a model that "
            f"learns slowly needs a slower sweep (more steps, e.g. steps={3 * max(n, 100)}, "
            "or a narrower LR range), a noisy loss larger batches"
        )
        return CurveAnalysis(None, reason, n, s, lr_min, drop=drop, noise=noise)
    if i_min + 1 < _head(logx, 0.05):
        reason = "the loss rises from the start of the sweep; lower start_lr"
        return CurveAnalysis(None, reason, n, s, lr_min, drop=drop, noise=noise)
    lo, hi = _basin(s, i_min, float(s[i_min]) + _BASIN_TOLERANCE * drop)
    desc, _ = _basin(s, i_min, start - _BASIN_TOLERANCE * drop)
    lr_mid = math.exp(0.5 * (logx[lo] + logx[hi]))
    lr = min(max(_PEAK_FACTOR * lr_mid, float(x[0])), float(x[-1]))
    reason = (
        f"half the middle ({lr_mid:.3g}) of the basin [{x[lo]:.3g}, {x[hi]:.3g}] where the "
        "smoothed loss stops improving"
    )
    if hi == n - 1:
        reason += "; the loss was still low at the largest LR tested: raise end_lr to be sure"
    return CurveAnalysis(
        lr,
        reason,
        n,
        s,
        lr_min,
        float(x[lo]),
        float(x[hi]),
        float(x[desc]),
        drop,
        noise,
    )


def analyze_curve(lrs: ArrayLike, losses: ArrayLike) -> CurveAnalysis:
    """Apply lrkit's rule to a raw range-test curve and return what it found.

    See the module docstring for the rule and why it is built this way. ``losses`` are the raw
    per-step losses (not EMA-smoothed); the rule smooths them itself without lag.
    """
    x, y = finite_curve(lrs, losses)
    return _analyze(x, y, _smoother_matrix(np.log(x)) if x.size else np.empty((0, 0)))


def suggest_lrkit(lrs: ArrayLike, losses: ArrayLike) -> float | None:
    """lrkit's default rule on raw losses: ``analyze_curve(lrs, losses).lr``.

    Half the middle of the basin of the zero-lag smoothed loss; ``None`` when the
    curve has no clear descent. See the module docstring.
    """
    return analyze_curve(lrs, losses).lr


_CLASSIC: dict[str, Callable[[ArrayLike, ArrayLike], float | None]] = {
    "minimum": suggest_minimum,
    "steepest": suggest_steepest,
    "valley": suggest_valley,
}


def _percentile_band(
    values: Sequence[float], lr: float, *, centred: bool, within: tuple[float, float]
) -> tuple[float, float]:
    """10th-90th percentile of ``values`` in log space; ``centred`` shifts it so that the
    median of ``values`` sits on ``lr`` (corrects the bootstrap's bias). Kept within the swept
    range ``within`` (a shift could carry it past either end) and always contains lr."""
    logs = np.log(np.asarray(values, dtype=np.float64))
    low, high = np.percentile(logs, [10, 90])
    if centred:
        shift = math.log(lr) - float(np.median(logs))
        low, high = low + shift, high + shift
    first, last = within
    low_lr = min(max(float(np.exp(low)), first), lr)
    high_lr = max(min(float(np.exp(high)), last), lr)
    return low_lr, high_lr


def suggest_lr(
    lrs: ArrayLike,
    losses: ArrayLike,
    method: Method = "lrkit",
    *,
    smoothing: float = 0.98,
    repeat_losses: Sequence[ArrayLike] | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> Suggestion:
    """Apply a rule to a raw range-test curve and estimate its uncertainty.

    Args:
        lrs: the learning rates, strictly increasing.
        losses: the raw losses (for several repeats: their mean).
        method: ``"lrkit"`` (default), ``"minimum"``, ``"steepest"`` or ``"valley"``. The
            classic rules read the EMA of the losses (``smoothing`` is its ``beta``); lrkit's
            rule does its own smoothing.
        repeat_losses: the raw curves of the individual repeats (same LR sequence, possibly
            stopped at different lengths). With two or more, the band is the 10th-90th
            percentile of the rule over them.
        n_boot: bootstrap resamples for the band of a single curve (0: no band).
        seed: seed of the bootstrap's private generator (the result is deterministic).

    Returns:
        A :class:`Suggestion`; its ``lr`` is ``None`` (with the reason) when the rule finds
        no usable descent.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    x, y = finite_curve(lrs, losses)
    if method == "lrkit":
        a = _smoother_matrix(np.log(x)) if x.size else np.empty((0, 0))
        found = _analyze(x, y, a)
        lr, reason = found.lr, found.reason

        def rule(xx: FloatArray, yy: FloatArray) -> float | None:
            m = yy.size
            return _analyze(xx, yy, a[:m, :m] if m == x.size else _smoother_matrix(np.log(xx))).lr

    else:
        classic = _CLASSIC[method]

        def rule(xx: FloatArray, yy: FloatArray) -> float | None:
            return classic(xx, ema(yy, smoothing))

        lr = rule(x, y)
        reason = {
            "minimum": "the LR at the minimum of the smoothed loss, divided by 10",
            "steepest": (
                "the steepest descent of the smoothed loss per unit of log-LR, leaving out the "
                f"first {STEEPEST_SKIP_START} and the last {STEEPEST_SKIP_END} points"
            ),
            "valley": "two thirds down the longest descending stretch of the smoothed loss",
        }[method]
        if lr is None:
            reason = "no finite losses" if y.size == 0 else "the smoothed loss never decreases"
            short = STEEPEST_SKIP_START + STEEPEST_SKIP_END + 2
            if method == "steepest" and 0 < y.size < short:
                reason = (
                    f"too few finite points ({y.size}): the rule leaves out the first "
                    f"{STEEPEST_SKIP_START} and the last {STEEPEST_SKIP_END} and needs {short}"
                )
    if lr is None:
        return Suggestion(None, None, None, method, reason)

    values: list[float] = []
    curves = list(repeat_losses or [])
    if len(curves) >= 2:
        for c in curves:
            cx, cy = finite_curve(np.asarray(lrs, dtype=np.float64)[: np.size(c)], c)
            v = rule(cx, cy)
            if v is not None:
                values.append(v)
        reason += f"; band from {len(curves)} repeats"
    elif n_boot > 0 and y.size >= _MIN_POINTS:
        samples = _resamples(x, y, n_boot, seed)
        if method == "lrkit":
            boot = _lrkit_many(x, samples, _smoother_matrix(np.log(x)))
            values = [float(v) for v in boot if np.isfinite(v)]
        else:
            values = [v for v in (rule(x, row) for row in samples) if v is not None]
        reason += "; band from a bootstrap of the curve"
    if not values:
        return Suggestion(lr, lr, lr, method, reason)
    low, high = _percentile_band(values, lr, centred=len(curves) < 2, within=(x[0], x[-1]))
    return Suggestion(lr, low, high, method, reason)


def _resamples(x: FloatArray, y: FloatArray, n_boot: int, seed: int) -> FloatArray:
    """Wild bootstrap: residuals around the (plain) zero-lag smooth times random signs."""
    fit = _smoother_matrix(np.log(x)) @ y
    resid = y - fit
    signs = np.random.default_rng(seed).choice(np.array([-1.0, 1.0]), size=(n_boot, y.size))
    out: FloatArray = fit + signs * resid
    return out


def _lrkit_many(x: FloatArray, ys: FloatArray, a: FloatArray) -> FloatArray:
    """lrkit's rule on many finite curves of the same length at once (NaN where it gives
    ``None``); the same decisions as :func:`_analyze`, vectorised for the bootstrap."""
    b, n = ys.shape
    out = np.full(b, np.nan)
    if n < _MIN_POINTS:
        return out
    logx = np.log(x)
    half = _MEDIAN_WINDOW // 2
    med = np.empty_like(ys)
    windows = np.lib.stride_tricks.sliding_window_view(ys, _MEDIAN_WINDOW, axis=1)
    med[:, half:-half] = np.median(windows, axis=2)
    for i in range(half):
        med[:, i] = np.median(ys[:, : i + half + 1], axis=1)
        med[:, -1 - i] = np.median(ys[:, -(i + half + 1) :], axis=1)
    start = np.median(ys[:, : _head(logx, 0.1)], axis=1)
    s = np.minimum(med, start[:, None]) @ a.T
    rows = np.arange(b)
    idx = np.arange(n)
    i_min = np.argmin(s, axis=1)
    s_min = s[rows, i_min]
    drop = start - s_min
    below = med <= start[:, None]
    last_below = np.where(below.any(axis=1), n - 1 - np.argmax(below[:, ::-1], axis=1), n - 1)
    cut = np.maximum(last_below + 1, _head(logx, 0.1))
    d = np.diff(ys, axis=1)
    d = np.where(idx[None, :-1] < (cut - 1)[:, None], d, np.nan)
    centred = d - np.nanmedian(d, axis=1)[:, None]
    noise = 1.4826 * np.nanmedian(np.abs(centred), axis=1) / math.sqrt(2.0)
    scale = np.maximum(np.maximum(np.abs(start), np.abs(s_min)), 1e-300)
    ok = (drop > _NOISE_FACTOR * noise) & (drop > 1e-9 * scale) & (i_min + 1 >= _head(logx, 0.05))
    level = s_min + _BASIN_TOLERANCE * drop
    outside = s > level[:, None]
    lo = np.max(np.where(outside & (idx < i_min[:, None]), idx, -1), axis=1) + 1
    hi = np.min(np.where(outside & (idx > i_min[:, None]), idx, n), axis=1) - 1
    lr = _PEAK_FACTOR * np.exp(0.5 * (logx[lo] + logx[hi]))
    lr = np.clip(lr, x[0], x[-1])
    out[ok] = lr[ok]
    return out
