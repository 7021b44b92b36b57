"""Checks of arguments shared by the range test, the search, the batch-size search and the
trainer: counts, and a model with the optimizer that trains it."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["check_model_optimizer", "positive_int", "positive_int_or_none"]


def positive_int(name: str, value: object) -> int:
    """``value`` if it is an int >= 1 (not a bool); ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def positive_int_or_none(name: str, value: object) -> int | None:
    """``None``, or ``value`` checked by :func:`positive_int`."""
    return None if value is None else positive_int(name, value)


def check_model_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """``TypeError`` unless ``model`` is a module and ``optimizer`` an optimizer; ``ValueError``
    when either has no parameters, when the optimizer holds parameters that are not the
    model's, or when none of its parameters requires grad."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    opt_params = [p for g in optimizer.param_groups for p in g["params"]]
    if not opt_params:
        raise ValueError("the optimizer has no parameters")
    model_ids = {id(p) for p in model.parameters()}
    if not model_ids:
        raise ValueError("the model has no parameters")
    stray = sum(1 for p in opt_params if id(p) not in model_ids)
    if stray:
        raise ValueError(
            f"{stray} of the optimizer's parameters are not parameters of the model; build the "
            "optimizer from model.parameters()"
        )
    if not any(p.requires_grad for p in opt_params):
        raise ValueError("none of the optimizer's parameters requires grad")
