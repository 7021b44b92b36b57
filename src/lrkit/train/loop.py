"""The training loop: schedules stepped per update, evaluations, checkpoints, exact resume."""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lrkit._extras import require
from lrkit._threads import torch_threads
from lrkit.driver import Scheduler, read_value
from lrkit.engine import (
    Engine,
    NoHooks,
    RngState,
    Update,
    checked,
    checkpoint_path,
    data_generators,
    distributed,
    drive,
    load_checkpoint,
    save_atomic,
    validate_batch,
)
from lrkit.tasks import Task
from lrkit.train.config import DATA_ORDER, GLOBAL_RNG, Plan, TrainConfig, derive_seed, resolve
from lrkit.train.history import History

__all__ = ["fit"]

logger = logging.getLogger("lrkit.train")


def fit(task: Task | str | TrainConfig | None = None, **settings: Any) -> History:
    """Train a model with an optimizer driven by lrkit schedules, and record what happened.

    ``fit("wine-mlp", steps=200, lr=one_cycle(0.3, 200))`` trains a task (or a name accepted
    by :func:`lrkit.tasks.get_task`) with the given settings; ``fit(model=..., train_loader=...,
    loss_fn=..., steps=...)`` trains your own model (``optimizer=`` your own
    ``torch.optim.Optimizer`` over its parameters trains with that optimizer, its param groups
    and state); ``fit(config, **overrides)`` runs a :class:`TrainConfig` with some settings
    replaced. The settings and their defaults are the
    fields of :class:`TrainConfig`, documented there.

    Each optimizer update consumes ``accumulation_steps`` batches through
    :class:`lrkit.engine.Engine`; the schedules advance once per update
    (:class:`lrkit.Scheduler`). The model is evaluated every ``eval_every`` updates, at every
    cycle end when ``stop_at_cycle_end`` is set, and after the last update.

    Under ``torchrun`` (an initialized ``torch.distributed`` process group of several
    processes; every rank calls ``fit`` with the same settings), the model is wrapped in
    ``DistributedDataParallel``, the training loader gets a ``DistributedSampler`` (shuffled
    from ``seed``, its epoch set at every epoch) and the validation loader a disjoint part per
    rank; losses and evaluations are reduced over the ranks, so every rank records the same
    history and takes the same decisions. Rank 0 alone writes the checkpoint (with every rank's
    RNG state and data position) while the others wait; to resume, every rank loads it and
    continues exactly where it was. Settings that differ between ranks raise ``ValueError`` on
    every rank before any step.

    Returns:
        The :class:`History` of the run. A NaN or infinite loss does not raise: the run stops
        before applying that update, with ``diverged=True`` and the step in ``stop_reason``.

    Raises:
        ValueError: inconsistent or missing settings, or a checkpoint from another
            configuration; under ``torch.distributed``, settings that differ between ranks.
        TypeError: a setting that is not a field of :class:`TrainConfig`.
    """
    if isinstance(task, TrainConfig):
        config = task.with_overrides(**settings)
    else:
        config = TrainConfig().with_overrides(task=task, **settings)
    with distributed.agreement("fit", _settings(config)) as agreed:
        plan = resolve(config)
        agreed.update(plan.fingerprint)
    caller_rng = RngState.capture()
    try:
        with torch_threads(config.num_threads):
            return _Trainer(plan).train(progress=config.progress)
    finally:
        caller_rng.restore()


_LOCAL_SETTINGS = ("device", "checkpoint_dir", "num_threads", "progress")


def _settings(config: TrainConfig) -> dict[str, Any]:
    """The plain settings every rank must share (objects such as the model and the loaders
    are compared through the plan's fingerprint instead)."""
    out: dict[str, Any] = {}
    for name in config.fields():
        value = getattr(config, name)
        if isinstance(value, torch.dtype):
            value = str(value)
        if name not in _LOCAL_SETTINGS and (value is None or isinstance(value, (int, float, str))):
            out[name] = value
    return out


# -- data position ----------------------------------------------------------------------------


class _Stream:
    """An endless stream of training batches that knows its (epoch, batch) position.

    At the start of every epoch the loader's generator(s) are reseeded from ``(seed, epoch)``
    and the torch RNG state is remembered, so a resumed run can rebuild the same epoch iterator
    and skip to the same batch.
    """

    def __init__(self, loader: Iterable[Any], seed: int) -> None:
        self.loader = loader
        self.seed = seed
        self.epoch = 0
        self.batch = 0
        self.epoch_rng: Tensor | None = None
        self._it: Iterator[Any] | None = None

    def _start_epoch(self, rng: Tensor | None = None) -> None:
        if rng is None:
            self.epoch_rng = torch.get_rng_state()
        else:
            self.epoch_rng = rng
            torch.set_rng_state(rng)
        for g in data_generators(self.loader):
            g.manual_seed(derive_seed(self.seed, DATA_ORDER, self.epoch))
        distributed.set_epoch(self.loader, self.epoch)
        self._it = iter(self.loader)

    def next(self) -> Any:
        if self._it is None:
            self._start_epoch()
        assert self._it is not None
        try:
            item = next(self._it)
        except StopIteration:
            if self.batch == 0:
                raise ValueError("train_loader yielded no batches") from None
            self.epoch += 1
            self.batch = 0
            self._start_epoch()
            try:
                item = next(self._it)
            except StopIteration:
                raise ValueError("train_loader yielded no batches") from None
        self.batch += 1
        return item

    def state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch": self.batch, "epoch_rng": self.epoch_rng}

    def seek(self, state: dict[str, Any]) -> None:
        """Rebuild the iterator of ``state['epoch']`` and skip ``state['batch']`` batches.

        Changes the global torch RNG; restore it afterwards.
        """
        self.epoch = int(state["epoch"])
        self.batch = int(state["batch"])
        rng = state.get("epoch_rng")
        if rng is None:
            self._it = None
            return
        self._start_epoch(rng)
        assert self._it is not None
        for i in range(self.batch):
            try:
                next(self._it)
            except StopIteration:
                raise ValueError(
                    f"cannot resume: the train loader has fewer than {self.batch} batches in "
                    f"epoch {self.epoch} (stopped at {i})"
                ) from None


# -- the loop ---------------------------------------------------------------------------------


class _Batches:
    """The training stream as an iterator for :meth:`Engine.update`, its first batch checked."""

    def __init__(self, stream: _Stream) -> None:
        self.stream = stream
        self.checked = False

    def __iter__(self) -> _Batches:
        return self

    def __next__(self) -> Any:
        batch = self.stream.next()
        if not self.checked:
            validate_batch(batch, has_step_fn=False, has_loss_fn=True, what="train_loader")
            self.checked = True
        return batch


def _momentum_of(group: dict[str, Any]) -> float:
    if "momentum" in group:
        return read_value(group, "momentum")
    if "betas" in group:
        return read_value(group, "betas", 0)
    return math.nan


class _Trainer:
    def __init__(self, run: Plan) -> None:
        self.run = run
        self.model = distributed.unwrap(run.model).to(run.device)
        self.net = distributed.wrap(run.model, run.device)
        self.history = History(
            task=run.task_name,
            metric_name=run.metric_name,
            optimizer=run.optimizer_name,
            seed=run.config.seed,
            total_steps=run.total_steps,
            target=run.target,
        )
        self.stream = _Stream(run.train_loader, run.config.seed)
        self.step = 0
        self.finished = False
        cuda = run.device.type == "cuda"
        chosen = run.config.autocast
        self.autocast_dtype: torch.dtype | None = chosen
        if chosen is None and run.config.amp:
            self.autocast_dtype = torch.float16 if cuda else torch.bfloat16
        fp16 = self.autocast_dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if fp16 and cuda else None

    # -- evaluation -------------------------------------------------------------------------
    def _evaluate(self, engine: Engine) -> tuple[float, float]:
        run = self.run
        assert run.val_loader is not None
        batches = checked(run.val_loader, has_step_fn=False, has_loss_fn=True, what="val_loader")
        found = engine.evaluate(batches, run.metric_fn, pooled=True)
        metric = -found.loss if run.metric_fn is None else found.metric
        return found.loss, metric

    def _record_eval(self, engine: Engine, sched: Scheduler | None) -> None:
        val_loss, metric = self._evaluate(engine)
        h = self.history
        h.eval_step.append(self.step)
        h.val_loss.append(val_loss)
        h.metric.append(metric)
        h.eval_seconds.append(h.seconds)
        h.final_metric = metric
        if h.target is not None and h.steps_to_target is None and metric >= h.target:
            h.steps_to_target = self.step
            h.seconds_to_target = h.seconds
        if sched is not None:
            sched.observe(val_loss if self.run.config.observe == "val_loss" else metric)

    # -- checkpoints ------------------------------------------------------------------------
    def _save(self, opt: torch.optim.Optimizer, sched: Scheduler | None) -> None:
        run = self.run
        assert run.config.checkpoint_dir is not None
        state = {
            "format": "lrkit.train/1",
            "fingerprint": run.fingerprint,
            "step": self.step,
            "finished": self.finished,
            "model": self.model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": None if sched is None else sched.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "rng": RngState.capture().to_dict(),
            "data": self.stream.state(),
            "history": self.history.to_dict(),
        }
        if distributed.is_distributed():
            state["ranks"] = distributed.all_gather({"rng": state["rng"], "data": state["data"]})
        with distributed.agreement("fit's checkpoint", {}):  # the others wait for rank 0
            if distributed.is_writer():
                save_atomic(state, checkpoint_path(run.config.checkpoint_dir))

    def _load(self, opt: torch.optim.Optimizer, sched: Scheduler | None) -> bool:
        """Resume from the checkpoint; under ``torch.distributed`` every rank must find the
        same one."""
        hint = "Every rank must see the same checkpoint_dir (a folder they share) to resume."
        with distributed.agreement("the checkpoint to resume from", {}, hint) as agreed:
            found = self._load_local(opt, sched)
            agreed["step"] = self.step if found else None
        return found

    def _load_local(self, opt: torch.optim.Optimizer, sched: Scheduler | None) -> bool:
        run = self.run
        assert run.config.checkpoint_dir is not None
        path = checkpoint_path(run.config.checkpoint_dir)
        if not path.is_file():
            logger.info("no checkpoint at %s; starting afresh", path)
            return False
        ckpt = load_checkpoint(path)
        saved = ckpt["fingerprint"]
        if saved != run.fingerprint:
            keys = [*run.fingerprint, *(k for k in saved if k not in run.fingerprint)]
            diff = {
                k: (saved.get(k), run.fingerprint.get(k))
                for k in keys
                if saved.get(k) != run.fingerprint.get(k)
            }
            raise ValueError(
                f"the checkpoint in {str(run.config.checkpoint_dir)!r} belongs to another run "
                f"configuration (checkpoint vs now: {diff}); use another checkpoint_dir or "
                "resume=False"
            )
        self.model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if sched is not None:
            sched.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt["scaler"] is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.history = History.from_dict(ckpt["history"])
        self.step = int(ckpt["step"])
        self.finished = bool(ckpt["finished"])
        mine = ckpt["ranks"][distributed.rank()] if "ranks" in ckpt else ckpt
        self.stream.seek(mine["data"])
        RngState.from_dict(mine["rng"]).restore()
        logger.info("resumed from %s at step %d", path, self.step)
        return True

    # -- training ---------------------------------------------------------------------------
    def train(self, *, progress: bool) -> History:
        run = self.run
        rng_seed = derive_seed(run.config.seed, GLOBAL_RNG)
        random.seed(rng_seed)
        np.random.seed(rng_seed % 2**32)
        torch.manual_seed(rng_seed)
        self.net.train()
        opt, sched = run.build()
        if run.config.resume and self._load(opt, sched) and self.finished:
            return self.history
        show = progress and distributed.is_writer()
        bar = _ProgressBar(run.total_steps, self.step) if show else None
        wall0 = time.perf_counter()
        wall_before = self.history.wall_seconds
        engine = Engine(
            self.net,
            opt,
            loss_fn=run.loss_fn,
            accumulation_steps=run.config.accumulation_steps,
            scaler=self.scaler,
            autocast_dtype=self.autocast_dtype,
            max_grad_norm=run.config.max_grad_norm,
            device=run.device,
        )
        try:
            with engine, bar if bar is not None else contextlib.nullcontext():
                self._loop(engine, sched, bar, wall0, wall_before)
        finally:
            self.history.wall_seconds = wall_before + time.perf_counter() - wall0
        self.finished = True
        if run.config.checkpoint_dir is not None:
            self._save(opt, sched)
        logger.info("training stopped: %s", self.history.stop_reason)
        return self.history

    def _loop(
        self,
        engine: Engine,
        sched: Scheduler | None,
        bar: _ProgressBar | None,
        wall0: float,
        wall_before: float,
    ) -> None:
        run, h = self.run, self.history
        hooks = _FitHooks(self, engine, sched, bar, wall0, wall_before)
        left = run.total_steps - self.step
        done = drive(engine, _Batches(self.stream), left, hooks, scheduler=sched)
        if done.stop == "skipped":
            self._diverge(engine, f"the GradScaler skipped {done.skips} updates in a row")
        elif done.stop == "nonfinite":
            self._diverge(
                engine,
                f"training loss is {h.loss[-1]} at step {self.step} (update "
                f"{self.step + 1} of {run.total_steps}); the update was not applied",
            )
        elif done.stop == "completed":
            h.stop_reason = f"completed {run.total_steps} steps"

    def _diverge(self, engine: Engine, why: str) -> None:
        """Stop the run as diverged, with a last evaluation at the current step."""
        h = self.history
        h.diverged = True
        h.stop_reason = f"diverged: {why}"
        logger.warning(h.stop_reason)
        if self.run.val_loader is not None and (not h.eval_step or h.eval_step[-1] != self.step):
            self._record_eval(engine, None)

    def _after_step(self, engine: Engine, sched: Scheduler | None) -> bool:
        """Evaluate when due; return ``True`` when the run should stop."""
        run, h, step = self.run, self.history, self.step
        cycle = run.config.stop_at_cycle_end
        at_cycle_end = cycle is not None and step % cycle == 0
        due = (
            (run.eval_every is not None and step % run.eval_every == 0)
            or at_cycle_end
            or step == run.total_steps
        )
        if run.val_loader is None or not due:
            return False
        self._record_eval(engine, sched)
        metric = h.metric[-1]
        if not math.isfinite(h.val_loss[-1]):
            h.diverged = True
            h.stop_reason = f"diverged: validation loss is {h.val_loss[-1]} at step {step}"
            logger.warning(h.stop_reason)
            return True
        if run.config.stop_at_target and h.steps_to_target is not None:
            h.stop_reason = f"reached target {h.target} at step {step}"
            return True
        if at_cycle_end and cycle is not None and step >= 2 * cycle:
            previous = h.metric[h.eval_step.index(step - cycle)]
            if not metric > previous:
                h.stop_reason = (
                    f"metric stopped improving: {metric:.6g} at the cycle end at step {step} "
                    f"is not better than {previous:.6g} at step {step - cycle}"
                )
                return True
        return False


class _FitHooks(NoHooks):
    """``fit``'s hooks on the update loop: the history of every update (its learning rate and
    momentum, loss and time), then after each applied one the progress bar, the evaluations
    and stop rules when due, and the checkpoints."""

    def __init__(
        self,
        trainer: _Trainer,
        engine: Engine,
        sched: Scheduler | None,
        bar: _ProgressBar | None,
        wall0: float,
        wall_before: float,
    ) -> None:
        self.trainer, self.engine, self.sched, self.bar = trainer, engine, sched, bar
        self.wall0, self.wall_before = wall0, wall_before
        self.t0 = 0.0
        self.lr = self.momentum = math.nan

    def before(self, step: int) -> None:
        self.t0 = time.perf_counter()
        group = self.engine.optimizer.param_groups[0]
        self.lr, self.momentum = read_value(group, "lr"), _momentum_of(group)

    def skipped(self, step: int, update: Update) -> None:
        self.trainer.history.seconds += time.perf_counter() - self.t0

    def after(self, step: int, update: Update) -> bool:
        t, h = self.trainer, self.trainer.history
        h.seconds += time.perf_counter() - self.t0
        h.lr.append(self.lr)
        h.momentum.append(self.momentum)
        h.loss.append(update.loss)
        if update.status != "applied":
            return True
        t.step += 1
        if self.bar is not None:
            self.bar.update(t.step, update.loss, self.lr)
        if t._after_step(self.engine, self.sched):
            return True
        every = t.run.config.checkpoint_every
        if every is not None and t.step % every == 0:
            h.wall_seconds = self.wall_before + time.perf_counter() - self.wall0
            t._save(self.engine.optimizer, self.sched)
        return False


class _ProgressBar:
    """A rich progress bar with loss, lr and ETA."""

    def __init__(self, total: int, done: int) -> None:
        require("rich", "cli", "fit(progress=True)")
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task("train", total=total, completed=done, loss="-", lr="-")

    def __enter__(self) -> _ProgressBar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, step: int, loss: float, lr: float) -> None:
        self._progress.update(self._task, completed=step, loss=f"{loss:.4g}", lr=f"{lr:.3g}")
