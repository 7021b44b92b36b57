"""The transfer recipe: the MNIST-1D halves, a backbone loaded and frozen with a new head, fit
leaving frozen parameters out of the optimizer, the findings' spread and verdict, and the recipe
end to end through the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lrkit.engine import save_atomic
from lrkit.experiments import RunDir, TrialRecord, group_arms, run_recipe
from lrkit.experiments.recipes import ADAPTIVE, RECIPES, Context
from lrkit.experiments.transfer import (
    TRANSFER_PAIRS,
    Pretrained,
    load_backbone,
    optimizer_spread,
    pretrain,
    pretrained_task,
)
from lrkit.experiments.trial import decode_lr
from lrkit.tasks import get_task
from lrkit.train import fit
from lrkit.train.config import TrainConfig, resolve
from lrkit.train.history import History

pytestmark = pytest.mark.usefixtures("one_thread")

SOURCE, TARGET = "mnist1d-0to4-paper", "mnist1d-5to9-paper"


def test_the_source_and_target_are_the_two_halves_of_mnist1d_by_digit() -> None:
    src, tgt, whole = get_task(SOURCE), get_task(TARGET), get_task("mnist1d-cnn")
    assert set(src.data.y_train.tolist()) == {0, 1, 2, 3, 4} == set(src.data.y_val.tolist())
    assert set(tgt.data.y_train.tolist()) == {5, 6, 7, 8, 9} == set(tgt.data.y_val.tolist())
    assert len(src.data.x_train) + len(tgt.data.x_train) == len(whole.data.x_train) == 4000
    assert len(src.data.x_val) + len(tgt.data.x_val) == len(whole.data.x_val) == 1000
    assert TRANSFER_PAIRS[TARGET].source == SOURCE


def _fake_backbone(path: Path, seed: int = 7) -> dict[str, torch.Tensor]:
    state = get_task(SOURCE).make_model(seed).state_dict()
    save_atomic({"format": "lrkit.backbone/1", "source": SOURCE, "state": state}, path)
    return state


def _spec(path: Path) -> dict[str, object]:
    pair = TRANSFER_PAIRS[TARGET]
    return {"source": SOURCE, "weights": str(path), "frozen": pair.frozen, "head": pair.head}


def test_the_backbone_is_loaded_frozen_and_the_head_is_new(tmp_path: Path) -> None:
    backbone = _fake_backbone(tmp_path / "b.pt")
    target = get_task(TARGET)
    task = pretrained_task(target, _spec(tmp_path / "b.pt"))
    assert task.name == f"{TARGET}, backbone pretrained here on {SOURCE}"
    model, fresh = task.make_model(3), target.make_model(3)
    for name, p in model.named_parameters():
        module = name.split(".")[0]
        if module == "8":  # the head: the target's own initialisation for this seed
            assert torch.equal(p, fresh.get_parameter(name)) and p.requires_grad
            assert not torch.equal(p, backbone[name])
        else:  # the backbone: frozen but for the last convolution
            assert torch.equal(p, backbone[name])
            assert p.requires_grad == (module == "5"), name
    # fit's optimizer holds the trainable parameters only
    plan = resolve(TrainConfig(task=task, steps=1))
    opt, _ = plan.build()
    held = [id(p) for g in opt.param_groups for p in g["params"]]
    trainable = [
        *plan.model.get_submodule("5").parameters(),
        *plan.model.get_submodule("8").parameters(),
    ]
    assert held == [id(p) for p in trainable]


def test_fit_leaves_frozen_parameters_out_and_refuses_a_model_with_nothing_to_train() -> None:
    target = get_task(TARGET)
    model = target.make_model(0)
    model.get_submodule("1").requires_grad_(False)
    plan = resolve(TrainConfig(task=target, model=model, steps=1))
    opt, _ = plan.build()
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    assert held == {id(p) for p in model.parameters() if p.requires_grad}
    frozen = [p.detach().clone() for p in model.get_submodule("1").parameters()]
    fit(target, model=model, steps=5, optimizer="adam", num_threads=1)
    after = list(model.get_submodule("1").parameters())
    assert all(torch.equal(a, b) for a, b in zip(frozen, after, strict=True))
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no parameter that requires grad"):
        fit(target, model=model, steps=5)


def test_a_cached_backbone_is_reused(tmp_path: Path) -> None:
    _fake_backbone(tmp_path / "backbone.pt")
    cached = Pretrained(tmp_path / "backbone.pt", SOURCE, 5, "sgd", 0.1, 0, "accuracy", 0.5, 1.0)
    (tmp_path / "backbone.json").write_text(json.dumps(cached.to_dict()))
    assert pretrain(SOURCE, tmp_path) == cached  # not trained again
    assert cached.label == f"pretrained here on {SOURCE}"


def test_a_backbone_that_does_not_fit_the_model_is_refused(tmp_path: Path) -> None:
    _fake_backbone(tmp_path / "b.pt")
    with pytest.raises(ValueError, match="does not fit the model"):
        load_backbone(get_task("digits-cnn").make_model(0), tmp_path / "b.pt", ["0"], [])
    with pytest.raises(ValueError, match="no module '42'"):
        load_backbone(get_task(TARGET).make_model(0), tmp_path / "b.pt", ["42"], ["8"])
    (tmp_path / "other.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read the backbone"):
        load_backbone(get_task(TARGET).make_model(0), tmp_path / "other.pt", ["1"], ["8"])


def _arm(label: str, finals: list[float]) -> list[TrialRecord]:
    return [
        TrialRecord(
            f"{label}/seed={seed}",
            {"arm": label},
            "ok",
            {"history": History(metric_name="accuracy", seed=seed, final_metric=v).to_dict()},
        )
        for seed, v in enumerate(finals)
    ]


def test_findings_compare_the_spread_between_optimizers(tmp_path: Path) -> None:
    names = [*ADAPTIVE, "sgd+clr"]
    pre = [0.90, 0.91, 0.88, 0.92, 0.89, 0.93]  # spans 0.05
    scratch = [0.60, 0.70, 0.65, 0.80, 0.55, 0.90]  # spans 0.35
    records = []
    for name, a, b in zip(names, pre, scratch, strict=True):
        records += _arm(f"{name} (pretrained)", [a - 0.01, a + 0.01])
        records += _arm(f"{name} (from scratch)", [b - 0.01, b + 0.01])
    arms = group_arms(records)
    assert optimizer_spread(arms[::2])["range"] == pytest.approx(0.05)
    ctx = Context(get_task(TARGET), 2, 10, tmp_path)
    lines = RECIPES["transfer"].findings(ctx, arms)
    assert any("pretrained: their mean final accuracy spans 0.05 " in x for x in lines)
    assert any("from scratch: their mean final accuracy spans 0.35 " in x for x in lines)
    assert (
        lines[-1].startswith("verdict: the claim held") and "0.35 from scratch to 0.05" in lines[-1]
    )
    one_way = [r for r in records if "pretrained" not in r.key or "adam" in r.key]
    assert (
        RECIPES["transfer"].findings(ctx, group_arms(one_way))[-1].startswith("verdict: not judged")
    )

    def swap(label: str) -> str:
        a, b = "(pretrained)", "(from scratch)"
        return label.replace(a, "?").replace(b, a).replace("?", b)

    reversed_ = [
        TrialRecord(r.key, {"arm": swap(r.config["arm"])}, r.status, r.result) for r in records
    ]
    assert (
        RECIPES["transfer"]
        .findings(ctx, group_arms(reversed_))[-1]
        .startswith("verdict: the claim did not hold")
    )


def test_a_task_without_a_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"Targets: {TARGET}"):
        run_recipe("transfer", "digits-cnn", seeds=1, out=tmp_path / "r", workers=1)


@pytest.mark.slow
def test_transfer_recipe_end_to_end_through_the_cli(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "lrkit", "run", "transfer", "--task", TARGET]
    cmd += ["--seeds", "1", "--epochs", "1", "--out", "tr"]
    proc = subprocess.run(
        cmd,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = tmp_path / "tr"
    records = {r.key: r for r in RunDir(run).records()}
    arms = {f"{o} ({v})" for o in [*ADAPTIVE, "sgd+clr"] for v in ("pretrained", "from scratch")}
    assert {k.split("/")[0] for k in records} == arms and len(records) == 12
    assert all(r.status == "ok" for r in records.values())
    label = f"pretrained here on {SOURCE}"
    meta = json.loads((run / "pretrained" / "backbone.json").read_text())
    assert meta["label"] == label and meta["source"] == SOURCE and meta["metric"] > 0.9
    assert (run / "range_tests" / "sgd-pretrained-batch100.json").exists()
    assert (run / "range_tests" / "sgd-batch100.json").exists()
    for key, rec in records.items():
        task = rec.result["history"]["task"]
        if "(pretrained)" in key:
            assert rec.config["pretrained"]["label"] == label and task.endswith(label)
        else:
            assert "pretrained" not in rec.config and task == TARGET
    findings = json.loads((run / "findings.json").read_text())
    assert label in findings[0] and findings[-1].startswith("verdict:")
    assert sum("spread between the optimizers" in x for x in findings) == 2
    assert label in (run / "report.html").read_text() and "verdict:" in proc.stdout

    # the same trial in this process: the frozen layers kept the pretrained weights, the last
    # block and the new head trained
    rec = records["adam (pretrained)/seed=0"]
    spec = rec.config["pretrained"]
    task = pretrained_task(get_task(TARGET), spec)
    model, start = task.make_model(0), task.make_model(0)
    history = fit(
        task,
        model=model,
        optimizer="adam",
        lr=decode_lr(rec.config["lr"]),
        steps=rec.config["steps"],
        eval_every=rec.config["eval_every"],
        target=rec.config["target"],
        seed=0,
        num_threads=1,
    )
    assert history.loss == rec.result["history"]["loss"]  # exactly the CLI's trial
    pretrained = torch.load(spec["weights"], weights_only=True)["state"]
    for name, p in model.named_parameters():
        module = name.split(".")[0]
        if module in spec["frozen"]:
            assert torch.equal(p, pretrained[name]), name
        else:
            assert not torch.equal(p, start.get_parameter(name)), name
