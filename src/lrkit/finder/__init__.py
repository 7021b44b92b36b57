"""The LR range test, suggestion rules, Smith's bounds, and weight-decay/momentum tests.

Typical use::

    result = range_test(model, optimizer, train_loader, nn.CrossEntropyLoss())
    result.suggestion                      # lrkit's default rule (None: no clear descent)
    result.suggest("minimum")              # or "steepest", "valley"; with an uncertainty band
    base, peak = result.bounds("cyclic")   # Smith's (base, peak)
    schedule = result.one_cycle(total_steps=10_000)
    result.plot("range_test.png")

The model, optimizer, GradScaler and global RNGs are exactly as before afterwards.
"""

from lrkit.engine import RngState, TrainingSnapshot
from lrkit.finder.batch_size import BatchAdvice, BatchSizeResult, largest_batch, parse_memory
from lrkit.finder.hyper import HyperTestResult, momentum_test, weight_decay_test
from lrkit.finder.range_test import lr_sequence, range_test, sweep_schedule
from lrkit.finder.result import RangeTestResult, StopReason
from lrkit.finder.search import tune_lr
from lrkit.finder.smith import lr_bounds
from lrkit.finder.suggest import (
    METHODS,
    CurveAnalysis,
    Suggestion,
    analyze_curve,
    ema,
    suggest_lr,
    suggest_lrkit,
    suggest_minimum,
    suggest_steepest,
    suggest_valley,
    zero_lag_smooth,
)
from lrkit.finder.tune_result import Probe, TuneInterrupted, TuneResult

__all__ = [
    "METHODS",
    "BatchAdvice",
    "BatchSizeResult",
    "CurveAnalysis",
    "HyperTestResult",
    "Probe",
    "RangeTestResult",
    "RngState",
    "StopReason",
    "Suggestion",
    "TrainingSnapshot",
    "TuneInterrupted",
    "TuneResult",
    "analyze_curve",
    "ema",
    "largest_batch",
    "lr_bounds",
    "lr_sequence",
    "momentum_test",
    "parse_memory",
    "range_test",
    "suggest_lr",
    "suggest_lrkit",
    "suggest_minimum",
    "suggest_steepest",
    "suggest_valley",
    "sweep_schedule",
    "tune_lr",
    "weight_decay_test",
    "zero_lag_smooth",
]
