"""The horizon model: how the best peak of a short probe moves to the best peak of the full run.

A short run of a schedule prefers a different peak from the full run it stands for (Wu et al.
2018, "Understanding short-horizon bias in stochastic meta-optimization"; Bjorck et al. 2025,
arXiv 2409.19913, ``LR*(D) ∝ D^-β``; Schaipp et al. 2025, arXiv 2501.18965). How far it moves
depends on the model and the optimizer, so the published exponents, fitted on language models,
are not used as answers. Instead a small linear model predicts

    y = log2(best full-run peak / best probe peak)

from what the search can see (:func:`features`): the doublings from the probes' length to the
run's, the optimizer family, normalisation and dropout layers, the shape of the range-test
curve around its suggestion, where the probes' best lies from the suggestion, and how steeply
the probes' scores fall away from it. Its coefficients (a ridge regression fitted on the design
half of ``benchmarks/task_distribution.py`` by ``benchmarks/distribution.py fit``, with the
cross-validated error) are stored in ``horizon_model.json`` beside this module; :func:`load`
reads them once and :func:`predict` is deterministic.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["FEATURES", "HorizonModel", "features", "load", "model_traits"]

FEATURES = (
    "doublings",
    "adaptive",
    "normalised",
    "dropout",
    "probe_offset",
    "headroom",
    "probe_slope",
)
"""The model's inputs, in order (see :func:`features`)."""

_FILE = Path(__file__).resolve().parent / "horizon_model.json"


@dataclass(frozen=True)
class HorizonModel:
    """A linear model ``y = intercept + Σ coef[f] · (x[f] - mean[f]) / scale[f]``, clipped to
    ``[low, high]`` (log2 units), with what it was fitted on (``about``) and its
    cross-validated error (``cv_rmse``, log2 units, leave-one-task-out)."""

    intercept: float
    coef: Mapping[str, float]
    mean: Mapping[str, float]
    scale: Mapping[str, float]
    low: float
    high: float
    cv_rmse: float | None = None
    about: str = ""

    def predict(self, x: Mapping[str, float]) -> float:
        """``log2(full-run peak / probe peak)`` for the features ``x``."""
        y = self.intercept
        for name in FEATURES:
            y += (
                self.coef.get(name, 0.0)
                * (x[name] - self.mean.get(name, 0.0))
                / (self.scale.get(name, 1.0) or 1.0)
            )
        return float(min(max(y, self.low), self.high))

    def to_dict(self) -> dict[str, Any]:
        return {
            "intercept": self.intercept,
            "coef": dict(self.coef),
            "mean": dict(self.mean),
            "scale": dict(self.scale),
            "low": self.low,
            "high": self.high,
            "cv_rmse": self.cv_rmse,
            "about": self.about,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HorizonModel:
        return cls(
            intercept=float(d["intercept"]),
            coef={k: float(v) for k, v in d["coef"].items()},
            mean={k: float(v) for k, v in d["mean"].items()},
            scale={k: float(v) for k, v in d["scale"].items()},
            low=float(d["low"]),
            high=float(d["high"]),
            cv_rmse=None if d.get("cv_rmse") is None else float(d["cv_rmse"]),
            about=str(d.get("about", "")),
        )


@functools.cache
def load() -> HorizonModel:
    """The fitted model shipped with lrkit (``horizon_model.json``)."""
    return HorizonModel.from_dict(json.loads(_FILE.read_text()))


def model_traits(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """What the search reads from the model and optimizer: an adaptive optimizer (Adam's
    family, RMSprop, Adagrad: per-parameter step sizes), normalisation layers (BatchNorm,
    LayerNorm, GroupNorm, InstanceNorm) and dropout; each 1.0 or 0.0."""
    group = optimizer.param_groups[0]
    adaptive = "betas" in group or "alpha" in group or "initial_accumulator_value" in group
    norms = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
    normalised = any(isinstance(m, norms) for m in model.modules())
    dropout = any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules())
    return {
        "adaptive": float(adaptive),
        "normalised": float(normalised),
        "dropout": float(dropout),
    }


def features(
    traits: Mapping[str, float],
    *,
    total_steps: int,
    probe_steps: int,
    anchor: float,
    best_probe: float,
    ceiling: float | None,
    peaks: Sequence[float],
    keys: Sequence[float],
) -> dict[str, float]:
    """The model's inputs.

    Args:
        traits: :func:`model_traits`.
        total_steps, probe_steps: the run's length and the probes'.
        anchor: the range test's suggestion; best_probe: the best peak of the probes.
        ceiling: where the range test's loss turned up (``None``: it did not).
        peaks, keys: the probes' peaks and their sort keys (lower is better; ``inf`` for a
            probe that diverged).
    """
    finite = [k for k in keys if math.isfinite(k)]
    spread = (max(finite) - min(finite)) if len(finite) > 1 else 0.0
    slope = 0.0
    if spread > 0:
        by_peak = sorted(zip(peaks, keys, strict=True))
        hi = [k for p, k in by_peak if p > best_probe and math.isfinite(k)]
        lo = [k for p, k in by_peak if p < best_probe and math.isfinite(k)]
        best = min(finite)
        # which side of the best the scores fall away from faster, +1 (steeper above) to -1
        up = (min(hi) - best) / spread if hi else 1.0
        down = (min(lo) - best) / spread if lo else 1.0
        slope = up - down
    return {
        "doublings": math.log2(total_steps / probe_steps),
        **{k: float(traits[k]) for k in ("adaptive", "normalised", "dropout")},
        "probe_offset": math.log2(best_probe / anchor),
        "headroom": math.log2(ceiling / anchor) if ceiling else 4.0,
        "probe_slope": slope,
    }
