"""Checks of counts shared by the range test, the search and the trainer."""

from __future__ import annotations

__all__ = ["positive_int", "positive_int_or_none"]


def positive_int(name: str, value: object) -> int:
    """``value`` if it is an int >= 1 (not a bool); ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def positive_int_or_none(name: str, value: object) -> int | None:
    """``None``, or ``value`` checked by :func:`positive_int`."""
    return None if value is None else positive_int(name, value)
