"""The schedule protocol shared by every schedule in :mod:`lrkit.schedules`, and the policy
type: what a driver accepts as ``lr``, a schedule or a :class:`Hyper` pair of schedules."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, TypeVar, overload

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
StepLike = int | float | np.integer[Any] | np.floating[Any]

_REGISTRY: dict[str, type[Schedule]] = {}

S = TypeVar("S", bound="Schedule")


def register(cls: type[S]) -> type[S]:
    """Record a schedule class under its public name so :func:`from_dict` can rebuild it."""
    _REGISTRY[cls.name] = cls
    return cls


class Schedule:
    """A pure function of the optimizer step.

    Calling ``s(step)`` with an ``int`` returns a ``float``; calling it with a NumPy array of steps
    returns an array of the same shape with the same values. ``s.steps`` is the schedule's length
    (``None`` when it never ends); past its end a schedule holds its final value. Schedules are
    immutable, hashable where their arguments are, picklable, and ``from_dict(s.to_dict()) == s``.
    Resuming needs nothing but the step.
    """

    name: ClassVar[str] = "schedule"

    # -- evaluation ---------------------------------------------------------------------------
    def _values(self, t: FloatArray) -> FloatArray:
        """Vectorised evaluation on non-negative steps (float64 array, any shape)."""
        raise NotImplementedError

    if TYPE_CHECKING:

        @property
        def steps(self) -> int | None:
            """Length in optimizer steps, or ``None`` if the schedule never ends."""

    @overload
    def __call__(self, step: StepLike) -> float: ...

    @overload
    def __call__(self, step: npt.ArrayLike) -> FloatArray: ...

    def __call__(self, step: StepLike | npt.ArrayLike) -> float | FloatArray:
        scalar = np.ndim(step) == 0
        t = np.asarray(step, dtype=np.float64)
        if not np.all(np.isfinite(t)) or np.any(t < 0):
            raise ValueError(
                f"steps must be finite and >= 0, got {step!r}; schedules count optimizer "
                "updates from 0"
            )
        if scalar:
            # A one-element array, not a 0-d one: NumPy scalars take other code paths (for
            # example for ``**``) that can differ from array evaluation in the last bit.
            return float(self._values(t.reshape(1))[0])
        return np.asarray(self._values(t), dtype=np.float64)

    def table(self, start: int, stop: int) -> list[float]:
        """Values for steps ``start .. stop-1`` as a list of floats (used by the driver)."""
        values = np.asarray(self._values(np.arange(start, stop, dtype=np.float64)), np.float64)
        return [float(v) for v in values.tolist()]

    # -- stateful pieces (metric-driven) ------------------------------------------------------
    def children(self) -> tuple[Schedule, ...]:
        """Schedules this one is built from (empty for a primitive)."""
        return tuple(
            v
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            for v in _flatten(getattr(self, f.name))
            if isinstance(v, Schedule)
        )

    def observe(self, metric: float, step: int) -> bool:
        """Feed a metric seen at ``step`` to the metric-driven pieces, rebasing the step.

        Returns True when some piece changed its values. Pure schedules ignore metrics.
        """
        changed = False
        for child in self.children():
            changed |= child.observe(metric, step)
        return changed

    def stateful(self) -> list[Schedule]:
        """Metric-driven pieces inside this schedule, in a fixed order."""
        out: list[Schedule] = []
        for child in self.children():
            out.extend(child.stateful())
        return out

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description; :func:`from_dict` rebuilds an equal schedule."""
        out: dict[str, Any] = {"type": self.name}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            out[f.name] = _encode(getattr(self, f.name), self)
        return out

    def hyper_repr(self, momentum: Schedule | None) -> str | None:
        """The repr of ``Hyper(lr=self, momentum=momentum)`` when this schedule knows a shorter
        one (the call that builds the pair, as ``one_cycle(...)``); ``None`` otherwise."""
        return None

    def __repr__(self) -> str:
        args = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.repr
            and not (f.default is not dataclasses.MISSING and getattr(self, f.name) == f.default)
        )
        return f"{self.name}({args})"


def _flatten(value: Any) -> Iterator[Any]:
    if isinstance(value, tuple):
        for v in value:
            yield from _flatten(v)
    else:
        yield value


def _encode(value: Any, owner: Schedule) -> Any:
    if isinstance(value, Schedule):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_encode(v, owner) for v in value]
    if callable(value):
        raise TypeError(
            f"{owner.name}(...) holds the Python callable {callable_name(value)}, which cannot be "
            "written to a dict or JSON. Use a built-in option instead (for example mode="
            "'triangular2' or 'exp_range' rather than a scale_fn), or rebuild the schedule in code "
            "and restore only the step."
        )
    return value


def callable_name(fn: Callable[..., Any]) -> str:
    """The qualified name of a Python callable, or its repr (for reprs and messages)."""
    return getattr(fn, "__qualname__", None) or repr(fn)


def _decode(value: Any) -> Any:
    if isinstance(value, Mapping) and "type" in value:
        return from_dict(value)
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value


def from_dict(d: Mapping[str, Any]) -> Policy:
    """Rebuild a schedule from :meth:`Schedule.to_dict` output, or a
    :class:`~lrkit.schedules.Hyper` (such as ``one_cycle(...)``) from ``Hyper.to_dict()``
    output: ``from_dict(s.to_dict()) == s`` for both."""
    if not isinstance(d, Mapping) or "type" not in d:
        raise ValueError(f"expected a dict with a 'type' key from Schedule.to_dict(), got {d!r}")
    kind = d["type"]
    if kind == "hyper":
        return Hyper.from_dict(d)
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise ValueError(f"unknown schedule type {kind!r}; known types: {sorted(_REGISTRY)}")
    kwargs = {k: _decode(v) for k, v in d.items() if k != "type"}
    return cls(**kwargs)


# -- the policy type -------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class Hyper:
    """Schedules for several hyperparameters that belong together, such as one-cycle's LR and
    momentum. :class:`lrkit.Scheduler` accepts it directly as ``lr=``.

    ``lrkit.schedules.from_dict(h.to_dict()) == h``; the repr of a Hyper made by
    :func:`~lrkit.schedules.one_cycle` reads like that call,
    ``one_cycle(peak=0.8, total_steps=1000)``.
    """

    lr: Schedule
    momentum: Schedule | None = None

    @property
    def steps(self) -> int | None:
        """Length of the LR schedule."""
        return self.lr.steps

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description; :meth:`from_dict` and :func:`lrkit.schedules.from_dict`
        rebuild it."""
        return {
            "type": "hyper",
            "lr": self.lr.to_dict(),
            "momentum": None if self.momentum is None else self.momentum.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Hyper:
        """Rebuild from :meth:`to_dict` output (also read without its ``"type"`` key, as
        written by earlier versions)."""
        kind = d.get("type", "hyper")
        if kind != "hyper":
            raise ValueError(f"expected a Hyper's dict (type 'hyper'), got type {kind!r}")
        lr = from_dict(d["lr"])
        m = d.get("momentum")
        momentum = None if m is None else from_dict(m)
        if not isinstance(lr, Schedule) or not (momentum is None or isinstance(momentum, Schedule)):
            raise ValueError("a Hyper's lr and momentum must be schedules, not Hypers")
        return cls(lr=lr, momentum=momentum)

    def __repr__(self) -> str:
        lr, mom = self.lr, self.momentum
        short = lr.hyper_repr(mom) if isinstance(lr, Schedule) else None
        if short is not None:
            return short
        if mom is None:
            return f"Hyper(lr={lr!r})"
        return f"Hyper(lr={lr!r}, momentum={mom!r})"


Policy: TypeAlias = Schedule | Hyper
"""What a driver accepts as ``lr``: a schedule, or a :class:`Hyper` pair of lr and momentum
schedules."""


def as_hyper(policy: Policy) -> Hyper:
    """``policy`` as a :class:`Hyper`: a Hyper as it is, a schedule as ``Hyper(lr=schedule)``
    (no momentum schedule)."""
    return policy if isinstance(policy, Hyper) else Hyper(lr=policy)


# -- validation helpers ----------------------------------------------------------------------------
def check_finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_positive(name: str, value: float) -> float:
    v = check_finite(name, value)
    if v <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return v


def check_non_negative(name: str, value: float) -> float:
    v = check_finite(name, value)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def check_length(name: str, value: int | None, *, allow_none: bool = False) -> int | None:
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{name} is required: give a positive number of optimizer steps")
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be a positive int (optimizer steps), got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive number of optimizer steps, got {value}")
    return int(value)


def check_schedule(name: str, value: Any) -> Schedule:
    if not isinstance(value, Schedule):
        raise TypeError(
            f"{name} must be an lrkit schedule (for example lrkit.schedules.cosine(...)), got "
            f"{type(value).__name__}; wrap a plain function with lrkit.schedules.custom(fn)"
        )
    return value


def setattr_frozen(obj: object, name: str, value: Any) -> None:
    """Normalise a field of a frozen dataclass in ``__post_init__``."""
    object.__setattr__(obj, name, value)


def check_steps(name: str, value: int) -> int:
    """A required positive length in optimizer steps."""
    out = check_length(name, value)
    if out is None:  # pragma: no cover - check_length raises for None
        raise ValueError(f"{name} is required")
    return out


def check_count(name: str, value: int, what: str = "optimizer steps") -> int:
    """A whole number >= 0 (NumPy integers accepted)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int >= 0 ({what}), got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 ({what}), got {value}")
    return int(value)
