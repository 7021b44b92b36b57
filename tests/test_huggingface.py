"""lrkit.Scheduler inside a real ``transformers.Trainer`` (tiny GPT-2 built from a config).

The Trainer wraps the optimizer with accelerate, which calls ``optimizer.load_state_dict`` after
the scheduler is built, and ``resume_from_checkpoint`` loads both objects again: the schedule must
hold through both. The README's snippet runs here as written, with epochs or with max_steps.

``lrkit.huggingface`` (the range test and the search read from a Trainer) on real Trainers with
tiny GPT-2, BERT and T5 models: the Trainer and the model as they were afterwards, the Trainer's
optimizer groups, accumulation, clipping, bf16, schedule and evaluation reaching the updates and
the scores, and the README's five lines.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

import lrkit
from lrkit import schedules as S

transformers = pytest.importorskip("transformers")
from lrkit import huggingface as lh  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: many times faster on one thread

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


# -- lrkit.huggingface: the range test and the search on a Trainer ---------------------------


class _Labelled(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Sequences of 8 tokens; the label is whether the first token is above 32 (learnable)."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 64, (n, 8), generator=g)
        self.labels = (self.ids[:, 0] > 32).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


class _Few(_Tokens):
    """``n`` sequences of :class:`_Tokens` from ``start``."""

    def __init__(self, n: int, start: int = 0) -> None:
        super().__init__()
        self.ids = self.ids[start : start + n]


class _Stream(torch.utils.data.IterableDataset[dict[str, torch.Tensor]]):
    """:class:`_Tokens` as a stream without a length."""

    def __iter__(self) -> Any:
        return iter(_Tokens()[i] for i in range(len(_Tokens())))


def _gpt2() -> Any:
    transformers.set_seed(0)
    config = transformers.GPT2Config(
        vocab_size=32, n_positions=8, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0
    )
    return transformers.GPT2LMHeadModel(config)


def _bert() -> Any:
    transformers.set_seed(0)
    config = transformers.BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def _accuracy(p: Any) -> dict[str, float]:
    return {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())}


def _args(out: Path, **kw: Any) -> Any:
    settings: dict[str, Any] = {
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 16,
        "save_strategy": "no",
        "logging_steps": 1,
        "report_to": [],
        "use_cpu": True,
        "dataloader_num_workers": 0,
        "seed": 0,
        "disable_tqdm": True,
    }
    return transformers.TrainingArguments(output_dir=str(out), **{**settings, **kw})


def _warmup_ratio(ratio: float) -> dict[str, float]:
    """A warmup ratio as this version of transformers takes it."""
    fields = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
    return {"warmup_ratio": ratio} if "warmup_ratio" in fields else {"warmup_steps": ratio}


class _As:
    """A Trainer's state to compare afterwards: every attribute (the same object), the args,
    the loaders its accelerator keeps, and the model's tensors."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.attrs = dict(vars(trainer))
        self.args = trainer.args.to_dict()
        self.loaders = list(trainer.accelerator._dataloaders)
        self.tensors = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        self.training = trainer.model.training

    def check(self) -> None:
        t = self.trainer
        assert t.optimizer is None and t.lr_scheduler is None
        assert t.state.global_step == 0
        assert t.args.to_dict() == self.args
        assert set(vars(t)) == set(self.attrs)
        assert all(vars(t)[k] is v for k, v in self.attrs.items())
        assert t.accelerator._dataloaders == self.loaders
        assert t.model.training == self.training
        after = t.model.state_dict()
        assert after.keys() == self.tensors.keys()
        for k, v in self.tensors.items():
            assert torch.equal(after[k], v), k


def _lrs_of_updates() -> tuple[list[float], Any]:
    """The learning rate of every optimizer update from now on (of each group, as a tuple
    when there are several), and the hook to remove."""
    used: list[Any] = []

    def record(o: torch.optim.Optimizer, a: Any, kw: Any) -> None:
        lrs = tuple(float(g["lr"]) for g in o.param_groups)
        used.append(lrs[0] if len(set(lrs)) == 1 else lrs)

    return used, register_optimizer_step_pre_hook(record)


def _hf_schedule(args: Any, peak: float, total: int) -> list[float]:
    """The learning rates transformers' own scheduler gives updates 0 .. total - 1."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    sched = transformers.get_scheduler(
        args.lr_scheduler_type,
        optimizer=opt,
        num_warmup_steps=args.get_warmup_steps(total),
        num_training_steps=total,
        scheduler_specific_kwargs=args.lr_scheduler_kwargs,
    )
    out = []
    for _ in range(total):
        out.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()
    return out


def _readme_trainer_snippet() -> str:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    block = re.search(
        r"## Fine-tuning with the Hugging Face Trainer\n.*?```python\n(.*?)```", readme, re.S
    )
    assert block is not None, "the README's Trainer section is missing"
    return block.group(1)


def test_range_test_on_a_trainer_leaves_the_model_and_the_trainer_as_they_were(
    tmp_path: Path,
) -> None:
    trainer = transformers.Trainer(
        model=_gpt2(), args=_args(tmp_path, max_steps=50), train_dataset=_Tokens()
    )
    before = _As(trainer)
    result = lh.range_test(trainer, steps=60, end_lr=1.0)
    assert len(result.lrs) >= 10
    assert result.losses[0] == pytest.approx(float(torch.log(torch.tensor(32.0))), abs=0.3)
    assert min(result.losses) < result.losses[0] - 0.5  # it learns before it diverges
    assert result.suggestion is not None
    before.check()


def test_the_readme_trainer_snippet_tunes_and_trains_on_the_trainers_schedule(
    tmp_path: Path,
) -> None:
    """No eval_dataset: a tenth of the training examples is held out, and the result says so.
    Then the Trainer trains at the peak, on its own schedule: linear with a warmup ratio. The
    run is long enough for the range test (100 steps) and probes of a sixteenth of it at half a
    run's budget: (280 - 100 - 6 / 3) // 5 = 35 = 560 / 16 (one evaluation batch)."""
    args = _args(tmp_path, max_steps=560, weight_decay=0.01, **_warmup_ratio(0.1))
    trainer = transformers.Trainer(model=_gpt2(), args=args, train_dataset=_Tokens())
    before = _As(trainer)
    train, sep, _ = _readme_trainer_snippet().partition("trainer.train()\n")
    assert sep
    space: dict[str, Any] = {"trainer": trainer}
    exec(compile(train, "README.md", "exec"), space)
    result = space["result"]
    assert result.probes and not all(p.diverged for p in result.probes)
    assert result.holdout is not None and "10 of the 96 training examples held out" in (
        result.holdout
    )
    assert trainer.args.learning_rate == result.peak
    trainer.args.learning_rate = before.args["learning_rate"]
    before.check()  # the search left nothing behind

    trainer.args.learning_rate = result.peak
    used, hook = _lrs_of_updates()
    try:
        exec(compile(sep, "README.md", "exec"), space)
    finally:
        hook.remove()
    assert trainer.state.global_step == 560
    expected = _hf_schedule(trainer.args, result.peak, 560)
    assert expected[0] == 0.0 and expected[56] == pytest.approx(result.peak)  # 56 warmup steps
    assert used == pytest.approx(expected, rel=1e-12, abs=1e-18)
    assert result.train_schedule().table(0, 560) == pytest.approx(expected, rel=1e-12, abs=1e-18)


def test_tune_lr_on_a_classifier_scores_the_probes_with_compute_metrics(tmp_path: Path) -> None:
    calls: list[int] = []

    def accuracy(p: Any) -> dict[str, float]:
        assert p.predictions.shape == (len(p.label_ids), 2)  # one evaluation batch's logits
        calls.append(len(p.label_ids))
        return _accuracy(p)

    # four evaluation batches: probes of (288 - 100 - 6 * 4/3) // 5 = 36 = 576 / 16 updates
    args = _args(
        tmp_path, max_steps=576, lr_scheduler_type="cosine", metric_for_best_model="accuracy"
    )
    trainer = transformers.Trainer(
        model=_bert(),
        args=args,
        train_dataset=_Labelled(256, 0),
        eval_dataset=_Labelled(64, 1),
        compute_metrics=accuracy,
    )
    before = _As(trainer)
    result = lh.tune_lr(trainer, budget=0.5)
    before.check()
    assert result.score_name == "metric" and result.maximize
    assert result.holdout is None
    scored = [p for p in result.probes if not p.diverged]
    assert scored
    assert calls and set(calls) == {16}  # per evaluation batch: 64 examples in batches of 16
    assert len(calls) == 4 * len(scored)
    for p in scored:
        assert 0.0 <= p.score <= 1.0
        assert p.score * 64 == pytest.approx(round(p.score * 64), abs=1e-9)  # k of 64 right
    assert result.train_schedule().table(0, 576) == pytest.approx(
        _hf_schedule(args, result.peak, 576), rel=1e-12, abs=1e-18
    )


def test_every_probe_trains_on_the_same_batches(tmp_path: Path) -> None:
    """Six batches an epoch and probes longer than that: each probe starts from the same
    epoch of the Trainer's shuffling loader, whatever the runs before it went through (probes of
    at least (280 - 100 - 6 / 3) // 5 = 35 = 560 / 16 updates: one evaluation batch)."""
    model = _gpt2()
    trainer = transformers.Trainer(
        model=model,
        args=_args(tmp_path, max_steps=560),
        train_dataset=_Few(48),
        eval_dataset=_Few(16, start=48),
    )
    batches: list[tuple[int, ...]] = []

    def record(module: Any, args: Any, kwargs: Any) -> None:
        if module.training:
            batches.append(tuple(kwargs["input_ids"][:, 0].tolist()))

    hook = model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        result = lh.tune_lr(trainer, budget=0.5)
    finally:
        hook.remove()
    start = len(result.range_test.lrs) + (result.range_test.extended_from or 0)
    runs = []
    for p in result.probes:
        if p.diverged:
            break
        runs.append(batches[start : start + p.steps])
        start += p.steps
    assert len(runs) >= 2 and len(runs[0]) > 6
    assert all(run == runs[0][: len(run)] for run in runs)
    assert len(set(runs[0][:6])) == 6 and runs[0][6:12] != runs[0][:6]  # a new order each epoch


def test_the_score_is_the_trainers_own_evaluation(tmp_path: Path) -> None:
    """At a learning rate of 1e-12 the model does not change: every step's validation loss and
    accuracy are those trainer.evaluate() gives."""
    trainer = transformers.Trainer(
        model=_bert(),
        args=_args(tmp_path, max_steps=10, metric_for_best_model="accuracy"),
        train_dataset=_Labelled(64, 0),
        eval_dataset=_Labelled(40, 1),  # batches of 16, 16 and 8
        compute_metrics=_accuracy,
    )
    own = trainer.evaluate()
    before = _As(trainer)
    result = lh.range_test(trainer, steps=10, start_lr=1e-13, end_lr=1e-12, validate=True, extend=1)
    before.check()
    assert result.val_losses is not None and result.metrics is not None
    assert len(result.metrics) == 10
    assert list(result.metrics) == pytest.approx([own["eval_accuracy"]] * 10, abs=1e-12)
    assert list(result.val_losses) == pytest.approx([own["eval_loss"]] * 10, rel=1e-5)


def test_weight_decay_groups_accumulation_and_clipping_reach_the_updates(tmp_path: Path) -> None:
    model = _gpt2()
    args = _args(tmp_path, max_steps=50, weight_decay=0.1, gradient_accumulation_steps=3,
                 max_grad_norm=1e-3)  # fmt: skip
    trainer = transformers.Trainer(model=model, args=args, train_dataset=_Tokens())
    expected = trainer.create_optimizer()
    groups = [(g["weight_decay"], {id(p) for p in g["params"]}) for g in expected.param_groups]
    trainer.optimizer = None
    assert [wd for wd, _ in groups] == [0.1, 0.0] and all(ids for _, ids in groups)
    assert len(groups[1][1]) > 10  # biases and layer norms: the Trainer's no-decay group

    seen: list[Any] = []

    def record(o: torch.optim.Optimizer, a: Any, kw: Any) -> None:
        grads = [p.grad for g in o.param_groups for p in g["params"] if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        got = [(g["weight_decay"], {id(p) for p in g["params"]}) for g in o.param_groups]
        seen.append((type(o), got, float(norm)))

    forwards = [0]

    def count(module: Any, inputs: Any) -> None:
        forwards[0] += module.training

    hook = register_optimizer_step_pre_hook(record)
    forward = model.register_forward_pre_hook(count)
    try:
        lh.range_test(trainer, steps=10, start_lr=1e-6, end_lr=1e-4, extend=1)
    finally:
        hook.remove()
        forward.remove()
    assert len(seen) == 10
    assert forwards[0] == 30  # three batches per update
    for kind, got, norm in seen:
        assert kind is type(expected)
        assert got == groups
        assert norm == pytest.approx(1e-3, rel=1e-3)  # clipped at every update


def test_bf16_runs_the_forward_in_bf16(tmp_path: Path) -> None:
    model = _bert()
    trainer = transformers.Trainer(
        model=model, args=_args(tmp_path, max_steps=50, bf16=True), train_dataset=_Labelled(64, 0)
    )
    dtypes: list[torch.dtype] = []
    hook = model.classifier.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    before = _As(trainer)
    try:
        lh.range_test(trainer, steps=10, start_lr=1e-6, end_lr=1e-4, extend=1)
    finally:
        hook.remove()
    before.check()
    assert dtypes == [torch.bfloat16] * 10


def test_a_trainer_subclass_trains_its_own_loss(tmp_path: Path) -> None:
    class Doubled(transformers.Trainer):  # type: ignore[misc]
        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                         **kw: Any) -> Any:  # fmt: skip
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True, **kw)
            return (2 * loss, outputs) if return_outputs else 2 * loss

    trainer = Doubled(model=_gpt2(), args=_args(tmp_path, max_steps=50), train_dataset=_Tokens())
    before = _As(trainer)
    result = lh.range_test(trainer, steps=10, start_lr=1e-7, end_lr=1e-6, extend=1)
    before.check()
    assert result.losses[0] == pytest.approx(2 * float(torch.log(torch.tensor(32.0))), abs=0.6)


def test_a_seq2seq_trainer_is_tuned_on_its_evaluation_loss(tmp_path: Path) -> None:
    """A tiny T5 learning to copy its input, in a Seq2SeqTrainer: no metric, so the probes are
    scored on the evaluation loss prediction_step gives (two evaluation batches: probes of at
    least (280 - 100 - 6 * 2/3) // 5 = 35 = 560 / 16 updates)."""
    transformers.set_seed(0)
    config = transformers.T5Config(
        vocab_size=32, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
        decoder_start_token_id=0, pad_token_id=0,
    )  # fmt: skip
    model = transformers.T5ForConditionalGeneration(config)
    args = transformers.Seq2SeqTrainingArguments(
        output_dir=str(tmp_path), max_steps=560, per_device_train_batch_size=8,
        per_device_eval_batch_size=16, report_to=[], use_cpu=True, save_strategy="no",
        disable_tqdm=True, seed=0,
    )  # fmt: skip
    trainer = transformers.Seq2SeqTrainer(
        model=model, args=args, train_dataset=_Few(64), eval_dataset=_Few(32, start=64)
    )
    before = _As(trainer)
    result = lh.tune_lr(trainer, budget=0.5)
    before.check()
    assert result.score_name == "val_loss" and not result.maximize
    scored = [p for p in result.probes if not p.diverged]
    assert scored and result.holdout is None
    assert all(p.score == p.val_loss and 0 < p.score < math.log(32) for p in scored)


@pytest.mark.parametrize(
    ("kind", "warmup"),
    [
        ("linear", {"warmup_steps": 7}),
        ("linear", _warmup_ratio(0.1)),
        ("linear", {}),
        ("cosine", {"warmup_steps": 7}),
        ("cosine", _warmup_ratio(0.15)),
        ("constant", {"warmup_steps": 7}),
        ("constant_with_warmup", {"warmup_steps": 7}),
        ("constant_with_warmup", _warmup_ratio(0.1)),
        ("polynomial", _warmup_ratio(0.1)),
        ("cosine_with_restarts", {"warmup_steps": 7}),
    ],
)
def test_the_schedule_is_the_trainers(tmp_path: Path, kind: str, warmup: dict[str, Any]) -> None:
    args = _args(tmp_path, lr_scheduler_type=kind, **warmup)
    make = lh.trainer_schedule(args, 50)
    for peak in (3e-5, 0.2):
        assert make(peak, 50).table(0, 50) == pytest.approx(
            _hf_schedule(args, peak, 50), rel=1e-12, abs=1e-18
        )
    if kind in ("linear", "cosine", "constant", "constant_with_warmup"):
        assert "custom" not in repr(make(1e-3, 50))  # lrkit's own schedules


@pytest.mark.parametrize(("warmup", "probe_warmup"), [({"warmup_steps": 10}, 5), (None, 3)])
def test_a_shorter_run_keeps_the_warmups_share(
    tmp_path: Path, warmup: dict[str, Any] | None, probe_warmup: int
) -> None:
    """A probe of 25 updates for a run of 50: 10 warmup steps become 5; a ratio of 0.1 gives
    ceil(2.5) = 3, as the Trainer would count a run of 25."""
    args = _args(tmp_path, **(warmup if warmup is not None else _warmup_ratio(0.1)))
    probe = lh.trainer_schedule(args, 50)(1.0, 25)
    values = probe.table(0, 25)
    ramp = next(i for i, v in enumerate(values) if v == pytest.approx(1.0))
    assert ramp == probe_warmup
    assert values[0] == 0.0 and values[-1] > 0


@pytest.mark.parametrize(
    ("epochs", "accumulation", "max_steps", "total"),
    [
        (2.5, 5, -1, 8),  # 12 batches of 8: 3 updates an epoch (5, 5 and 2 batches)
        (1.0, 1, -1, 12),
        (3.0, 7, -1, 6),
        (0.3, 1, -1, 4),  # ceil(3.6)
        (3.0, 5, 5, 5),  # max_steps, when set, comes first
    ],
)
def test_total_steps_counts_the_updates_as_the_trainer_does(
    tmp_path: Path, epochs: float, accumulation: int, max_steps: int, total: int
) -> None:
    args = _args(
        tmp_path,
        num_train_epochs=epochs,
        gradient_accumulation_steps=accumulation,
        max_steps=max_steps,
    )
    trainer = transformers.Trainer(model=_gpt2(), args=args, train_dataset=_Tokens())
    before = _As(trainer)
    assert lh.total_steps(trainer) == total
    before.check()
    if hasattr(trainer, "set_initial_training_values"):  # the Trainer's own count
        counted = trainer.set_initial_training_values(args, trainer.get_train_dataloader())
        assert counted[-1] == total


def test_the_optimizer_given_to_the_trainer_is_the_one_swept_and_is_restored(
    tmp_path: Path,
) -> None:
    model = _gpt2()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = transformers.Trainer(
        model=model, args=_args(tmp_path, max_steps=50), train_dataset=_Tokens(),
        optimizers=(opt, None),
    )  # fmt: skip
    stepped: list[Any] = []
    hook = register_optimizer_step_pre_hook(lambda o, a, kw: stepped.append(o))
    try:
        lh.range_test(trainer, steps=10, start_lr=1e-4, end_lr=1e-2, extend=1)
    finally:
        hook.remove()
    assert stepped == [opt] * 10
    assert trainer.optimizer is opt and trainer.lr_scheduler is None
    assert not opt.state and opt.param_groups[0]["lr"] == 0.05


def test_what_cannot_be_read_is_a_clear_error(tmp_path: Path) -> None:
    model = _gpt2()
    stream = transformers.Trainer(model=model, args=_args(tmp_path))
    stream.train_dataset = _Stream()  # the Trainer checks this in __init__ in transformers 5
    before = _As(stream)
    with pytest.raises(ValueError, match="max_steps"):
        lh.tune_lr(stream)
    with pytest.raises(ValueError, match="max_steps"):
        lh.total_steps(stream)
    before.check()

    plain = transformers.Trainer(model=model, args=_args(tmp_path), train_dataset=_Tokens())
    with pytest.raises(ValueError, match="eval_dataset"):
        lh.tune_lr(plain, holdout=None)
    with pytest.raises(ValueError, match="holdout"):
        lh.tune_lr(plain, holdout=1.5)
    with pytest.raises(TypeError, match=r"transformers\.Trainer"):
        lh.range_test(model)

    no_metric = transformers.Trainer(
        model=model,
        args=_args(tmp_path, metric_for_best_model="accuracy"),
        train_dataset=_Tokens(),
        eval_dataset=_Tokens(),
    )
    with pytest.raises(ValueError, match="compute_metrics"):
        lh.tune_lr(no_metric)

    opt = torch.optim.AdamW(model.parameters())
    own = transformers.Trainer(
        model=model,
        args=_args(tmp_path),
        train_dataset=_Tokens(),
        eval_dataset=_Tokens(),
        optimizers=(opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)),
    )
    with pytest.raises(ValueError, match="schedule=lambda peak, steps"):
        lh.tune_lr(own)

    plateau = _args(tmp_path, lr_scheduler_type="reduce_lr_on_plateau", eval_strategy="steps")
    with pytest.raises(ValueError, match="follows a metric"):
        lh.trainer_schedule(plateau, 100)

    fp16 = transformers.Trainer(
        model=model, args=_args(tmp_path, fp16=True), train_dataset=_Tokens()
    )
    before = _As(fp16)
    with pytest.raises(ValueError, match="CUDA"):
        lh.range_test(fp16)
    before.check()
