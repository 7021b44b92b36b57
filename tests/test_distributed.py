"""torchrun: real ``torchrun --nproc_per_node=2`` launches (gloo on the CPU) of the range test,
the search, the task finder, ``fit`` and the ``lrkit find`` command, compared between the ranks
and with single-process runs over the same global batches.

Each launch costs seconds of process start-up, so each test is one launch that checks several
things; the scripts it runs are in ``tests/dist_scripts``. A launch that hangs is killed (with
its ranks) after ``_TIMEOUT`` seconds and fails the test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lrkit
from lrkit.engine import distributed
from lrkit.finder.peak_choice import POSITIONS

pytestmark = pytest.mark.usefixtures("one_thread")

SCRIPTS = Path(__file__).parent / "dist_scripts"
_TIMEOUT = 150


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc_per_node=2 ARGS`` on 127.0.0.1; the launcher and its ranks are
    killed together if it runs past the timeout."""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        "--master_addr=127.0.0.1", f"--master_port={_free_port()}", *args,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun {' '.join(args)} hung for {_TIMEOUT} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _launch_script(name: str, out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``dist_scripts/NAME`` on two ranks; their reports."""
    done = _torchrun([str(SCRIPTS / name), str(out)], cwd=out)
    assert done.returncode == 0, done.stderr[-4000:]
    r0, r1 = (json.loads((out / f"report_rank{r}.json").read_text()) for r in (0, 1))
    return r0, r1


def _problem() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dist_problem", SCRIPTS / "problem.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_process_group_nothing_is_exchanged() -> None:
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world(), distributed.is_writer()) == (0, 1, True)
    assert distributed.all_mean(2.5, 7) == 2.5
    assert distributed.all_sum([1.0, 2.0]) == [1.0, 2.0]
    assert distributed.all_gather("x") == ["x"] and distributed.broadcast(3) == 3
    loader = torch.utils.data.DataLoader(list(range(6)), batch_size=2, shuffle=True)
    assert distributed.shard(loader, seed=0) is loader
    assert distributed.shard_eval(loader) is loader
    with distributed.agreement("f", {"a": 1}) as fp:
        fp["b"] = 2  # nothing to agree with
    with pytest.raises(KeyError), distributed.agreement("f", {}):
        raise KeyError("local errors pass through unchanged")


def test_range_test_and_search_agree_across_ranks_and_with_one_process(tmp_path: Path) -> None:
    """Rank r trains on its half of every global batch; the single process below sees the
    batches whole, from the same initial weights.

    Tolerance: the ranks average two half-batch means (the loss, and DDP's gradients) where
    the single process takes one mean of 16, so float32 rounding differs by ~1e-7 per step. Up
    to the lowest point of the smoothed curve, where the suggestion is read, that stays below
    1e-6 (6e-7 measured): rtol 1e-5. Past it the learning rates blow the model up and the
    dynamics amplify the rounding (2e-4 to 9e-2 measured in the last steps), so there the curves
    only have to stop at the same step. The learning rates match exactly, the suggestion to
    1e-6."""
    r0, r1 = _launch_script("finder.py", tmp_path)
    for key in ("plain", "scored", "accumulated", "tune", "task", "after_errors"):
        assert r0[key] == r1[key], f"the ranks differ in {key}"
    assert r0["restored"] and r1["restored"]

    problem = _problem()
    model = problem.make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    train, val = problem.train_batches(), problem.val_batches()
    single = {
        "plain": lrkit.range_test(model, opt, train, F.cross_entropy, **problem.range_kwargs()),
        "scored": lrkit.range_test(
            model,
            opt,
            train,
            F.cross_entropy,
            val_data=val,
            metric_fn=problem.accuracy,
            **problem.range_kwargs(),
        ),
        "accumulated": lrkit.range_test(
            model, opt, train, F.cross_entropy, accumulation_steps=2, **problem.range_kwargs()
        ),
    }
    for key, one in single.items():
        got = r0[key]
        assert got["stop_reason"] == one.stop_reason == "diverged"
        np.testing.assert_array_equal(got["lrs"], one.lrs)
        low = int(np.argmin(one.smoothed)) + 1
        for curve in ("losses", "val_losses", "metrics"):
            ref = getattr(one, curve)
            if ref is None:
                assert got[curve] is None
                continue
            np.testing.assert_allclose(got[curve][:low], ref[:low], rtol=1e-5, err_msg=curve)
        assert one.suggestion is not None
        assert got["suggestion"] == pytest.approx(one.suggestion, rel=1e-6)

    tuned = lrkit.tune_lr(
        model, opt, train, F.cross_entropy, val_data=val, total_steps=200, budget=1.0, seed=0
    )
    assert len(r0["tune"]["probes"]) == len(tuned.probes) == len(POSITIONS) + 1
    for (peak, steps, score), p in zip(r0["tune"]["probes"], tuned.probes, strict=True):
        assert (peak, steps) == pytest.approx((p.peak, p.steps), rel=1e-9)
        assert score == pytest.approx(p.score, rel=1e-5)
    assert r0["tune"]["peak"] == pytest.approx(tuned.peak, rel=1e-6)

    e0, e1 = r0["errors"], r1["errors"]
    for errors in (e0, e1):
        assert "steps (rank 0: 30, rank 1: 20)" in errors["different_steps"]
        assert "end_lr (rank 0: 10.0, rank 1: 20.0)" in errors["different_steps"]
        assert "budget (rank 0: 1.0, rank 1: 0.5)" in errors["different_budget"]
        assert "not a DistributedDataParallel" in errors["not_wrapped"]
    assert e1["empty_data_on_rank_1"] == "data is empty: it yielded no batches"
    assert "rank 1 failed with ValueError: data is empty" in e0["empty_data_on_rank_1"]
    assert r0["after_errors"] == r0["plain"]  # the group still works after the failed calls

    written = sorted(p.name for p in (tmp_path / "lrkit").iterdir())
    assert written == ["cache_rank0.json", "range_rank0.json", "range_rank0.png", "tune_rank0.json"]


def test_fit_under_ddp_resumes_exactly_and_only_rank_0_writes(tmp_path: Path) -> None:
    r0, r1 = _launch_script("trainer.py", tmp_path)
    assert r0["reference"] == r1["reference"], "the ranks ended with different models/histories"
    assert r0["interrupted"] and r0["checkpoint_step"] == 16
    assert r0["resumed"]["state"] == r0["reference"]["state"]
    assert r0["resumed"]["history"] == r0["reference"]["history"]
    assert r1["resumed"] == r1["reference"]
    history = r0["reference"]["history"]
    assert history["lr"] == r0["one_cycle"] == r1["reference"]["history"]["lr"]
    assert history["eval_step"] == [5, 10, 15, 20, 25, 30] and len(history["loss"]) == 30

    # the data order: each epoch (104 examples a rank, 8 per update) a new shuffle of all 208
    # examples, split between the ranks; the resumed run replays the 3 batches of epoch 1
    # before its checkpoint (step 16) and then reads exactly what the uninterrupted run read
    o0, o1 = r0["reference_order"], r1["reference_order"]
    assert len(o0) == len(o1) == 30 * 8
    for epoch in (0, 1):
        a, b = o0[104 * epoch : 104 * (epoch + 1)], o1[104 * epoch : 104 * (epoch + 1)]
        assert sorted(a + b) == list(range(208)), f"epoch {epoch} is not split between the ranks"
    assert o0[:104] != o0[104:208] and sorted(o0[:104]) != sorted(o0[104:208])
    for r in (r0, r1):
        assert r["resumed_order"] == r["reference_order"][104:]
    val0, val1 = r0["val_rows"], r1["val_rows"]
    problem = _problem()
    everything = torch.cat([x for x, _ in problem.global_batches(4, seed=2)])[:, 0].tolist()
    assert len(val0) == len(val1) == 32 and sorted(val0 + val1) == sorted(everything)

    assert (tmp_path / "checkpoint_rank0" / "checkpoint.pt").is_file()
    assert not (tmp_path / "checkpoint_rank1").exists()
    for errors in (r0["errors"], r1["errors"]):
        assert "step (rank 0: 6, rank 1: None)" in errors["resume_from_unshared_folders"]
        assert "steps (rank 0: 6, rank 1: 7)" in errors["different_steps"]


def test_lrkit_find_under_torchrun_prints_and_writes_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _torchrun(
        ["-m", "lrkit", "find", "--task", "mnist1d-mlp", "--steps", "30", "--out", str(out)],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count("suggested learning rates") == 1
    assert done.stdout.count("mnist1d-mlp: 30 steps") == 1
    result = lrkit.RangeTestResult.from_json(out / "range_test.json")
    assert len(result.lrs) == 30 and (out / "range_test.png").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["range_test.json", "range_test.png"]
