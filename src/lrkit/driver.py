"""The driver: writes schedule values into a PyTorch optimizer's param groups."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from .schedules import Hyper, Policy, Schedule, first_invalid
from .schedules.check import valid_range

__all__ = ["Scheduler"]

ScheduleArg = Schedule | Sequence[Schedule] | None

_BLOCK = 1024
_CHECK_BLOCK = 1 << 16


class _Table:
    """Values of one schedule, evaluated vectorised a block of steps at a time.

    A block ends before the first value that cannot be a hyperparameter (NaN, infinite or
    negative; for momentum also 1 or more), so that step raises ``ValueError`` when it is
    reached, before the value is written. :meth:`check` runs the same test over every step of a
    schedule of known length at once.
    """

    __slots__ = ("lo", "name", "ratio", "schedule", "upper", "values")

    def __init__(self, schedule: Schedule, ratio: float = 1.0, name: str = "lr") -> None:
        self.schedule = schedule
        self.ratio = ratio
        self.name = name
        self.upper = 1.0 if name == "momentum" else None
        self.lo = -1
        self.values: list[float] = []

    def _invalid(self, value: float, step: int) -> ValueError:
        return ValueError(
            f"the {self.name} schedule {self.schedule!r} gives {value} at step {step}; "
            f"{self.name} must be {valid_range(self.upper)}. Fix the schedule (for a custom "
            "function, check it over every step it will be asked for)"
        )

    def at(self, t: int) -> float:
        i = t - self.lo
        if self.lo < 0 or not 0 <= i < len(self.values):
            end = getattr(self.schedule, "steps", None)  # held past its end: no longer block
            stop = t + _BLOCK if end is None or t > end else min(t + _BLOCK, int(end) + 1)
            values = [v * self.ratio for v in self.schedule.table(t, stop)]
            k = first_invalid(values, self.upper)
            if k == 0:
                raise self._invalid(values[0], t)
            if k is not None:
                values = values[:k]
            self.lo = t
            self.values = values
            i = 0
        return self.values[i]

    def check(self) -> None:
        """Raise the ``ValueError`` :meth:`at` would raise at the first invalid step, now, when
        the schedule has a known length: every step up to its end, where it holds its final
        value, is checked (vectorised). A schedule that never ends is checked as it runs."""
        steps = getattr(self.schedule, "steps", None)
        if steps is None:
            return
        for lo in range(0, int(steps) + 1, _CHECK_BLOCK):
            t = np.arange(lo, min(int(steps) + 1, lo + _CHECK_BLOCK), dtype=np.float64)
            values = np.asarray(self.schedule(t), dtype=np.float64) * self.ratio
            k = first_invalid(values, self.upper)
            if k is not None:
                raise self._invalid(float(values[k]), lo + k)

    def clear(self) -> None:
        self.lo = -1
        self.values = []


class _Track:
    """One scheduled hyperparameter (lr, momentum or weight_decay) across the param groups.

    ``top`` is the largest value over the groups the driver was built with (the denominator of
    the ratios) when one schedule drives every group, and ``None`` for one schedule per group.
    """

    __slots__ = ("key", "name", "ratios", "schedules", "slot", "top")

    def __init__(
        self,
        name: str,
        key: str,
        slot: int | None,
        schedules: list[Schedule],
        ratios: list[float],
        top: float | None,
    ) -> None:
        self.name = name
        self.key = key
        self.slot = slot
        self.schedules = schedules
        self.ratios = ratios
        self.top = top

    def adopt(self, group: dict[str, Any], index: int, optimizer: str) -> None:
        """Schedule a param group added after the driver was built (``add_param_group``)."""
        if self.top is None:
            raise ValueError(
                f"param group {index} was added to the {optimizer} after the lrkit.Scheduler "
                f"was built with one {self.name} schedule per group, so no schedule drives it. "
                "Build the Scheduler after adding every group, or give a single schedule, "
                "which scales each group (also groups added later) by its ratio"
            )
        value = read_value(group, self.key, self.slot)
        self.schedules.append(self.schedules[0])
        self.ratios.append(value / self.top if self.top > 0 else 1.0)


def _describe(schedule: Schedule) -> dict[str, Any]:
    try:
        return schedule.to_dict()
    except TypeError:
        return {"type": "unserialisable", "repr": repr(schedule)}


def group_ratios(values: Sequence[float]) -> list[float]:
    """Each param group's value over the largest (all 1 when the largest is not positive): how
    one schedule drives several groups while keeping their ratios."""
    top = max(values)
    return [v / top if top > 0 else 1.0 for v in values]


def read_value(group: dict[str, Any], key: str, slot: int | None = None) -> float:
    """A param group's hyperparameter (``slot`` indexes pairs such as ``betas``) as a float,
    whether it is stored as a number or a tensor."""
    v = group[key] if slot is None else group[key][slot]
    return float(v.item() if isinstance(v, torch.Tensor) else v)


def write_value(group: dict[str, Any], key: str, slot: int | None, value: float) -> None:
    """Set a param group's hyperparameter, filling a tensor in place when it is one."""
    if slot is None:
        old = group[key]
        if isinstance(old, torch.Tensor):
            old.fill_(value)
        else:
            group[key] = value
    else:
        pair = group[key]
        if isinstance(pair[slot], torch.Tensor):
            pair[slot].fill_(value)
        elif isinstance(pair, tuple):
            group[key] = (value, *pair[1:])
        else:
            pair[slot] = value


class Scheduler(LRScheduler):
    """Drive an optimizer's learning rate, momentum and weight decay with lrkit schedules.

    ``Scheduler(optimizer, lr=schedule)`` writes ``schedule(0)`` into the param groups at once and
    ``schedule(t)`` after the ``t``-th call of :meth:`step` (call it after each
    ``optimizer.step()``). ``lr`` may also be a :class:`~lrkit.schedules.Hyper` such as
    ``one_cycle(...)``, whose momentum schedule is then used too.

    Several param groups keep their ratios (discriminative learning rates): with one schedule, a
    group whose initial value is ``v_g`` gets ``schedule(t) · v_g / max_g v_g``, so the group with
    the largest value follows the schedule exactly and a group with weight decay 0 keeps 0. Give a
    list with one schedule per group to set each group yourself.

    Values go into the optimizer's param groups as they are at each step, so the driver keeps
    scheduling after ``optimizer.load_state_dict`` (which replaces the group dicts; resume code
    and Hugging Face ``accelerate`` call it after the scheduler is built). A group added later
    with ``add_param_group`` (progressive unfreezing) is scheduled from the next step with the
    ratio of its own value to ``max_g v_g`` of the groups the driver was built with; with one
    schedule per group, a group added later raises ``ValueError``, since no schedule is known
    for it.

    Momentum is written to ``momentum`` for SGD-like optimizers and to ``betas[0]`` for Adam-like
    ones. Scheduling momentum on an optimizer with neither, or on SGD built with ``momentum=0``,
    raises instead of switching momentum on silently.

    It is a ``torch.optim.lr_scheduler.LRScheduler``, so it works wherever a PyTorch scheduler
    does, but unlike PyTorch's schedulers it writes no extra keys into the param groups, does not
    wrap ``optimizer.step``, holds the final values after a schedule ends instead of raising, and
    its ``state_dict`` holds the step and the schedules' configuration (never code):
    ``load_state_dict`` on a freshly built driver continues exactly.

    With ``scaler`` (a ``torch.amp.GradScaler``), :meth:`step` advances only if the optimizer
    really stepped since the previous call, so a step the scaler skipped on inf/NaN gradients does
    not move the schedule. Calling :meth:`step` every micro-batch under gradient accumulation is
    then also safe.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        lr: Policy | Sequence[Schedule] | None = None,
        momentum: ScheduleArg = None,
        weight_decay: ScheduleArg = None,
        *,
        scaler: torch.amp.GradScaler | None = None,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        if isinstance(lr, Hyper):
            if momentum is not None and lr.momentum is not None:
                raise ValueError(
                    "momentum is given twice: by lr (a Hyper with a momentum schedule) and by "
                    "momentum=; build the Hyper with momentum=None or drop momentum="
                )
            momentum = lr.momentum if momentum is None else momentum
            lr = lr.lr
        if lr is None and momentum is None and weight_decay is None:
            raise ValueError("give at least one schedule: lr=, momentum= or weight_decay=")
        self.optimizer = optimizer
        groups = optimizer.param_groups
        self._tracks: list[_Track] = []
        for name, arg in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if arg is None:
                continue
            key, slot = self._locate(name)
            scheds = self._per_group(name, arg, len(groups))
            bases = [read_value(g, key, slot) for g in groups]
            if isinstance(arg, Schedule):
                ratios, top = group_ratios(bases), max(bases)
            else:
                ratios, top = [1.0] * len(groups), None
            self._tracks.append(_Track(name, key, slot, scheds, ratios, top))
        self.base_lrs = [read_value(g, "lr", None) for g in groups]
        self._build_writers()
        self._step = 0
        self.last_epoch = 0
        self._step_count = 1
        self._get_lr_called_within_step = False
        for table in self._tables:  # a value that cannot be written raises before any is
            table.check()
            table.at(0)
        self._scaler = scaler
        self._updates = [0]
        self._seen_updates = 0
        self._hook = None
        if scaler is not None:
            counter = self._updates

            def _count(opt: Optimizer, args: Any, kwargs: Any) -> None:
                counter[0] += 1

            self._hook = optimizer.register_step_post_hook(_count)
            weakref.finalize(self, self._hook.remove)
        self._apply()

    def _build_writers(self) -> None:
        """Bind to the optimizer's current param groups: one table per (schedule, ratio), values
        pre-scaled; a fast path for plain floats.

        Values are written by group index into the optimizer's ``param_groups`` as it is at each
        step, and the binding is redone whenever that list is replaced
        (``optimizer.load_state_dict``) or changes length (``add_param_group``), so the values
        always go into the groups the optimizer steps with.
        """
        groups = self.optimizer.param_groups
        for tr in self._tracks:
            if len(groups) < len(tr.schedules):
                raise ValueError(
                    f"the {type(self.optimizer).__name__} now has {len(groups)} param groups, "
                    f"fewer than the {len(tr.schedules)} this lrkit.Scheduler drives; load a "
                    "checkpoint with the same param groups, or build a new Scheduler"
                )
            for index in range(len(tr.schedules), len(groups)):
                tr.adopt(groups[index], index, type(self.optimizer).__name__)
        for index in range(len(self.base_lrs), len(groups)):
            self.base_lrs.append(read_value(groups[index], "lr", None))
        tables: dict[tuple[str, int, float], _Table] = {}
        self._fast: list[tuple[int, str, _Table]] = []
        self._slow: list[tuple[int, str, int | None, _Table]] = []
        for tr in self._tracks:
            for index, (group, sched, ratio) in enumerate(
                zip(groups, tr.schedules, tr.ratios, strict=True)
            ):
                table = tables.setdefault(
                    (tr.name, id(sched), ratio), _Table(sched, ratio, tr.name)
                )
                if tr.slot is None and not isinstance(group[tr.key], torch.Tensor):
                    self._fast.append((index, tr.key, table))
                else:
                    self._slow.append((index, tr.key, tr.slot, table))
        self._tables = list(tables.values())
        self._roots = list({id(t.schedule): t.schedule for t in self._tables}.values())
        self._bound = groups
        self._bound_count = len(groups)

    # -- set-up helpers ---------------------------------------------------------------------------
    def _locate(self, name: str) -> tuple[str, int | None]:
        group = self.optimizer.param_groups[0]
        opt = type(self.optimizer).__name__
        if name == "lr":
            return "lr", None
        if name == "weight_decay":
            if "weight_decay" not in group:
                raise ValueError(f"{opt} has no weight_decay to schedule; pass weight_decay=None")
            return "weight_decay", None
        if "momentum" in group:
            # The defaults record how the optimizer was built; the groups may hold a checkpoint's
            # values (a momentum schedule that had reached 0), which must not block a resume.
            built_without = float(self.optimizer.defaults.get("momentum", 0.0)) == 0.0
            if built_without and all(
                float(g["momentum"]) == 0.0 for g in self.optimizer.param_groups
            ):
                raise ValueError(
                    f"{opt} was built with momentum=0, and scheduling momentum would switch it on. "
                    f"Build it with the momentum you want (for example {opt}(params, lr=..., "
                    "momentum=0.9)), or pass momentum=None (for one_cycle: one_cycle(..., "
                    "momentum=None))"
                )
            return "momentum", None
        if "betas" in group:
            return "betas", 0
        raise ValueError(
            f"{opt} has neither momentum nor betas, so momentum cannot be scheduled; pass "
            "momentum=None (for one_cycle: one_cycle(..., momentum=None))"
        )

    @staticmethod
    def _per_group(name: str, arg: Schedule | Sequence[Schedule], n: int) -> list[Schedule]:
        if isinstance(arg, Schedule):
            return [arg] * n
        if isinstance(arg, Hyper):
            raise TypeError(f"{name}= takes a schedule; a Hyper (one_cycle(...)) goes in lr=")
        if isinstance(arg, str) or not isinstance(arg, Sequence):
            raise TypeError(
                f"{name}= takes an lrkit schedule (for example lrkit.schedules.constant(0.1)) or "
                f"a list with one schedule per param group, got {type(arg).__name__} {arg!r}"
            )
        items = list(arg)
        if len(items) != n:
            raise ValueError(
                f"{name} has {len(items)} schedules but the optimizer has {n} param groups; give "
                "one schedule per group, or a single schedule to scale every group by its ratio"
            )
        for i, s in enumerate(items):
            if not isinstance(s, Schedule):
                raise TypeError(
                    f"{name}[{i}] must be an lrkit schedule, got {type(s).__name__}; wrap a "
                    "function with lrkit.schedules.custom(fn)"
                )
        return items

    # -- stepping ---------------------------------------------------------------------------------
    def _sync(self) -> list[dict[str, Any]]:
        """The optimizer's current param groups, with the writers bound to them."""
        groups = self.optimizer.param_groups
        if groups is not self._bound or len(groups) != self._bound_count:
            self._build_writers()
        return groups

    def _apply(self) -> None:
        groups = self._sync()
        t = self._step
        for index, key, table in self._fast:
            i = t - table.lo
            values = table.values
            groups[index][key] = values[i] if 0 <= i < len(values) else table.at(t)
        for index, key, slot, table in self._slow:
            write_value(groups[index], key, slot, table.at(t))
        self._last_lr = [g["lr"] for g in groups]

    def step(self, epoch: None = None, *, metric: float | None = None) -> None:  # type: ignore[override]
        """Advance one optimizer update and write the new values.

        ``metric`` (optional) is also reported to metric-driven pieces, as :meth:`observe` does.
        """
        if epoch is not None:
            raise TypeError(
                "Scheduler.step() takes no epoch: it advances one optimizer update. Write "
                "schedules in epochs with lrkit.schedules.per_epoch(schedule, steps_per_epoch)"
            )
        advance = True
        if self._hook is not None:
            advance = self._updates[0] != self._seen_updates
            self._seen_updates = self._updates[0]
        if advance:
            self._step += 1
            try:
                self._apply()
            except ValueError:
                self._step -= 1  # a value that cannot be written: leave everything as it was
                self._apply()
                raise
            self.last_epoch = self._step
            self._step_count += 1
        if metric is not None:
            self.observe(metric)

    def observe(self, metric: float) -> None:
        """Report a metric (for example the validation loss) to metric-driven pieces such as
        :func:`~lrkit.schedules.reduce_on_plateau`, at the current step."""
        changed = False
        for root in self._roots:
            changed |= root.observe(float(metric), self._step)
        if changed:
            for table in self._tables:
                table.clear()
            self._apply()

    # -- inspection -------------------------------------------------------------------------------
    @property
    def current_step(self) -> int:
        """The step whose values are in the optimizer now (0 before the first :meth:`step`)."""
        return self._step

    def get_lr(self) -> list[float | torch.Tensor]:
        """The learning rate of each param group at the current step."""
        return [read_value(g, "lr", None) for g in self.optimizer.param_groups]

    def values(self) -> dict[str, list[float]]:
        """Current value of each scheduled hyperparameter, per param group."""
        return {
            tr.name: [read_value(g, tr.key, tr.slot) for g in self.optimizer.param_groups]
            for tr in self._tracks
        }

    @property
    def schedules(self) -> dict[str, list[Schedule]]:
        """The schedule driving each hyperparameter, per param group."""
        self._sync()
        return {tr.name: list(tr.schedules) for tr in self._tracks}

    # -- checkpoints ------------------------------------------------------------------------------
    def _stateful(self) -> list[Schedule]:
        out: list[Schedule] = []
        for root in self._roots:
            out.extend(root.stateful())
        return out

    def state_dict(self) -> dict[str, Any]:
        """Step, schedule configuration, group ratios (and the value they are relative to) and
        metric-driven state, in plain types."""
        self._sync()
        return {
            "step": self._step,
            "schedules": {tr.name: [_describe(s) for s in tr.schedules] for tr in self._tracks},
            "ratios": {tr.name: list(tr.ratios) for tr in self._tracks},
            "tops": {tr.name: tr.top for tr in self._tracks},
            "stateful": [s.state_dict() for s in self._stateful()],  # type: ignore[attr-defined]
        }

    def load_state_dict(self, state_dict: dict[str, Any], *, strict: bool = True) -> None:
        """Continue from :meth:`state_dict` output, on a driver built with the same schedules.

        With ``strict`` (default) a checkpoint made with other schedules is refused with a
        message naming the difference, rather than silently mixing two runs.
        """
        if not isinstance(state_dict, dict) or "step" not in state_dict:
            raise ValueError("expected the dict returned by lrkit.Scheduler.state_dict()")
        self._sync()
        saved = state_dict.get("schedules", {})
        mine = {tr.name: [_describe(s) for s in tr.schedules] for tr in self._tracks}
        if strict and saved != mine:
            raise ValueError(
                "the checkpoint was made with other schedules than this Scheduler has.\n"
                f"  checkpoint: {saved}\n  this run:   {mine}\n"
                "Build the Scheduler with the same schedules, or pass strict=False to keep "
                "the new schedules and restore only the step."
            )
        for tr in self._tracks:
            ratios = state_dict.get("ratios", {}).get(tr.name)
            if ratios is not None and len(ratios) == len(tr.ratios):
                tr.ratios = [float(r) for r in ratios]
            top = state_dict.get("tops", {}).get(tr.name)
            if top is not None and tr.top is not None:
                tr.top = float(top)
        self._build_writers()
        states = state_dict.get("stateful", [])
        pieces = self._stateful()
        if len(states) == len(pieces):
            for piece, st in zip(pieces, states, strict=True):
                piece.load_state_dict(st)  # type: ignore[attr-defined]
        elif strict:
            raise ValueError(
                f"the checkpoint holds {len(states)} metric-driven schedule states but this "
                f"Scheduler has {len(pieces)}"
            )
        self._step = int(state_dict["step"])
        self.last_epoch = self._step
        self._seen_updates = self._updates[0]
        self._apply()

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{tr.name}={tr.schedules[0]!r}"
            if all(s is tr.schedules[0] for s in tr.schedules)
            else f"{tr.name}={tr.schedules!r}"
            for tr in self._tracks
        )
        return f"Scheduler({type(self.optimizer).__name__}, {parts}, step={self._step})"
