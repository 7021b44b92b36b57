"""The horizon model of the search (lrkit.finder.horizon): the shipped model loads, predictions
are deterministic and clipped, the dict form round-trips, and its inputs (features, and the
traits read from a model and its optimizer) are the documented values."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from lrkit.finder import horizon
from lrkit.finder.horizon import FEATURES, HorizonModel


def _model(**kwargs: object) -> HorizonModel:
    args: dict[str, object] = {
        "intercept": 0.0,
        "coef": {"doublings": 1.0},
        "mean": {"doublings": 2.0},
        "scale": {"doublings": 0.5},
        "low": -1.0,
        "high": 0.5,
    }
    args.update(kwargs)
    return HorizonModel(**args)  # type: ignore[arg-type]


def _x(**kwargs: float) -> dict[str, float]:
    x = dict.fromkeys(FEATURES, 0.0)
    x.update(kwargs)
    return x


def test_the_shipped_model_loads_once_with_known_inputs() -> None:
    assert FEATURES == (
        "doublings",
        "adaptive",
        "normalised",
        "dropout",
        "probe_offset",
        "headroom",
        "probe_slope",
    )
    model = horizon.load()
    assert isinstance(model, HorizonModel)
    assert horizon.load() is model  # read once
    assert model.low < model.high
    for table in (model.coef, model.mean, model.scale):
        assert set(table) <= set(FEATURES)
    y = model.predict(_x(doublings=3.0, headroom=4.0))
    assert math.isfinite(y) and model.low <= y <= model.high


def test_predict_is_the_standardised_linear_model_clipped_to_its_range() -> None:
    model = _model(intercept=0.1)
    # 0.1 + 1.0 * (2.1 - 2) / 0.5
    assert model.predict(_x(doublings=2.1)) == pytest.approx(0.3)
    assert model.predict(_x(doublings=2.1)) == model.predict(_x(doublings=2.1))
    assert model.predict(_x(doublings=1.5)) == pytest.approx(-0.9)
    assert model.predict(_x(doublings=10.0)) == 0.5  # clipped at high
    assert model.predict(_x(doublings=-10.0)) == -1.0  # clipped at low
    # features without a coefficient do not count; without a mean or scale: 0 and 1
    wider = _model(coef={"doublings": 1.0, "probe_offset": -0.25}, low=-4.0, high=4.0)
    assert wider.predict(_x(doublings=2.0, probe_offset=2.0, headroom=9.0)) == pytest.approx(-0.5)


def test_the_dict_form_round_trips_through_json() -> None:
    model = _model(
        coef={"doublings": 1.0, "adaptive": -0.5},
        mean={"doublings": 2.0, "adaptive": 0.5},
        scale={"doublings": 0.5, "adaptive": 0.5},
        cv_rmse=0.75,
        about="a test model",
    )
    again = HorizonModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again == model
    unfitted = _model()
    assert unfitted.cv_rmse is None
    assert HorizonModel.from_dict(unfitted.to_dict()) == unfitted
    shipped = horizon.load()
    assert HorizonModel.from_dict(shipped.to_dict()) == shipped


def test_features_are_the_documented_values() -> None:
    traits = {"adaptive": 1.0, "normalised": 0.0, "dropout": 1.0}
    peaks = [0.005, 0.01, 0.02, 0.04, 0.08, 0.16]
    keys = [1.0, 0.8, 0.7, 0.2, 0.6, math.inf]  # best at 0.04; 0.16 diverged
    x = horizon.features(
        traits,
        total_steps=1000,
        probe_steps=125,
        anchor=0.01,
        best_probe=0.04,
        ceiling=0.08,
        peaks=peaks,
        keys=keys,
    )
    assert list(x) == list(FEATURES)
    # spread 1.0 - 0.2; above the best 0.6, below it 0.7: (0.6 - 0.2) / 0.8 - (0.7 - 0.2) / 0.8
    assert x == pytest.approx(
        {
            "doublings": 3.0,
            "adaptive": 1.0,
            "normalised": 0.0,
            "dropout": 1.0,
            "probe_offset": 2.0,
            "headroom": 3.0,
            "probe_slope": -0.125,
        }
    )
    # no ceiling: four doublings of headroom; the best at the top edge: the side above counts 1
    top = horizon.features(
        traits,
        total_steps=1000,
        probe_steps=125,
        anchor=0.01,
        best_probe=0.04,
        ceiling=None,
        peaks=[0.01, 0.02, 0.04],
        keys=[0.9, 0.5, 0.1],
    )
    assert top["headroom"] == 4.0
    assert top["probe_slope"] == pytest.approx(1.0 - (0.5 - 0.1) / 0.8)
    # scores all alike: no slope
    flat = horizon.features(
        traits,
        total_steps=500,
        probe_steps=125,
        anchor=0.02,
        best_probe=0.01,
        ceiling=None,
        peaks=[0.01, 0.02],
        keys=[0.5, 0.5],
    )
    assert flat["probe_slope"] == 0.0 and flat["probe_offset"] == -1.0
    assert flat["doublings"] == 2.0


def _params() -> list[nn.Parameter]:
    return [nn.Parameter(torch.zeros(2))]


@pytest.mark.parametrize(
    ("layers", "optimizer", "traits"),
    [
        ([nn.Linear(4, 2)], torch.optim.SGD, (0.0, 0.0, 0.0)),
        ([nn.Linear(4, 4), nn.BatchNorm1d(4)], torch.optim.SGD, (0.0, 1.0, 0.0)),
        ([nn.Linear(4, 4), nn.LayerNorm(4), nn.Dropout(0.1)], torch.optim.Adam, (1.0, 1.0, 1.0)),
        ([nn.Conv2d(1, 4, 3), nn.GroupNorm(2, 4)], torch.optim.AdamW, (1.0, 1.0, 0.0)),
        ([nn.Conv1d(1, 4, 3), nn.InstanceNorm1d(4)], torch.optim.RMSprop, (1.0, 1.0, 0.0)),
        ([nn.Conv2d(1, 4, 3), nn.Dropout2d(0.2)], torch.optim.Adagrad, (1.0, 0.0, 1.0)),
    ],
    ids=["plain-sgd", "batchnorm-sgd", "layernorm-dropout-adam", "groupnorm-adamw",
         "instancenorm-rmsprop", "dropout2d-adagrad"],
)  # fmt: skip
def test_model_traits_reads_normalisation_dropout_and_an_adaptive_optimizer(
    layers: list[nn.Module],
    optimizer: Callable[..., torch.optim.Optimizer],
    traits: tuple[float, ...],
) -> None:
    model = nn.Sequential(*layers)
    opt = optimizer(model.parameters(), lr=0.01)
    assert horizon.model_traits(model, opt) == dict(
        zip(("adaptive", "normalised", "dropout"), traits, strict=True)
    )


def test_model_traits_reads_the_optimizer_not_the_parameters() -> None:
    model = nn.Sequential(nn.Linear(2, 2))
    sgd = torch.optim.SGD(_params(), lr=0.1, momentum=0.9)
    adam = torch.optim.Adam(_params(), lr=1e-3)
    assert horizon.model_traits(model, sgd)["adaptive"] == 0.0
    assert horizon.model_traits(model, adam)["adaptive"] == 1.0
