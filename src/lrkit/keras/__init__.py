"""lrkit for Keras 3: callbacks that drive lrkit schedules, and the LR range test on a compiled
model.

Install with ``pip install "lrkit[keras]"`` and pick the backend before Keras is imported
(``KERAS_BACKEND=torch``; lrkit is tested on the torch backend). ``import lrkit`` does not import
Keras; ``import lrkit.keras`` does.

- :class:`CyclicLR` is the familiar cyclical-learning-rate callback (Smith 2015, arXiv
  1506.01186) with its original signature, ``history`` and ``clr_iterations``.
- :class:`OneCycle` is the one-cycle policy with cyclical momentum (Smith & Topin 2017, arXiv
  1708.07120; Smith 2018, arXiv 1803.09820).
- :class:`ScheduleCallback` drives the learning rate (and optionally the momentum) with any lrkit
  schedule.
- :func:`range_test` runs the LR range test on a compiled model and returns the same
  :class:`~lrkit.RangeTestResult` (suggestion, bounds, plot) as :func:`lrkit.range_test`,
  restoring the model's and the optimizer's variables afterwards.

Learning rates are written into the optimizer's learning-rate variable, which every backend
reads at each step. Momentum (``beta_1`` of Adam-like optimizers, ``momentum`` of SGD and
RMSprop) is a plain Python attribute that the update step reads when it runs: the callbacks
cycle it where the train step runs as Python at every batch (the torch backend, Keras's default
there; JAX with ``jit_compile=False``; any backend with ``run_eagerly=True``) and refuse to start
where a compiled step would have baked its first value in (TensorFlow's ``tf.function``, XLA,
``torch.compile``).
"""

from __future__ import annotations

from lrkit._extras import require

try:
    _keras = require("keras", "keras", "lrkit.keras")
except ModuleNotFoundError as exc:
    if exc.name not in ("tensorflow", "jax"):
        raise
    raise ImportError(
        f"Keras tried to load its {exc.name} backend, which is not installed. lrkit.keras is "
        "tested on the torch backend: set KERAS_BACKEND=torch before Keras is first imported"
    ) from exc

if int(str(getattr(_keras, "__version__", "0")).split(".")[0] or 0) < 3:
    raise ImportError(
        f"lrkit.keras needs Keras 3, found Keras {getattr(_keras, '__version__', '?')}: "
        'pip install "lrkit[keras]"'
    )

from lrkit.keras._callbacks import CyclicLR, OneCycle, ScheduleCallback
from lrkit.keras._range_test import range_test

__all__ = ["CyclicLR", "OneCycle", "ScheduleCallback", "range_test"]
