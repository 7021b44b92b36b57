"""Experiments: recipes from the literature, sweeps over seeds, a durable results store, and an
HTML report."""

from .demo import run_demo
from .recipes import (
    RECIPES,
    Recipe,
    RecipeRun,
    RunInterrupted,
    compare,
    get_recipe,
    run_recipe,
    steps_to,
)
from .report import write_report
from .store import RunDir, TrialRecord
from .summary import Arm, group_arms, mean_std
from .sweep import Resources, Trial, run_trials
from .trial import run_trial

__all__ = [
    "RECIPES",
    "Arm",
    "Recipe",
    "RecipeRun",
    "Resources",
    "RunDir",
    "RunInterrupted",
    "Trial",
    "TrialRecord",
    "compare",
    "get_recipe",
    "group_arms",
    "mean_std",
    "run_demo",
    "run_recipe",
    "run_trial",
    "run_trials",
    "steps_to",
    "write_report",
]
