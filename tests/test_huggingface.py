"""lrkit.Scheduler inside a real ``transformers.Trainer`` (tiny GPT-2 built from a config).

The Trainer wraps the optimizer with accelerate, which calls ``optimizer.load_state_dict`` after
the scheduler is built, and ``resume_from_checkpoint`` loads both objects again: the schedule must
hold through both. The README's snippet runs here as written, with epochs or with max_steps.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

import lrkit
from lrkit import schedules as S

transformers = pytest.importorskip("transformers")

STEPS = 12
PEAK = 3e-3


class _Tokens(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self) -> None:
        # counting sequences from a random start: the next token is learnable
        g = torch.Generator().manual_seed(0)
        self.ids = (torch.randint(0, 32, (96, 1), generator=g) + torch.arange(8)) % 32

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def _train(out: Path, *, resume: str | None = None) -> tuple[list[float], Any]:
    """Train (or resume) and return lr, beta1, lr, beta1, ... of each optimizer update."""
    transformers.set_seed(0)
    config = transformers.GPT2Config(
        vocab_size=32, n_positions=8, n_embd=16, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0
    )
    model = transformers.GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=PEAK, betas=(0.9, 0.99))
    sched = lrkit.Scheduler(opt, lr=S.one_cycle(PEAK, STEPS))
    used: list[float] = []

    def record(o: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        group = o.param_groups[0]
        used.extend([float(group["lr"]), float(group["betas"][0])])

    opt.register_step_pre_hook(record)
    args = transformers.TrainingArguments(
        output_dir=str(out),
        max_steps=STEPS,
        per_device_train_batch_size=8,
        save_strategy="steps",
        save_steps=4,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=_Tokens(), optimizers=(opt, sched)
    )
    trainer.train(resume_from_checkpoint=resume)
    return used, trainer


@pytest.mark.slow
def test_trainer_follows_the_schedule_and_resumes_exactly(tmp_path: Path) -> None:
    cycle = S.one_cycle(PEAK, STEPS)
    expected = [v for t in range(STEPS) for v in (cycle.lr(t), cycle.momentum(t))]

    used, trainer = _train(tmp_path / "full")
    assert len(used) == 2 * STEPS
    assert used == pytest.approx(expected, rel=1e-12)
    # The Trainer logs the learning rate each update used.
    logged = [e["learning_rate"] for e in trainer.state.log_history if "learning_rate" in e]
    assert logged == pytest.approx([cycle.lr(t) for t in range(STEPS)], rel=1e-12)

    resumed, _ = _train(tmp_path / "full", resume=str(tmp_path / "full" / "checkpoint-4"))
    assert len(resumed) == 2 * (STEPS - 4)
    assert resumed == pytest.approx(expected[8:], rel=1e-12)


def _readme_snippet() -> str:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## With Hugging Face Transformers\n.*?```python\n(.*?)```", readme, re.S)
    assert block is not None, "the README's Hugging Face snippet is missing"
    return block.group(1)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("epochs", "max_steps", "total"),
    [
        # 96 sequences in batches of 8: 12 batches, 3 updates of 5, 5 and 2 batches per epoch;
        # 2.5 epochs are ceil(2.5 * 3) = 8 updates (the Trainer stops in the third epoch)
        (2.5, -1, 8),
        (3.0, 5, 5),  # max_steps, when set, comes first
    ],
)
def test_the_readme_snippet_schedules_the_updates_the_trainer_makes(
    tmp_path: Path, epochs: float, max_steps: int, total: int
) -> None:
    transformers.set_seed(0)
    config = transformers.GPT2Config(
        vocab_size=32, n_positions=8, n_embd=16, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0
    )
    model = transformers.GPT2LMHeadModel(config)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=epochs,
        max_steps=max_steps,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=5,
        save_strategy="no",
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
        disable_tqdm=True,
    )
    used: list[float] = []

    def record(o: torch.optim.Optimizer, a: Any, kw: Any) -> None:
        used.extend([float(o.param_groups[0]["lr"]), float(o.param_groups[0]["betas"][0])])

    loader = torch.utils.data.DataLoader(_Tokens(), batch_size=8, shuffle=True)
    space: dict[str, Any] = {"model": model, "args": args, "ds": _Tokens(), "loader": loader}
    train, sep, rest = _readme_snippet().partition("trainer.train()\n")
    assert sep and "max_steps" in train and "num_train_epochs" in train
    hook = register_optimizer_step_pre_hook(record)
    try:
        exec(compile(train + sep, "README.md", "exec"), space)
    finally:
        hook.remove()

    trainer = space["trainer"]
    assert space["total"] == total
    assert trainer.state.global_step == trainer.state.max_steps == total
    cycle = S.one_cycle(3e-4, total)
    assert len(used) == 2 * total
    assert used == pytest.approx(
        [v for t in range(total) for v in (cycle.lr(t), cycle.momentum(t))], rel=1e-12
    )
    assert cycle.lr(total - 1) < cycle.lr(0) / 1000  # the last update is the cycle's end
    exec(compile(rest, "README.md", "exec"), space)  # the range test after it
    assert len(space["result"].lrs) > 10


def test_range_test_on_a_transformers_model_through_step_fn() -> None:
    transformers.set_seed(0)
    config = transformers.GPT2Config(
        vocab_size=32, n_positions=8, n_embd=16, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0
    )
    model = transformers.GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(_Tokens(), batch_size=8, shuffle=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lrkit.range_test(
        model, opt, loader, step_fn=lambda m, batch: m(**batch).loss, steps=60, end_lr=1.0
    )
    assert len(result.lrs) >= 10
    assert result.losses[0] == pytest.approx(float(torch.log(torch.tensor(32.0))), abs=0.3)
    assert min(result.losses) < result.losses[0] - 0.5  # it learns before it diverges
    assert result.suggestion is not None
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not opt.state


def test_import_lrkit_imports_no_transformers() -> None:
    import subprocess
    import sys

    code = "import sys, lrkit; assert 'transformers' not in sys.modules, 'imported'"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
