"""The GPU paths: mixed precision with a GradScaler, skipped steps, device moves, the CUDA RNG
restore and the trainer's resume on a CUDA device. Skipped without CUDA; `benchmarks/gpu_checks.py`
runs them on a GPU machine and records the outcome in BENCHMARKS.md."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import lrkit
from lrkit.engine import Engine, move_to_device

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CUDA = torch.device("cuda")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 4)).to(CUDA)


def _batches(n: int = 20) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(8, 16, generator=g), torch.randint(0, 4, (8,), generator=g)) for _ in range(n)
    ]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_update_with_scaler_steps(dtype: torch.dtype) -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    before = [p.detach().clone() for p in model.parameters()]
    with Engine(
        model, opt, loss_fn=nn.functional.cross_entropy, scaler=scaler, autocast_dtype=dtype
    ) as engine:
        update = engine.update(iter(_batches()))
    assert update.status == "applied" and math.isfinite(update.loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_a_step_the_scaler_skips_is_reported_and_not_applied() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    handle = model[0].weight.register_hook(lambda g: torch.full_like(g, math.inf))
    before = [p.detach().clone() for p in model.parameters()]
    with Engine(
        model,
        opt,
        loss_fn=nn.functional.cross_entropy,
        scaler=torch.amp.GradScaler("cuda"),
        autocast_dtype=torch.float16,
    ) as engine:
        update = engine.update(iter(_batches()))
    handle.remove()
    assert update.status == "skipped"
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_nested_batches_move_to_the_device() -> None:
    batch: Any = {"x": (torch.zeros(2), [torch.ones(3)]), "meta": "keep", "y": torch.zeros(2)}
    moved = move_to_device(batch, CUDA)
    assert moved["x"][0].is_cuda and moved["x"][1][0].is_cuda and moved["y"].is_cuda
    assert moved["meta"] == "keep"


def test_range_test_with_amp_restores_the_cuda_rng_and_everything_else() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda")
    torch.cuda.manual_seed_all(7)
    rng = torch.cuda.get_rng_state_all()
    params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    result = lrkit.range_test(
        model, opt, _batches(), nn.functional.cross_entropy, steps=30, scaler=scaler
    )
    assert len(result.lrs) >= 10
    assert all(torch.equal(a, b) for a, b in zip(rng, torch.cuda.get_rng_state_all(), strict=True))
    for k, v in model.state_dict().items():
        assert torch.equal(v, params[k]), k
    assert not opt.state and scaler.state_dict() == torch.amp.GradScaler("cuda").state_dict()


def test_trainer_resume_on_the_gpu_is_bitwise(tmp_path: Path) -> None:
    # Deterministic cuBLAS needs its workspace setting before CUDA starts: a fresh process.
    script = textwrap.dedent(
        f"""
        import torch
        torch.use_deterministic_algorithms(True)
        from lrkit.tasks import get_task
        from lrkit.train import fit
        task = get_task("wine-mlp")
        common = dict(steps=40, eval_every=10, device="cuda", amp=True, seed=0)
        ref = fit(task, **common)
        calls = {{"n": 0}}
        def failing(out, y):
            calls["n"] += 1
            if calls["n"] == 25:
                raise RuntimeError("killed")
            return task.loss_fn(out, y)
        d = {str(tmp_path)!r}
        try:
            fit(task, loss_fn=failing, checkpoint_every=10, checkpoint_dir=d, **common)
        except RuntimeError:
            pass
        again = fit(task, checkpoint_every=10, checkpoint_dir=d, resume=True, **common)
        assert again.loss == ref.loss, (again.loss, ref.loss)
        assert again.metric == ref.metric
        print("bitwise")
        """
    )
    env = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bitwise" in proc.stdout


def test_largest_batch_stops_at_the_out_of_memory_edge() -> None:
    """With this process held to 2 GiB of the device, the doubling search ends at an
    out-of-memory error; running the step again shows the size it returns fits and twice it
    does not; the model, optimizer and the memory in use are as before."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 8192), nn.ReLU(), nn.Linear(8192, 10)).to(CUDA)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(64, 256, device=CUDA)
    y = torch.randint(0, 10, (64,), device=CUDA)
    params = [p.detach().clone() for p in model.parameters()]
    cap = 2 * 2**30

    def step(size: int) -> None:
        index = torch.arange(size, device=CUDA) % 64
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x[index]), y[index]).backward()
        opt.step()
        torch.cuda.synchronize()

    nn.functional.cross_entropy(model(x), y).backward()  # cuBLAS sets up its workspace
    model.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    in_use = torch.cuda.memory_allocated(CUDA)
    total = torch.cuda.get_device_properties(CUDA).total_memory
    torch.cuda.set_per_process_memory_fraction(cap / total, CUDA)
    try:
        result = lrkit.largest_batch(
            model, (x, y), loss_fn=nn.functional.cross_entropy, optimizer=opt, max_batch=2**24
        )
        assert result.stop_reason == "out_of_memory" and result.peaks[-1] is None
        assert result.largest == result.sizes[-2] and result.device.startswith("cuda")
        fitted = result.peaks[-2]
        assert fitted is not None and fitted <= cap
        assert all(p.grad is None for p in model.parameters()) and not opt.state
        assert all(torch.equal(a, b) for a, b in zip(params, model.parameters(), strict=True))
        assert abs(torch.cuda.memory_allocated(CUDA) - in_use) <= 8 * 2**20  # given back
        step(result.largest)  # fits
        opt.state.clear()
        opt.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
        with pytest.raises(torch.OutOfMemoryError):
            step(2 * result.largest)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, CUDA)
        torch.cuda.empty_cache()


def test_range_test_and_tune_lr_train_fp16_with_a_scaler_and_clipping_and_restore() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda")
    seen: list[torch.dtype] = []
    model[0].register_forward_hook(lambda m, a, out: seen.append(out.dtype) if m.training else None)
    before = [p.detach().clone() for p in model.parameters()]
    settings: dict[str, Any] = {"scaler": scaler, "autocast": torch.float16, "max_grad_norm": 1.0}
    found = lrkit.range_test(
        model, opt, _batches(), nn.functional.cross_entropy, steps=30, **settings
    )
    assert len(found.lrs) > 0 and set(seen) == {torch.float16}
    # five validation batches (5/3 of an update each): whatever the range test does (at most
    # 100 updates; 256 < 300 buys no extension), probes of at least (256 - 100 - 6 * 5/3) // 5
    # = 29 updates, past a sixteenth of the run (16)
    tuned = lrkit.tune_lr(
        model, opt, _batches(40), nn.functional.cross_entropy, val_data=_batches(5),
        total_steps=256, budget=1.0, **settings,
    )  # fmt: skip
    assert tuned.probes and math.isfinite(tuned.peak)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
