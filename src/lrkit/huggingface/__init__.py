"""lrkit for the Hugging Face ``transformers.Trainer``: the range test and the budgeted search on
the training the Trainer would run.

Install with ``pip install "lrkit[huggingface]"``; ``import lrkit`` does not import
``transformers``. ::

    from lrkit import huggingface as lh

    result = lh.tune_lr(trainer, budget=0.5)   # or lh.range_test(trainer, steps=100)
    trainer.args.learning_rate = result.peak
    trainer.train()

Everything is read from the Trainer:

- the model, and its loss through the Trainer's own ``compute_loss`` (so a subclass with a
  custom loss, ``compute_loss_func`` or label smoothing trains as it would);
- the batches of ``trainer.get_train_dataloader()`` and ``trainer.get_eval_dataloader()``
  (dataset, data collator, removed columns, batch size, sampler);
- the optimizer the Trainer would build (``trainer.create_optimizer()``: ``args.optim``, its
  arguments, and weight decay with the no-decay parameter groups), or the one passed in
  ``optimizers``; it is built for the search and not left on the Trainer;
- ``gradient_accumulation_steps``, ``max_grad_norm``, and ``bf16`` / ``fp16`` (autocast in
  that dtype; fp16 with a GradScaler, on CUDA);
- the schedule the Trainer would run (``lr_scheduler_type``, ``lr_scheduler_kwargs``, warmup
  as steps or as a ratio), which the search's probes train (:func:`trainer_schedule`), and the
  run's length in optimizer updates, counted as the Trainer counts them (:func:`total_steps`);
- the score of a probe: ``compute_metrics`` with ``metric_for_best_model`` and
  ``greater_is_better``, else the evaluation loss (the Trainer's ``prediction_step``).

Afterwards the model is bit for bit as before, and the Trainer as it was: no optimizer or
scheduler left on it, ``state.global_step`` untouched, ``args`` unchanged, the global RNGs
restored.

One process: under ``torchrun`` (``args.world_size > 1``), DeepSpeed or FSDP, run the search in
a single process first and launch the distributed training with its peak.
"""

from __future__ import annotations

from typing import Any, Literal

from lrkit.engine import RngState, SnapshotMode
from lrkit.finder import RangeTestResult, TuneResult
from lrkit.finder import range_test as _range_test
from lrkit.finder import tune_lr as _tune_lr
from lrkit.finder.range_test import ProgressFn
from lrkit.finder.tune_result import ScheduleFn
from lrkit.huggingface._schedule import count_steps, total_steps, trainer_schedule
from lrkit.huggingface._trainer import Untouched, check_trainer, loss_of, read, scoring

__all__ = ["range_test", "total_steps", "trainer_schedule", "tune_lr"]


def range_test(
    trainer: Any,
    *,
    steps: int = 100,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    mode: Literal["exp", "linear"] = "exp",
    smoothing: float = 0.98,
    diverge: float = 4.0,
    validate: bool = False,
    eval_dataset: Any = None,
    repeats: int = 1,
    seed: int = 0,
    snapshot: SnapshotMode = "cpu",
    progress: ProgressFn | None = None,
    extend: int = 3,
    band: bool = True,
) -> RangeTestResult:
    """The LR range test (:func:`lrkit.range_test`) on the training ``trainer.train()`` would
    run: its model and loss, training batches, optimizer, gradient accumulation, clipping and
    mixed precision (see the module docstring). The Trainer's schedule is not used: the sweep
    sets the learning rate of every update.

    Args:
        trainer: a ``transformers.Trainer`` or a subclass (``Seq2SeqTrainer``, ...).
        steps, start_lr, end_lr, mode, smoothing, diverge, repeats, seed, snapshot, progress,
            extend, band: as :func:`lrkit.range_test`'s; ``steps`` counts optimizer updates
            (``gradient_accumulation_steps`` batches each).
        validate: score each step on the evaluation data (the Trainer's evaluation loss,
            slower than the training loss); with ``metric_for_best_model`` the result's
            ``metrics`` hold it at each step.
        eval_dataset: with ``validate``, the dataset (or the name of one of the Trainer's) to
            evaluate on instead of ``trainer.eval_dataset``.

    Returns:
        A :class:`~lrkit.finder.RangeTestResult`; the model and the Trainer are as before.

    Raises:
        TypeError: not a Trainer.
        ValueError: what cannot be read (no training data, non-dict batches, ``validate``
            without labelled evaluation data, fp16 off CUDA, several processes), before
            anything is changed; and :func:`lrkit.range_test`'s errors.
    """
    check_trainer(trainer)
    untouched = Untouched(trainer)
    rng = RngState.capture()
    try:
        metric_fn, _ = scoring(trainer) if validate else (None, False)
        setup = read(
            trainer,
            evaluate=validate,
            predictions=metric_fn is not None,
            eval_dataset=eval_dataset,
            holdout=None,
            seed=seed,
            who="range_test with validate=True",
        )
        return _range_test(
            setup.model, setup.optimizer, setup.train, loss_of, start_lr=start_lr, end_lr=end_lr,
            steps=steps, mode=mode, smoothing=smoothing, diverge=diverge,
            accumulation_steps=setup.accumulation_steps, val_data=setup.val,
            metric_fn=metric_fn, scaler=setup.scaler, autocast=setup.autocast,
            max_grad_norm=setup.max_grad_norm, repeats=repeats, seed=seed, snapshot=snapshot,
            progress=progress, extend=extend, band=band,
        )  # fmt: skip
    finally:
        untouched.restore()
        rng.restore()


def tune_lr(
    trainer: Any,
    *,
    budget: float = 0.5,
    total_steps: int | None = None,
    schedule: ScheduleFn | None = None,
    eval_dataset: Any = None,
    holdout: float | None = 0.1,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    range_test_steps: int = 100,
    seed: int | None = None,
    snapshot: SnapshotMode = "cpu",
    progress: ProgressFn | None = None,
) -> TuneResult:
    """The budgeted search (:func:`lrkit.tune_lr`) for the learning rate to give the Trainer:
    a range test, then short runs of the Trainer's own schedule (:func:`trainer_schedule`)
    scored as the Trainer would pick its best model, corrected for the run's length.

    Set ``trainer.args.learning_rate = result.peak`` and train. With an optimizer of your own
    (``optimizers=(opt, None)``), set its param groups' ``lr`` to ``result.peak`` instead.

    Args:
        trainer: a ``transformers.Trainer`` or a subclass.
        budget: the fraction of one training run the search may spend, range test included.
        total_steps: the run's optimizer updates; default :func:`total_steps`.
        schedule: ``schedule(peak, steps)`` to probe instead of the Trainer's; needed when the
            Trainer was given a scheduler of its own in ``optimizers``.
        eval_dataset: the dataset (or the name of one of the Trainer's) to score on instead of
            ``trainer.eval_dataset``.
        holdout: without evaluation data, hold this fraction of the training examples out to
            score on (the probes train on the rest; ``result.holdout`` says so); ``None``
            raises instead.
        start_lr, end_lr, range_test_steps, snapshot, progress: as :func:`lrkit.tune_lr`'s.
        seed: the search's seed; default ``args.seed``.

    A probe's score is ``metric_for_best_model`` from ``compute_metrics`` (higher is better
    when ``greater_is_better``, or when it does not end in "loss"), else the evaluation loss.
    ``compute_metrics`` is called on each evaluation batch and its values averaged weighted by
    the batch's examples: the Trainer's value for a mean over examples (accuracy), an
    approximation for metrics that do not average (F1, Matthews correlation: evaluate in
    larger batches). ``preprocess_logits_for_metrics`` is applied first, ``include_for_metrics``
    adds the batch's inputs and loss, and with ``batch_eval_metrics`` each call has
    ``compute_result=True``.

    Returns:
        A :class:`~lrkit.finder.TuneResult`: ``peak`` to train with, the probes, the range
        test; ``result.train_schedule()`` is the Trainer's schedule at that peak.

    Raises:
        TypeError: not a Trainer.
        ValueError: what cannot be read, before anything is changed: a training dataset
            without a length and no ``max_steps``; no evaluation data with ``holdout=None``;
            ``metric_for_best_model`` without ``compute_metrics``; a scheduler passed to the
            Trainer, or a metric-driven ``lr_scheduler_type``, without ``schedule``; fp16 off
            CUDA; several processes; and :func:`lrkit.tune_lr`'s errors.
    """
    check_trainer(trainer)
    if holdout is not None and not (
        isinstance(holdout, (int, float)) and not isinstance(holdout, bool) and 0 < holdout < 1
    ):
        raise ValueError(f"holdout must be a fraction in (0, 1) or None, got {holdout!r}")
    args = trainer.args
    untouched = Untouched(trainer)
    rng = RngState.capture()
    try:
        total = count_steps(trainer) if total_steps is None else total_steps
        if schedule is None:
            if trainer.lr_scheduler is not None:
                raise ValueError(
                    "the Trainer was given its own lr_scheduler, which lrkit cannot rebuild "
                    "for other peaks and lengths; pass schedule=lambda peak, steps: ... (an "
                    "lrkit schedule of the same shape)"
                )
            schedule = trainer_schedule(args, total)
        metric_fn, maximize = scoring(trainer)
        search_seed = int(args.seed) if seed is None else seed
        setup = read(
            trainer,
            evaluate=True,
            predictions=metric_fn is not None,
            eval_dataset=eval_dataset,
            holdout=holdout,
            seed=search_seed,
            who="tune_lr",
        )
        result = _tune_lr(
            setup.model, setup.optimizer, setup.train, loss_of, total_steps=total,
            val_data=setup.val, budget=budget, schedule=schedule,
            metric_fn=metric_fn, maximize=maximize,
            accumulation_steps=setup.accumulation_steps, scaler=setup.scaler,
            autocast=setup.autocast, max_grad_norm=setup.max_grad_norm, start_lr=start_lr,
            end_lr=end_lr, range_test_steps=range_test_steps, seed=search_seed,
            snapshot=snapshot, progress=progress,
        )  # fmt: skip
    finally:
        untouched.restore()
        rng.restore()
    if setup.holdout is not None:
        result.holdout = setup.holdout
    return result
