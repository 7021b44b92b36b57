"""lrkit inside PyTorch Lightning, with no adapter code: the range test drives a LightningModule's
own ``training_step``, and :class:`lrkit.Scheduler` is a step-interval LR scheduler of a Trainer,
checkpointed and resumed by it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

pl = pytest.importorskip(
    "pytorch_lightning",
    reason="the lightning extra is not installed (pip install -e '.[lightning]')",
)

import lrkit  # noqa: E402
from lrkit import schedules as S  # noqa: E402
from lrkit.tasks import get_task  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated:FutureWarning"),
]

STEPS = 96


def make_schedule() -> S.Hyper:
    return S.one_cycle(0.3, STEPS)


class LitMLP(pl.LightningModule):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(40, 64), nn.ReLU(), nn.Linear(64, 10))
        self.seen_lr: list[float] = []
        self.seen_momentum: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        group = self.trainer.optimizers[0].param_groups[0]
        self.seen_lr.append(float(group["lr"]))
        self.seen_momentum.append(float(group["momentum"]))

    def configure_optimizers(self) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        sched = lrkit.Scheduler(opt, lr=make_schedule())
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def trainer(
    tmp_path: Path,
    max_steps: int,
    *,
    logger_override: Any = False,
    checkpointing: bool = False,
    **kwargs: Any,
) -> Any:
    return pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=logger_override,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=checkpointing,  # by default the test saves the checkpoint it needs
        default_root_dir=tmp_path,
        **kwargs,
    )


def loader() -> Any:
    return get_task("mnist1d-mlp").loaders(batch_size=128, seed=0)[0]


def test_range_test_runs_a_lightning_modules_training_step_and_restores_it() -> None:
    torch.manual_seed(0)
    model = LitMLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lrkit.range_test(
        model, opt, loader(), step_fn=lambda m, b: m.training_step(b, 0), steps=60
    )
    assert result.stop_reason in ("completed", "diverged") and len(result.lrs) >= 10
    assert result.losses[0] == pytest.approx(2.3, abs=0.2)  # untrained 10-class cross-entropy
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert opt.param_groups[0]["lr"] == 0.1 and not opt.state


def test_scheduler_drives_a_trainer_step_by_step_and_resumes_from_its_checkpoint(
    tmp_path: Path,
) -> None:
    hyper = make_schedule()
    expected_lr = [hyper.lr(t) for t in range(STEPS)]
    expected_momentum = [hyper.momentum(t) for t in range(STEPS)]

    torch.manual_seed(0)
    full = LitMLP()
    trainer(tmp_path / "full", STEPS).fit(full, loader())
    assert full.seen_lr == pytest.approx(expected_lr, rel=1e-12)
    assert full.seen_momentum == pytest.approx(expected_momentum, rel=1e-12)

    # stop a third of the way, then resume from Lightning's checkpoint in a fresh module
    torch.manual_seed(0)
    first = LitMLP()
    part = trainer(tmp_path / "part", STEPS // 3)
    part.fit(first, loader())
    ckpt = tmp_path / "part.ckpt"
    part.save_checkpoint(ckpt)
    resumed = LitMLP()
    trainer(tmp_path / "resumed", STEPS).fit(resumed, loader(), ckpt_path=str(ckpt))
    assert first.seen_lr + resumed.seen_lr == pytest.approx(expected_lr, rel=1e-12)
    assert first.seen_momentum + resumed.seen_momentum == pytest.approx(
        expected_momentum, rel=1e-12
    )


# -- lrkit.lightning: the callback and the range test -------------------------------------------


class LitPlain(pl.LightningModule):  # type: ignore[misc]
    """A module as users write them: it logs in training_step and returns only an optimizer."""

    def __init__(self, opt: str = "sgd") -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(40, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)
        )
        self.opt = opt
        self.used: list[tuple[float, float]] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> Any:
        if self.opt == "adam":
            opt: torch.optim.Optimizer = torch.optim.AdamW(self.parameters(), lr=1e-3)
        else:
            opt = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)

        def record(o: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            g = o.param_groups[0]
            self.used.append((g["lr"], g["betas"][0] if "betas" in g else g["momentum"]))

        opt.register_step_pre_hook(record)
        return opt


class Mnist1d(pl.LightningDataModule):  # type: ignore[misc]
    def setup(self, stage: str) -> None:
        self.train, self.val = get_task("mnist1d-mlp").loaders(batch_size=128, seed=0)

    def train_dataloader(self) -> Any:
        return self.train

    def val_dataloader(self) -> Any:
        return self.val


def test_callback_drives_every_update_with_accumulation_and_logs(tmp_path: Path) -> None:
    from lrkit.lightning import ScheduleCallback

    hyper = S.one_cycle(3e-3, 20)
    torch.manual_seed(0)
    module = LitPlain("adam")
    logger = pl.loggers.CSVLogger(tmp_path, name="csv")
    trainer(
        tmp_path,
        20,
        callbacks=[ScheduleCallback(hyper)],
        accumulate_grad_batches=2,
        log_every_n_steps=1,
        logger_override=logger,
    ).fit(module, loader())
    assert len(module.used) == 20
    flat = [v for pair in module.used for v in pair]
    assert flat == pytest.approx([v for t in range(20) for v in (hyper.lr(t), hyper.momentum(t))])
    logger.save()
    rows = (Path(logger.log_dir) / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    col, step_col = header.index("lr"), header.index("step")
    logged = {
        int(r.split(",")[step_col]): float(r.split(",")[col]) for r in rows[1:] if r.split(",")[col]
    }
    assert logged == pytest.approx({t: hyper.lr(t) for t in range(20)}, rel=1e-12)


@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")
@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before")
def test_callback_resumes_mid_cycle_from_a_lightning_checkpoint(tmp_path: Path) -> None:
    from lrkit.lightning import ScheduleCallback

    hyper = S.one_cycle(0.3, STEPS)
    expected = [v for t in range(STEPS) for v in (hyper.lr(t), hyper.momentum(t))]
    torch.manual_seed(0)
    first = LitPlain()
    ckpt_cb = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=40)
    trainer(
        tmp_path / "a", 50, callbacks=[ScheduleCallback(hyper), ckpt_cb], checkpointing=True
    ).fit(first, loader())
    saved = sorted((tmp_path / "ckpt").glob("*.ckpt"))
    assert [p.name for p in saved] == ["epoch=1-step=40.ckpt"]
    resumed = LitPlain()
    trainer(tmp_path / "b", STEPS, callbacks=[ScheduleCallback(hyper)]).fit(
        resumed, loader(), ckpt_path=str(saved[0])
    )
    flat = [v for pair in first.used[:40] + resumed.used for v in pair]
    assert flat == pytest.approx(expected, rel=1e-12)


def test_callback_refuses_a_second_scheduler(tmp_path: Path) -> None:
    from lrkit.lightning import ScheduleCallback

    with pytest.raises(ValueError, match="configure_optimizers returns an LR scheduler"):
        trainer(tmp_path, 5, callbacks=[ScheduleCallback(S.constant(0.1))]).fit(LitMLP(), loader())


def test_range_test_on_a_datamodule_restores_the_module_without_warnings() -> None:
    import warnings

    from lrkit.lightning import range_test

    torch.manual_seed(0)
    module = LitPlain()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = range_test(module, datamodule=Mnist1d(), validate=True, steps=30, end_lr=1.0)
    assert len(result.lrs) >= 10 and result.val_losses is not None
    assert result.val_losses[0] == pytest.approx(2.3, abs=0.2)  # untrained, 10 classes
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert module.training


def test_import_lrkit_imports_no_lightning() -> None:
    import subprocess
    import sys

    code = "import sys, lrkit; assert 'pytorch_lightning' not in sys.modules, 'imported'"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_tune_lr_on_a_datamodule_restores_the_module_without_warnings() -> None:
    import warnings

    from lrkit.lightning import tune_lr

    torch.manual_seed(0)
    module = LitPlain()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # one validation batch: probes of (280 - 100 - 6 / 3) // 5 = 35 = 560 / 16 updates
        result = tune_lr(module, datamodule=Mnist1d(), total_steps=560, budget=0.5)
    assert result.peak > 0 and result.probes and result.spent <= 0.5
    assert result.score_name == "val_loss" and result.holdout is None
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]), k
