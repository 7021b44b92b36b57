"""Keras callbacks that write lrkit schedules into the optimizer at every batch."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import keras

from lrkit.schedules import Policy, Schedule, as_hyper, cyclic, one_cycle
from lrkit.schedules.cyclic import Mode, ScaleMode
from lrkit.schedules.onecycle import Anneal

__all__ = ["CyclicLR", "OneCycle", "ScheduleCallback"]


def set_learning_rate(optimizer: Any, value: float, who: str) -> None:
    """``optimizer.learning_rate = value``, with a clear error for an optimizer whose learning
    rate is a ``LearningRateSchedule`` or a callable (Keras cannot assign those)."""
    try:
        optimizer.learning_rate = value
    except (TypeError, AttributeError) as err:
        raise TypeError(
            f"{who} sets the learning rate of the optimizer {optimizer.name!r} at every batch, "
            "but it was built with a learning-rate schedule, whose value Keras cannot set. "
            "Build the optimizer with a float learning rate, for example "
            "keras.optimizers.Adam(learning_rate=1e-3), and let the lrkit schedule drive it"
        ) from err


def read_learning_rate(optimizer: Any) -> float:
    """The value of the optimizer's learning-rate variable, as a Python float."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def momentum_attribute(optimizer: Any, who: str) -> tuple[Any, str]:
    """``(owner, name)`` of the attribute that plays the part of momentum: ``beta_1`` for
    Adam-like optimizers (Adam, AdamW, Adamax, Nadam, Lion, ...), else ``momentum`` (SGD,
    RMSprop). A ``LossScaleOptimizer`` is looked through to the optimizer it wraps."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    kind = type(inner).__name__
    if hasattr(inner, "beta_1"):
        return inner, "beta_1"
    if hasattr(inner, "momentum"):
        if not inner.momentum:
            raise ValueError(
                f"{who} cycles momentum, but the {kind} optimizer was built with momentum=0, so "
                "it keeps no velocity and changing its momentum later has no effect. Build it "
                f"with momentum > 0 (for example keras.optimizers.{kind}(learning_rate=0.01, "
                "momentum=0.9)), or pass momentum=None to schedule the learning rate alone"
            )
        return inner, "momentum"
    raise ValueError(
        f"{who} cycles momentum, but the {kind} optimizer has neither beta_1 nor momentum; "
        "pass momentum=None to schedule the learning rate alone"
    )


def check_python_step(model: Any, who: str) -> None:
    """Refuse to cycle a Python attribute when the train step is compiled: a traced step
    (``tf.function``, XLA, ``jax.jit``, ``torch.compile``) reads the attribute once, when it is
    traced, and would silently keep that value."""
    backend = keras.config.backend()
    if model.run_eagerly:
        return
    if backend in ("torch", "jax") and not model.jit_compile:
        return
    how = (
        "model.compile(..., jit_compile=False)"
        if backend in ("torch", "jax")
        else "model.compile(..., run_eagerly=True)"
    )
    raise ValueError(
        f"{who} cycles momentum (beta_1 or momentum), a plain Python attribute of the "
        f"optimizer. The compiled train step of this model (backend {backend!r}, "
        f"jit_compile={model.jit_compile}) reads it only when it is traced, so cycling it would "
        f"silently change nothing. Compile with {how}, or pass momentum=None to schedule the "
        "learning rate alone"
    )


def _checked(value: float, what: str, step: int, schedule: Schedule) -> float:
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(
            f"the {what} schedule {schedule!r} gives {value} at step {step}; it must be finite "
            "and >= 0"
        )
    if what == "momentum" and value > 1.0:
        raise ValueError(
            f"the momentum schedule {schedule!r} gives {value} at step {step}; momentum (beta_1) "
            "must lie in [0, 1]"
        )
    return value


class ScheduleCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Drive a Keras optimizer's learning rate, and optionally its momentum, with lrkit
    schedules: batch ``t`` trains with ``schedule(t)`` in ``optimizer.learning_rate`` and
    ``momentum(t)`` in the momentum attribute. As in the original ``CyclicLR`` callback, the
    values for batch ``t + 1`` are written at the end of batch ``t``, so between batches (at
    epoch end, for ``TensorBoard``, ``CSVLogger`` or a checkpoint saved during ``fit``) the
    optimizer holds the values the next batch will use; they are written again before each
    batch, so a value changed in between by another callback does not reach the update.

    ``schedule`` is any :class:`lrkit.schedules.Schedule` (see each schedule's docstring for its
    formula) or a :class:`~lrkit.schedules.Hyper` such as ``one_cycle(...)``, whose momentum
    schedule is then used too. The momentum is ``beta_1`` for Adam-like optimizers (Adam, AdamW,
    Adamax, Nadam, Lion) and ``momentum`` for SGD and RMSprop, which must have been built with a
    momentum above 0. It is a plain attribute that the optimizer's update step reads when it
    runs, so it is cycled only where the train step runs as Python at every batch (the torch
    backend without ``jit_compile``, Keras's default there; JAX with ``jit_compile=False``; any
    backend with ``run_eagerly=True``); elsewhere training refuses to start with a ``ValueError``
    rather than silently keep the first value. The learning rate is a variable and is scheduled
    on every backend.

    The step counter :attr:`step` belongs to the callback: it counts the batches trained with it
    and carries over to the next ``fit`` call, so a second ``fit`` continues the schedule. At
    the first batch of each ``fit`` it moves up to the optimizer's own update count
    (``optimizer.iterations``) when that is ahead: a model restored by
    ``keras.models.load_model`` or by ``keras.callbacks.BackupAndRestore`` continues its schedule
    where it stopped, with a new callback. Set :attr:`step` to resume elsewhere.

    :attr:`history` records, after every batch, the learning rate the batch was trained with
    (``"lr"``, read back from the optimizer, so a float32 value), the momentum when it is
    cycled (``"momentum"``), the step count after the batch (``"iterations"``, from 1) and every
    entry of Keras's batch logs (``"loss"``, metrics: running means over the epoch).

    The optimizer must have been built with a float learning rate: one made with a Keras
    ``LearningRateSchedule`` cannot be set, and training refuses to start with a ``TypeError``.
    """

    def __init__(self, schedule: Policy, momentum: Schedule | None = None) -> None:
        super().__init__()
        pair = as_hyper(schedule)
        if momentum is not None and pair.momentum is not None:
            raise ValueError(
                f"{schedule!r} already schedules the momentum; pass momentum= only with a "
                "learning-rate schedule (or a Hyper without momentum)"
            )
        lr, momentum = pair.lr, momentum if momentum is not None else pair.momentum
        if not isinstance(lr, Schedule):
            raise TypeError(
                "schedule must be an lrkit schedule (for example lrkit.schedules.cosine(...)) or "
                f"a Hyper such as lrkit.schedules.one_cycle(...), got {type(schedule).__name__}"
            )
        if momentum is not None and not isinstance(momentum, Schedule):
            raise TypeError(
                f"momentum must be an lrkit schedule or None, got {type(momentum).__name__}"
            )
        self.schedule: Schedule = lr
        self.momentum: Schedule | None = momentum
        self.step = 0
        self.history: dict[str, list[Any]] = {}
        self._momentum_owner: Any = None
        self._momentum_name = ""
        self._first_batch = False

    @property
    def _who(self) -> str:
        return f"lrkit.keras.{type(self).__name__}"

    def _write(self, step: int) -> None:
        optimizer = self.model.optimizer
        lr = _checked(self.schedule(step), "learning-rate", step, self.schedule)
        set_learning_rate(optimizer, lr, self._who)
        if self.momentum is not None:
            value = _checked(self.momentum(step), "momentum", step, self.momentum)
            setattr(self._momentum_owner, self._momentum_name, value)

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        model = self.model
        if getattr(model, "optimizer", None) is None:
            raise ValueError(f"{self._who} needs a compiled model: call model.compile(...) first")
        if getattr(model, "steps_per_execution", 1) != 1:
            raise ValueError(
                f"{self._who} writes a value before every batch, but steps_per_execution="
                f"{model.steps_per_execution} runs several batches per call; compile with "
                "steps_per_execution=1"
            )
        if self.momentum is not None:
            self._momentum_owner, self._momentum_name = momentum_attribute(
                model.optimizer, self._who
            )
            check_python_step(model, self._who)
        self._first_batch = True
        self._write(self.step)

    def on_train_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self._first_batch:  # after every on_train_begin, BackupAndRestore's restore included
            self._first_batch = False
            done = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            self.step = max(self.step, done)
        self._write(self.step)

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        history = self.history
        history.setdefault("lr", []).append(read_learning_rate(self.model.optimizer))
        if self.momentum is not None:
            value = float(getattr(self._momentum_owner, self._momentum_name))
            history.setdefault("momentum", []).append(value)
        self.step += 1
        history.setdefault("iterations", []).append(self.step)
        for key, value in (logs or {}).items():
            history.setdefault(key, []).append(value)
        self._write(self.step)


def _whole(name: str, value: float) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of batches, got {value!r}")
    if not (math.isfinite(value) and value > 0 and float(value).is_integer()):
        raise ValueError(f"{name} must be a positive whole number of batches, got {value!r}")
    return int(value)


class CyclicLR(ScheduleCallback):
    """Cyclical learning rate (Smith 2015, arXiv 1506.01186) with the signature of the original
    Keras callback: the learning rate moves between ``base_lr`` and ``max_lr`` in half cycles of
    ``step_size`` batches, set before every batch::

        cycle = floor(1 + it / (2 · step_size))
        x     = |it / step_size - 2 · cycle + 1|
        lr    = base_lr + (max_lr - base_lr) · max(0, 1 - x) · scale

    with ``it = clr_iterations``. ``mode`` picks ``scale``: ``"triangular"`` 1,
    ``"triangular2"`` ``1 / 2^(cycle - 1)`` (the amplitude halves every cycle), ``"exp_range"``
    ``gamma^it``. A custom ``scale_fn(x)`` replaces the mode and receives the cycle number
    (``scale_mode="cycle"``) or ``it`` (``"iterations"``); as in the original, ``scale_mode``
    only applies to a custom ``scale_fn``. The values are those of
    ``lrkit.schedules.cyclic(base_lr, max_lr, step_size, mode, gamma, scale_fn)`` (its docstring
    has the full formula), kept in :attr:`schedule`. Smith recommends a ``step_size`` of 2-10
    epochs' batches and stopping at the end of a cycle.

    ``history`` holds ``"lr"``, ``"iterations"`` and the batch logs (see
    :class:`ScheduleCallback`); ``clr_iterations`` is the position in the cycle and carries over
    to the next ``fit`` call, which continues the cycle. As in the original, after each batch
    the optimizer holds the learning rate of the next one, ``schedule(clr_iterations)``.
    ``step_size`` must be a whole number of batches (``2000.`` is fine).
    """

    def __init__(
        self,
        base_lr: float = 0.001,
        max_lr: float = 0.006,
        step_size: float = 2000.0,
        mode: Mode = "triangular",
        gamma: float = 1.0,
        scale_fn: Callable[[float], float] | None = None,
        scale_mode: ScaleMode = "cycle",
    ) -> None:
        schedule = cyclic(
            base_lr,
            max_lr,
            _whole("step_size", step_size),
            mode=mode,
            gamma=gamma,
            scale_fn=scale_fn,
            scale_mode=scale_mode if scale_fn is not None else None,
        )
        super().__init__(schedule)
        self.base_lr = base_lr
        self.max_lr = max_lr
        self.step_size = step_size
        self.mode = mode
        self.gamma = gamma
        self.scale_fn = scale_fn
        self.scale_mode = schedule.scale_mode

    @property
    def clr_iterations(self) -> int:
        """Batches trained so far: the position in the cycle (the same as :attr:`step`)."""
        return self.step

    @clr_iterations.setter
    def clr_iterations(self, value: int) -> None:
        self.step = int(value)


class OneCycle(ScheduleCallback):
    """The one-cycle policy (Smith & Topin 2017, arXiv 1708.07120; Smith 2018, arXiv
    1803.09820) for the learning rate and the momentum, one step per batch.

    The values are those of ``lrkit.schedules.one_cycle(peak, total_steps, start, end,
    pct_start, anneal, three_phase, momentum)``, whose docstring gives the formula: the learning
    rate rises from ``start`` (default ``peak / 25``) to ``peak`` over the first
    ``pct_start · total_steps`` batches and anneals to ``end`` (default ``start / 1e4``) at batch
    ``total_steps - 1``, holding it afterwards; momentum ``(high, low)`` moves the other way,
    ``high → low → high``. The momentum is ``beta_1`` for Adam-like optimizers and ``momentum``
    for SGD and RMSprop (built with momentum > 0), cycled where the train step runs as Python
    (see :class:`ScheduleCallback`); ``momentum=None`` leaves it alone and works everywhere.
    ``total_steps`` counts batches: ``epochs · ceil(samples / batch_size)``.
    """

    def __init__(
        self,
        peak: float,
        total_steps: int,
        start: float | None = None,
        end: float | None = None,
        pct_start: float = 0.3,
        anneal: Anneal = "cos",
        three_phase: bool = False,
        momentum: tuple[float, float] | None = (0.95, 0.85),
    ) -> None:
        super().__init__(
            one_cycle(peak, total_steps, start, end, pct_start, anneal, three_phase, momentum)
        )
