"""Training histories built from a list of evaluations, for tests of what summaries, findings
and reports say about runs."""

from __future__ import annotations

from lrkit.train.history import History


def curve_history(
    seed: int,
    metric: list[float],
    *,
    task: str = "t",
    target: float | None = None,
    seconds: float = 1.0,
    every: int = 10,
) -> History:
    """A run evaluated every ``every`` steps with accuracies ``metric`` (validation loss
    ``1 - m``), trained at LR 0.1 with a falling loss; ``steps_to_target`` is the first
    evaluation reaching ``target`` when one is given."""
    steps = [every * (i + 1) for i in range(len(metric))]
    reached = None
    if target is not None:
        reached = next((s for s, m in zip(steps, metric, strict=True) if m >= target), None)
    return History(
        task=task,
        metric_name="accuracy",
        seed=seed,
        total_steps=steps[-1],
        lr=[0.1] * steps[-1],
        loss=[1.0 / (1 + i) for i in range(steps[-1])],
        eval_step=steps,
        val_loss=[1.0 - m for m in metric],
        metric=metric,
        final_metric=metric[-1],
        target=target,
        steps_to_target=reached,
        seconds=seconds,
    )
