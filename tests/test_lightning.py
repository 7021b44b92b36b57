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


def trainer(tmp_path: Path, max_steps: int, **kwargs: Any) -> Any:
    return pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,  # the test saves the one checkpoint it needs
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
