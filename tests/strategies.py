"""Hypothesis strategies for lrkit schedules, shared by the schedule, differential and driver tests.

Values are drawn positive (only a few curves, such as a wsd decay, may reach 0), so relative
tolerances stay meaningful; exponential warmups are only wrapped around schedules that start above
0.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from lrkit import schedules as S

lengths = st.integers(min_value=1, max_value=30)
"""Schedule lengths in optimizer steps."""

values = st.floats(min_value=1e-3, max_value=10.0, allow_nan=False, allow_infinity=False)
"""Learning-rate-like values (positive, finite)."""

momenta = st.floats(min_value=0.0, max_value=0.999, allow_nan=False)
decays = st.floats(min_value=0.05, max_value=1.0, allow_nan=False)
factors = st.floats(min_value=0.1, max_value=4.0, allow_nan=False)

MODES = ("triangular", "triangular2", "exp_range")
WINDOWS = ("triangular", "welch", "hann")


def inverse_cycle(x: float) -> float:
    """A custom CLR scale function (module level, so it pickles)."""
    return 1.0 / (1.0 + 0.5 * x)


def slow_decay(x: float) -> float:
    """Another custom CLR scale function, in [0, 1] for x >= 0."""
    return 0.999**x


def half_sine(step: float) -> float:
    """A function for :func:`lrkit.schedules.custom` (module level, so it pickles)."""
    return 0.5 + 0.25 * (1.0 + (step % 7) / 7.0)


SCALE_FNS = (inverse_cycle, slow_decay)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@st.composite
def ordered_pair(draw: st.DrawFn, low: st.SearchStrategy[float] = values) -> tuple[float, float]:
    """``(a, b)`` with ``a <= b``."""
    a, b = draw(low), draw(low)
    return (a, b) if a <= b else (b, a)


@st.composite
def cyclic_kwargs(draw: st.DrawFn, *, callables: bool = False) -> dict[str, Any]:
    """Keyword arguments shared by ``cyclic`` and ``cyclic_momentum`` (the wave's geometry).

    With ``callables`` a custom ``scale_fn`` with either ``scale_mode`` may be drawn. ``gamma`` is
    drawn in (0, 1] so waves never exceed their peak.
    """
    kw: dict[str, Any] = {
        "step_size_up": draw(st.integers(1, 12)),
        "step_size_down": draw(maybe(st.integers(1, 12))),
        "mode": draw(st.sampled_from(MODES)),
        "gamma": draw(st.floats(min_value=0.9, max_value=1.0)),
    }
    if callables and draw(st.booleans()):
        kw["scale_fn"] = draw(st.sampled_from(SCALE_FNS))
        kw["scale_mode"] = draw(st.sampled_from(("cycle", "iterations")))
    return kw


@st.composite
def cyclics(draw: st.DrawFn, *, callables: bool = False) -> S.Schedule:
    base, peak = draw(ordered_pair())
    kw = draw(cyclic_kwargs(callables=callables))
    return S.cyclic(
        base,
        peak,
        **kw,
        window=draw(st.sampled_from(WINDOWS)),
        steps=draw(maybe(st.integers(1, 60))),
    )


@st.composite
def cyclic_momenta(draw: st.DrawFn) -> S.Schedule:
    low, high = draw(ordered_pair(momenta))
    return S.cyclic_momentum(
        high,
        low,
        **draw(cyclic_kwargs()),
        window=draw(st.sampled_from(WINDOWS)),
        steps=draw(maybe(st.integers(1, 60))),
    )


@st.composite
def multisteps(draw: st.DrawFn) -> S.Schedule:
    ms = draw(st.lists(st.integers(1, 60), min_size=1, max_size=4, unique=True))
    return S.multistep(draw(values), sorted(ms), draw(decays), draw(maybe(lengths)))


@st.composite
def sgdrs(draw: st.DrawFn) -> S.Schedule:
    end, peak = draw(ordered_pair())
    return S.sgdr(
        peak,
        end,
        draw(st.integers(1, 10)),
        draw(st.integers(1, 3)),
        draw(decays),
        draw(maybe(st.integers(1, 80))),
    )


@st.composite
def one_cycles(draw: st.DrawFn) -> S.Hyper:
    total = draw(st.integers(2, 60))
    pct = draw(st.floats(min_value=0.05, max_value=0.95).filter(lambda p: p * total >= 1))
    three = draw(st.booleans()) and 2 * pct * total - 2 <= total - 1
    peak = draw(values)
    return S.one_cycle(
        peak,
        total,
        start=peak / draw(st.floats(1.0, 100.0)),
        end=draw(maybe(st.floats(1e-6, peak))),
        pct_start=pct,
        anneal=draw(st.sampled_from(("cos", "linear"))),
        three_phase=three,
        momentum=draw(maybe(ordered_pair(momenta).map(lambda p: (p[1], p[0])))),
    )


@st.composite
def wsds(draw: st.DrawFn) -> S.Schedule:
    total = draw(st.integers(2, 60))
    decay = draw(st.integers(1, total))
    warm = draw(st.integers(0, total - decay))
    peak = draw(values)
    return S.wsd(
        peak,
        total,
        warm,
        decay,
        end=draw(st.floats(0.0, peak)),
        decay_shape=draw(st.sampled_from(("linear", "cosine", "1-sqrt"))),
        start=draw(st.floats(0.0, peak)),
    )


def primitives(*, callables: bool = False) -> st.SearchStrategy[S.Schedule]:
    """Every primitive (non-composite, pure) schedule with random arguments.

    With ``callables``, schedules holding Python callables (``custom``, ``scale_fn``) are drawn
    too; those cannot go through ``to_dict`` or ``eval(repr(...))``.
    """
    out = st.one_of(
        st.builds(S.constant, values, maybe(lengths)),
        st.builds(S.linear, values, values, lengths),
        st.builds(S.geometric, values, values, lengths),
        st.builds(S.exponential, values, st.floats(0.8, 1.05), maybe(lengths)),
        st.builds(S.step, values, st.integers(1, 10), decays, maybe(lengths)),
        multisteps(),
        st.builds(S.polynomial, values, values, lengths, st.floats(0.2, 4.0)),
        st.builds(S.cosine, values, lengths, values),
        cyclics(callables=callables),
        cyclic_momenta(),
        sgdrs(),
        one_cycles().map(lambda h: h.lr),
        one_cycles().map(lambda h: h.momentum).filter(lambda m: m is not None),
        wsds(),
    )
    if callables:
        out = out | st.builds(S.custom, st.just(half_sine), maybe(lengths))
    return out


def _finite(strategy: st.SearchStrategy[S.Schedule]) -> st.SearchStrategy[S.Schedule]:
    """Give endless schedules a length with ``take``."""
    return st.tuples(strategy, lengths).map(lambda p: p[0] if p[0].steps else S.take(*p))


def _positive_start(s: S.Schedule) -> bool:
    return s(0) > 0


def _compositions(children: st.SearchStrategy[S.Schedule]) -> st.SearchStrategy[S.Schedule]:
    finite = _finite(children)
    return st.one_of(
        st.builds(
            lambda head, last: S.sequence(*head, last),
            st.lists(finite | st.tuples(children, lengths), max_size=2),
            children,
        ),
        st.builds(
            S.warmup,
            children.filter(_positive_start),
            lengths,
            values,
            st.sampled_from(("linear", "exponential")),
        ),
        st.builds(S.repeat, finite, maybe(st.integers(1, 3))),
        st.builds(S.scale, children, factors),
        st.builds(
            lambda s, lo, hi: S.clamp(s, lo, None if hi is None else lo + hi),
            children,
            values,
            maybe(values),
        ),
        st.builds(S.take, children, lengths),
        st.builds(lambda a, b: S.product(a, b), children, children),
        st.builds(S.per_epoch, children, st.integers(1, 4)),
    )


def schedules(*, callables: bool = False, max_leaves: int = 4) -> st.SearchStrategy[S.Schedule]:
    """Arbitrary pure schedules: primitives and nested compositions of them."""
    return st.recursive(primitives(callables=callables), _compositions, max_leaves=max_leaves)


def finite_schedules(**kwargs: Any) -> st.SearchStrategy[S.Schedule]:
    """Arbitrary schedules with a length (``steps`` is not None)."""
    return _finite(schedules(**kwargs))


def plateaus() -> st.SearchStrategy[S.Schedule]:
    """A fresh ``reduce_on_plateau`` with random rules."""
    return st.builds(
        S.reduce_on_plateau,
        values,
        factor=st.floats(0.1, 0.9),
        patience=st.integers(0, 3),
        mode=st.sampled_from(("min", "max")),
        threshold=st.floats(0.0, 0.1),
        threshold_mode=st.sampled_from(("rel", "abs")),
        cooldown=st.integers(0, 2),
        min_value=st.floats(0.0, 1e-3),
    )


def stateful_schedules() -> st.SearchStrategy[S.Schedule]:
    """Schedules that hold a metric-driven ``reduce_on_plateau`` somewhere inside."""
    return st.one_of(
        plateaus(),
        st.builds(lambda w, p: S.sequence(w, p), finite_schedules(max_leaves=2), plateaus()),
        st.builds(S.warmup, plateaus(), lengths),
        st.builds(lambda p, s: S.product(p, s), plateaus(), schedules(max_leaves=2)),
        st.builds(S.per_epoch, plateaus(), st.integers(1, 3)),
        st.builds(S.scale, plateaus(), factors),
    )
