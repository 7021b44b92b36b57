"""Learning-rate-free optimizers as peers of the LR finders in `suggestion_regret.py`.

Each is trained on a task for the task's full length with the settings its own README (or
constructor docstring) recommends for training from scratch; nothing is tuned per task. Weight
decay is 0 everywhere, as in every grid run of the benchmark, so the optimizer is the only
difference. The optimizer family follows the task's own optimizer: an Adam variant where the
task trains with Adam/AdamW, an SGD variant where it trains with SGD (momentum 0.9).

- **Prodigy** (`prodigyopt`): `Prodigy(lr=1.0)` with its other defaults (betas (0.9, 0.999),
  `d_coef=1`, `d0=1e-6`, `safeguard_warmup=False`, `use_bias_correction=False`) and cosine
  annealing of the lr multiplier from 1 to 0 over the whole run, no warmup. README: "We recommend
  using `lr=1.` (default) for all networks", "either no scheduler or using cosine annealing" with
  `T_max=total_steps`, and `safeguard_warmup=True` only with warmup or restarts (neither here).
  Prodigy is Adam-based, so SGD tasks get it too.
- **D-Adaptation** (`dadaptation`): `DAdaptAdam(lr=1.0)` on Adam/AdamW tasks,
  `DAdaptSGD(lr=1.0, momentum=0.9)` on SGD tasks, other arguments default. README: "Set the LR
  parameter to 1.0" and "Use the same learning rate scheduler you would normally use on the
  problem": here that is the schedule every grid run trains with, lrkit's `one_cycle` (cosine
  warm-up from 1/25 over 30% of the run, cosine anneal, momentum/beta1 0.95 → 0.85 → 0.95), with
  peak 1.0 as the multiplier of D-Adaptation's own step size. SGD momentum 0.9 because the tasks'
  SGD uses it (DAdaptSGD's default of 0 would be a different optimizer from the one replaced).
- **DoG** (`dog-optimizer`): `DoG(lr=1.0, reps_rel=1e-6)`, or `reps_rel=1e-4` when the model has
  BatchNorm (README: "setting `reps_rel` to 1e-4 eliminated the problem" with batch
  normalization), no schedule, with the package's `PolynomialDecayAverager(model)` (gamma 8)
  stepped after every update; the averaged model is evaluated (README: "DoG/L-DoG must be
  combined with iterate averaging"; its default configuration "should work well out of the
  box"). DoG is SGD-like, so Adam tasks get it too.
- **Mechanic** (`mechanic-pytorch`): ``mechanize(<the task's optimizer class>)(params, lr=1.0)``
  (momentum 0.9 for SGD and RMSprop, whose one cycle schedules it, as the task's runs do),
  other arguments default (``s_decay=0.01``, betas
  (0.9, 0.99, 0.999, 0.9999, 0.99999, 0.999999), ``s_init=1e-8``), under the task's own
  schedule, lrkit's ``one_cycle``, with peak 1.0 (its README: it "tunes the scale" of any base
  optimizer and schedule, "lr=1.0" with the schedule "you would normally use").
- **Schedule-Free** (`schedulefree`): `AdamWScheduleFree(lr=0.0025)` on Adam/AdamW tasks (the
  constructor default, and the lr of the authors' AlgoPerf self-tuning submission; README: "For
  AdamW, learning rates in the range 1x-10x larger than with schedule-based approaches", and the
  tasks' AdamW lr is 1e-3), `SGDScheduleFree(lr=1.0, momentum=0.9)` on SGD tasks (constructor
  default; README: "For SGD, a learning rate 10x-50x larger than classical rates", and the tasks'
  SGD lr is 0.1). Warm-up over 2% of the run (README: "Using learning rate warmup is
  recommended"; 2% is the `warmup_factor` of every configuration in the package's AlgoPerf
  submissions). `optimizer.train()` while training and `optimizer.eval()` before evaluating;
  with BatchNorm, the running statistics are recomputed at the evaluation point from 50
  training batches first, as the README's caveat prescribes.

Training runs on lrkit's engine (`Engine.update` on a `BatchStream` of the task's shuffling
loader; `lrkit.Scheduler` for the schedules) and is scored like lrkit's trainer: one evaluation
of the task's metric, pooled over the task's validation set, after the last update. A NaN or
infinite loss stops the run as diverged.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from lrkit import Scheduler
from lrkit import schedules as S
from lrkit.engine import BatchStream, Engine
from lrkit.tasks import Task, get_task

OPTIMIZERS = ("prodigy", "dadapt", "dog", "schedulefree", "mechanic")
"""The LR-free peers, by the names the benchmark's trials use."""

LABELS = {
    "prodigy": "Prodigy",
    "dadapt": "D-Adaptation",
    "dog": "DoG",
    "schedulefree": "Schedule-Free",
    "mechanic": "Mechanic",
}

WARMUP_FRACTION = 0.02
BN_RECOMPUTE_BATCHES = 50


def settings(
    name: str, task: Task, steps: int | None = None, weight_decay: float = 0.0
) -> dict[str, Any]:
    """The optimizer's constructor arguments and schedule for ``task`` (``steps``: the run's
    length, default the task's epochs; ``weight_decay``: the task's, passed to every optimizer
    when not 0), as plain JSON."""
    spec = _settings(name, task, steps)
    if weight_decay:
        spec["kwargs"]["weight_decay"] = weight_decay
    return spec


def _settings(name: str, task: Task, steps: int | None) -> dict[str, Any]:
    adam = task.optimizer.lower().startswith("adam")
    if steps is None:
        steps = task.epochs * task.steps_per_epoch()
    if name == "mechanic":
        base = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}
        kwargs: dict[str, Any] = {"lr": 1.0}
        if task.optimizer.lower() in ("sgd", "rmsprop"):  # one_cycle schedules the momentum
            kwargs["momentum"] = 0.9
        return {
            "class": "Mechanic",
            "base": base.get(task.optimizer.lower(), "AdamW" if adam else "SGD"),
            "kwargs": kwargs,
            "schedule": "one_cycle",
        }
    if name == "prodigy":
        return {"class": "Prodigy", "kwargs": {"lr": 1.0}, "schedule": "cosine"}
    if name == "dadapt":
        if adam:
            return {
                "class": "DAdaptAdam",
                "kwargs": {"lr": 1.0},
                "schedule": "one_cycle",
            }
        return {
            "class": "DAdaptSGD",
            "kwargs": {"lr": 1.0, "momentum": 0.9},
            "schedule": "one_cycle",
        }
    if name == "dog":
        reps_rel = 1e-4 if _has_batchnorm(task.make_model(0)) else 1e-6
        return {"class": "DoG", "kwargs": {"lr": 1.0, "reps_rel": reps_rel}, "schedule": None}
    if name == "schedulefree":
        warmup = max(1, round(WARMUP_FRACTION * steps))
        if adam:
            return {
                "class": "AdamWScheduleFree",
                "kwargs": {"lr": 0.0025, "warmup_steps": warmup},
                "schedule": None,
            }
        return {
            "class": "SGDScheduleFree",
            "kwargs": {"lr": 1.0, "momentum": 0.9, "warmup_steps": warmup},
            "schedule": None,
        }
    raise ValueError(f"unknown LR-free optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")


def describe(name: str, task: Task) -> str:
    """One short line: the class and arguments used on ``task``."""
    s = settings(name, task)
    kwargs = s["kwargs"]
    args = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in kwargs.items()
    )
    sched = {"cosine": " + cosine", "one_cycle": " + one_cycle", None: ""}[s["schedule"]]
    if s["class"] == "Mechanic":
        return f"mechanize({s['base']})({args}){sched}"
    return f"{s['class']}({args}){sched}"


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _build(spec: Mapping[str, Any], model: nn.Module) -> tuple[torch.optim.Optimizer, Any, Any]:
    """The optimizer, the iterate averager (DoG) or ``None``, and the lrkit schedule or ``None``."""
    cls, kwargs = spec["class"], dict(spec["kwargs"])
    averager = None
    params = [p for p in model.parameters() if p.requires_grad]  # frozen ones stay out, as in fit
    if cls == "Prodigy":
        from prodigyopt import Prodigy

        opt: torch.optim.Optimizer = Prodigy(params, **kwargs)
    elif cls in ("DAdaptAdam", "DAdaptSGD"):
        import dadaptation

        opt = getattr(dadaptation, cls)(params, **kwargs)
    elif cls == "DoG":
        from dog import DoG, PolynomialDecayAverager

        opt = DoG(params, **kwargs)
        averager = PolynomialDecayAverager(model)
    elif cls == "Mechanic":
        from mechanic_pytorch import mechanize

        opt = mechanize(getattr(torch.optim, spec["base"]))(params, **kwargs)
    elif cls in ("AdamWScheduleFree", "SGDScheduleFree"):
        import schedulefree

        opt = getattr(schedulefree, cls)(params, **kwargs)
    else:
        raise ValueError(f"unknown optimizer class {cls!r}")
    return opt, averager, spec.get("schedule")


def train_lr_free(config: Mapping[str, Any]) -> dict[str, Any]:
    """Train ``config['task']`` with LR-free optimizer ``config['optimizer']`` for the task's full
    length at ``config['seed']``; return the final metric, whether it diverged, and the time."""
    task = get_task(str(config["task"]))
    seed = int(config["seed"])
    steps = int(config["steps"])
    spec = config["settings"]
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    model = task.make_model(seed)
    train, val = task.loaders(seed=seed)
    opt, averager, schedule = _build(spec, model)
    driver = None
    if schedule == "cosine":
        driver = Scheduler(opt, lr=S.cosine(1.0, steps))
    elif schedule == "one_cycle":
        driver = Scheduler(opt, lr=S.one_cycle(1.0, steps))
    schedule_free = spec["class"].endswith("ScheduleFree")
    if schedule_free:
        opt.train()  # type: ignore[attr-defined]
    engine = Engine(model, opt, loss_fn=task.loss_fn)
    stream = BatchStream(train)
    model.train()
    diverged, done = False, 0
    for _ in range(steps):
        update = engine.update(stream)
        if update.status == "nonfinite":
            diverged = True
            break
        done += 1
        if driver is not None:
            driver.step()
        if averager is not None:
            averager.step()
    metric = math.nan
    if not diverged:
        eval_model = model
        if schedule_free:
            opt.eval()  # type: ignore[attr-defined]
            if _has_batchnorm(model):
                model.train()
                with torch.no_grad():
                    for batch in itertools.islice(train, BN_RECOMPUTE_BATCHES):
                        engine.loss(batch)
        if averager is not None:
            eval_model = averager.averaged_model
        found = Engine(eval_model, opt, loss_fn=task.loss_fn).evaluate(
            val, task.metric_fn, pooled=True
        )
        metric = found.metric
        diverged = not math.isfinite(found.loss)
    engine.close()
    return {
        "final_metric": metric if math.isfinite(metric) else None,
        "diverged": diverged,
        "steps_done": done,
        "seconds": time.perf_counter() - t0,
    }
