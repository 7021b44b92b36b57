"""The task distribution of ``benchmarks/task_distribution.py`` and its cached ground truth
(``benchmarks/data/distribution_truth.json``): the generator and the split are fixed, every
family's task builds and trains, the truth covers every task as its protocol says, and a
finder's peak is re-scored from it."""

from __future__ import annotations

import collections
import hashlib
import importlib
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from lrkit.finder import horizon

pytest.importorskip("mnist1d")
pytest.importorskip("sklearn")

pytestmark = pytest.mark.usefixtures("one_thread")

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def td() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("task_distribution")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def dist() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("distribution")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def truth(td: ModuleType) -> dict[str, Any]:
    doc = json.loads((BENCHMARKS / "data" / "distribution_truth.json").read_text())
    assert doc["generator_seed"] == td.SEED
    return dict(doc["tasks"])


def test_the_generator_is_deterministic_and_covers_every_family_twice(td: ModuleType) -> None:
    specs = td.draw()
    assert specs == td.draw()
    assert len(specs) == td.COUNT == 64
    assert len({s.name for s in specs}) == 64
    families = collections.Counter(s.family for s in specs)
    assert set(families) == set(td.FAMILIES) and min(families.values()) >= 2
    assert {s.optimizer for s in specs} == {"sgd", "adamw", "adam", "rmsprop"}
    steps = [s.steps for s in specs]
    assert min(steps) >= 200 and max(steps) > 5000
    assert {16, 32, 64, 128, 256} <= {s.batch_size for s in specs}
    assert [s.name for s in td.draw(seed=td.SEED + 1)] != [s.name for s in specs]


def test_the_split_is_the_names_hash_rule_and_balanced(td: ModuleType) -> None:
    ranked = sorted(td.TASKS, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    design = {n for n in td.TASKS if td.half(n) == "design"}
    assert design == set(ranked[:32])
    assert len(design) == 32


def test_one_task_of_every_family_builds_and_trains_a_step(td: ModuleType) -> None:
    seen: set[str] = set()
    for name, spec in td.TASKS.items():
        if spec.family in seen:
            continue
        seen.add(spec.family)
        task = td.make_task(spec)
        model = task.make_model(0)
        x, y = task.train_data
        out = model(x[: spec.batch_size])
        loss = task.loss_fn(out, y[: spec.batch_size])
        assert torch.isfinite(loss), name
        loss.backward()
        score = task.metric_fn(model(task.val_data[0][:50]), task.val_data[1][:50])
        assert math.isfinite(score), name
    assert seen == set(td.FAMILIES)


def test_the_cached_truth_covers_every_task_as_the_protocol_says(
    td: ModuleType, dist: ModuleType, truth: dict[str, Any]
) -> None:
    assert set(truth) == set(td.TASKS)
    for name, t in truth.items():
        assert t["half"] == td.half(name)
        peaks = sorted(float(p) for p in t["runs"])
        assert set(dist.grid(name)) <= set(peaks)
        assert all(len(v) == 3 for v in t["runs"].values())
        means = {p: float(np.mean(t["runs"][f"{p:.6g}"])) for p in peaks}
        assert t["best"] == pytest.approx(max(means.values()))
        assert means[t["best_peak"]] == pytest.approx(t["best"])
        assert t["median"] == pytest.approx(float(np.median([means[p] for p in dist.grid(name)])))
        at_end = t["best_peak"] in (peaks[0], peaks[-1])
        assert not at_end or len(peaks) == 13 + dist.GROW * dist.MAX_GROWTH, name
        assert len(t["fresh_at_best"]) == 3


def test_a_peak_is_scored_by_interpolating_the_grid(dist: ModuleType) -> None:
    t = {
        "runs": {"0.01": [0.5, 0.5, 0.5], "0.1": [0.9, 0.8, 0.7], "1": [0.2, 0.2, 0.2]},
        "best": 0.8,
        "median": 0.5,
    }
    assert dist.grid_score(t, 0.1) == (pytest.approx(0.8), False)
    assert dist.grid_score(t, math.sqrt(0.1)) == (pytest.approx(0.5), False)
    assert dist.grid_score(t, 10.0) == (pytest.approx(0.2), True)
    assert dist.grid_score(t, None) == (0.5, False)
    assert dist.regret(t, 0.8) == 0.0 and dist.regret(t, 0.5) == pytest.approx(1.0)


def test_the_shipped_horizon_model_was_fitted_on_the_design_half() -> None:
    model = horizon.load()
    assert model.cv_rmse is not None and model.cv_rmse > 0
    assert "design tasks of benchmarks/task_distribution.py" in model.about
    assert set(model.coef) == set(horizon.FEATURES)
