"""Group finished trials by arm (configuration without the seed) and summarise across seeds."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ..train.history import History
from .store import TrialRecord

__all__ = ["Arm", "fmt_pair", "group_arms", "mean_std"]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value; NaN for none)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return math.nan, math.nan
    if len(xs) == 1:
        return xs[0], 0.0
    return float(np.mean(xs)), float(np.std(xs, ddof=1))


def fmt_pair(pair: tuple[float, float], digits: int = 4) -> str:
    """``mean ± std`` from :func:`mean_std` output with ``digits`` significant figures, or ``–``
    when there was no value."""
    m, s = pair
    return "–" if math.isnan(m) else f"{m:.{digits}g} ± {s:.2g}"


@dataclass(frozen=True)
class Arm:
    """All seeds of one configuration."""

    label: str
    records: tuple[TrialRecord, ...]

    @cached_property
    def histories(self) -> list[History]:
        """Histories of the trials that ran (ok or diverged), decoded once."""
        return [
            History.from_dict(r.result["history"])
            for r in self.records
            if r.result.get("history") is not None
        ]

    @property
    def statuses(self) -> dict[str, int]:
        """Count of trials by status."""
        out: dict[str, int] = {}
        for r in self.records:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def final_metrics(self) -> list[float]:
        """Final metric of every trial that ran (NaN for diverged ones without one)."""
        return [h.final_metric if h.final_metric is not None else math.nan for h in self.histories]

    def steps_to_target(self) -> list[float]:
        """Steps to the target per trial (NaN where the target was never reached)."""
        return [
            float(h.steps_to_target) if h.steps_to_target is not None else math.nan
            for h in self.histories
        ]

    def seconds_to_target(self) -> list[float]:
        """Training seconds to the target per trial (NaN where never reached)."""
        return [
            h.seconds_to_target if h.seconds_to_target is not None else math.nan
            for h in self.histories
        ]

    def train_seconds(self) -> list[float]:
        """Training seconds per trial."""
        return [h.seconds for h in self.histories]

    def summary_row(self) -> dict[str, Any]:
        """The numbers a summary table shows for this arm."""
        reached = [s for s in self.steps_to_target() if math.isfinite(s)]
        return {
            "arm": self.label,
            "trials": len(self.records),
            "statuses": self.statuses,
            "final_metric": mean_std(self.final_metrics()),
            "steps_to_target": mean_std(reached),
            "reached_target": f"{len(reached)}/{len(self.histories)}",
            "seconds_to_target": mean_std(
                [s for s in self.seconds_to_target() if math.isfinite(s)]
            ),
            "train_seconds": mean_std(self.train_seconds()),
        }


def group_arms(records: Iterable[TrialRecord]) -> list[Arm]:
    """Group records by ``config["arm"]`` (falling back to the key without its seed), in order."""
    by_label: dict[str, list[TrialRecord]] = {}
    for r in records:
        label = str(r.config.get("arm") or r.key.rsplit("/seed=", 1)[0])
        by_label.setdefault(label, []).append(r)
    return [Arm(label, tuple(recs)) for label, recs in by_label.items()]
