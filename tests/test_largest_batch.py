"""The largest batch that fits: the doubling search under a CPU memory limit checked against an
independent measurement (the peak resident set size of a fresh process), the exact restore, the
learning-rate advice, bad input, and the command line."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import lrkit
from lrkit.finder import BatchSizeResult, largest_batch, parse_memory
from strategies_finder import BNNet, assert_same_state, capture, make_data, pretrain

pytestmark = pytest.mark.usefixtures("one_thread")

HIDDEN = 4096
"""The test model's hidden width: its activations and their gradients take a few times
``HIDDEN * 4`` bytes per example, so the step's memory doubles with the batch."""

_MODEL = f"""
import torch
from torch import nn
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, {HIDDEN}), nn.ReLU(), nn.Linear({HIDDEN}, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
x = torch.randn(8, 64)
y = torch.randint(0, 10, (8,))
"""

# The peak resident set size of one training step at a batch size, in a fresh process: the
# kernels are warmed up at batch 8, the high-water mark is reset (Linux: clear_refs 5), and the
# step's peak is the new high-water mark minus the resident size before it.
_RSS_STEP = (
    _MODEL
    + """
import sys
torch.set_num_threads(1)

def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) * 1024

def step(size):
    index = torch.arange(size) % 8
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x[index]), y[index]).backward()
    opt.step()

step(8)
opt.state.clear()
opt.zero_grad(set_to_none=True)
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
before = status("VmRSS:")
step(int(sys.argv[1]))
print(status("VmHWM:") - before)
"""
)


def _setup() -> tuple[nn.Module, torch.optim.Optimizer, tuple[torch.Tensor, torch.Tensor]]:
    scope: dict[str, object] = {}
    exec(_MODEL, scope)  # the same model, seed and batch as the independent measurement
    return scope["model"], scope["opt"], (scope["x"], scope["y"])  # type: ignore[return-value]


def _rss_peak(size: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _RSS_STEP, str(size)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(out.stdout.strip())


@pytest.mark.skipif(
    not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's clear_refs"
)
def test_cpu_limit_gives_the_largest_doubling_under_it_by_an_independent_measure() -> None:
    model, opt, batch = _setup()
    limit = 80 * 2**20
    result = largest_batch(
        model,
        batch,
        loss_fn=nn.functional.cross_entropy,
        optimizer=opt,
        memory_limit="80MiB",
        start=64,
        max_batch=4096,
    )
    assert result.sizes == (64, 128, 256, 512, 1024, 2048)
    assert result.stop_reason == "memory_limit" and result.memory_limit == limit
    assert result.fits == (True, True, True, True, True, False)
    largest = result.largest
    assert largest == 1024
    # the step's memory doubles with the batch (activations dominate beyond a few hundred)
    peaks = [p for p in result.peaks if p is not None]
    assert all(b > a for a, b in itertools.pairwise(peaks))
    assert 1.8 < peaks[-1] / peaks[-2] < 2.1
    # independently: the parameters, plus the peak resident memory the step adds in a fresh
    # process, stay under the limit at the largest size and pass it at twice that
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    at_largest, at_double = params + _rss_peak(largest), params + _rss_peak(2 * largest)
    assert at_largest <= limit < at_double
    # and the peaks measured here agree with it, to the process overhead it adds (a few MiB)
    for size, measured in ((largest, at_largest), (2 * largest, at_double)):
        ours = result.peaks[result.sizes.index(size)]
        assert ours is not None and abs(measured - ours) < 0.2 * ours, (size, measured, ours)


def test_everything_is_restored_exactly_and_references_stay_valid() -> None:
    torch.manual_seed(0)
    model = BNNet()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    data = make_data()
    pretrain(model, opt, data)
    nn.functional.cross_entropy(model(data[0][0]), data[0][1]).backward()  # grads present
    model.eval()  # the caller's mode comes back too
    exp_avg = opt.state[model.fc1.weight]["exp_avg"]
    weight, group = model.fc1.weight, opt.param_groups[0]
    before = capture(model, opt)
    result = largest_batch(
        model,
        data[0],
        loss_fn=nn.functional.cross_entropy,
        optimizer=opt,
        memory_limit="1MiB",
        max_batch=2**14,
    )
    assert result.largest >= 32 and result.stop_reason in ("memory_limit", "max_batch")
    assert_same_state(before, capture(model, opt))
    assert opt.state[model.fc1.weight]["exp_avg"] is exp_avg
    assert model.fc1.weight is weight and opt.param_groups[0] is group


def test_advice_states_the_linear_and_square_root_rules_and_changes_nothing() -> None:
    result = BatchSizeResult(
        sizes=(64, 128, 256, 512, 1024),
        peaks=(1, 2, 4, 8, 16),
        largest=512,
        stop_reason="memory_limit",
        memory_limit=10,
        device="cpu",
        optimizer="SGD",
        rule="linear",
    )
    advice = result.advice(64, 0.1)
    assert advice.batch == 512 and advice.factor == 8.0
    assert advice.linear_lr == pytest.approx(0.8) and advice.sqrt_lr == pytest.approx(0.1 * 8**0.5)
    assert advice.rule == "linear" and advice.lr == advice.linear_lr
    assert "Goyal" in advice.text and "0.8" in advice.text and "nothing was changed" in advice.text
    smaller = result.advice(64, 0.1, batch=256)
    assert smaller.linear_lr == pytest.approx(0.4) and smaller.sqrt_lr == pytest.approx(0.2)
    with pytest.raises(ValueError, match="current_lr"):
        result.advice(64, -1.0)
    assert BatchSizeResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result

    model, _, batch = _setup()
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    found = largest_batch(
        model, batch, loss_fn=nn.functional.cross_entropy, optimizer=adam, memory_limit="16MiB"
    )
    advice = found.advice(8, 1e-3)
    assert found.optimizer == "Adam" and advice.rule == "sqrt"
    assert advice.lr == pytest.approx(1e-3 * math.sqrt(found.largest / 8))
    assert adam.param_groups[0]["lr"] == 1e-3 and not adam.state  # advice, never applied


def test_dict_batches_go_through_step_fn() -> None:
    model, _, (x, y) = _setup()
    seen: list[int] = []

    def step_fn(m: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        seen.append(len(batch["x"]))
        assert torch.equal(batch["x"][8:16], x) and batch["scale"].dim() == 0
        return nn.functional.cross_entropy(m(batch["x"]) * batch["scale"], batch["y"])

    found = largest_batch(
        model,
        {"x": x, "y": y, "scale": torch.tensor(1.0)},
        step_fn=step_fn,
        memory_limit="12MiB",
        start=16,
    )
    assert seen == list(found.sizes) and found.optimizer is None
    assert found.sizes[0] == 16 and found.largest in found.sizes


def test_bad_input_is_refused_before_anything_changes() -> None:
    model, opt, (x, y) = _setup()
    before = capture(model, opt)
    ce = nn.functional.cross_entropy

    def refused(match: str, *args: object, **kwargs: object) -> None:
        with pytest.raises((ValueError, TypeError), match=match):
            largest_batch(*args, **kwargs)  # type: ignore[arg-type]
        assert_same_state(before, capture(model, opt))

    refused("empty", model, (x[:0], y[:0]), loss_fn=ce, memory_limit="1GiB")
    refused("no tensor", model, ([1.0, 2.0], [0, 1]), loss_fn=ce, memory_limit="1GiB")
    refused("must yield", model, x, loss_fn=ce, memory_limit="1GiB")
    refused("step_fn", model, {"x": x, "y": y}, loss_fn=ce, memory_limit="1GiB")
    refused("give memory_limit", model, (x, y), loss_fn=ce, optimizer=opt)
    refused("already hold", model, (x, y), loss_fn=ce, memory_limit="100KiB")
    refused("unit", model, (x, y), loss_fn=ce, memory_limit="2 gigs")
    refused("max_batch", model, (x, y), loss_fn=ce, memory_limit="1GiB", start=64, max_batch=32)
    refused("torch.nn.Module", "model", (x, y), loss_fn=ce, memory_limit="1GiB")
    # a first size that does not fit is found by running it; everything is restored first
    refused("even the first batch size, 512", model, (x, y), loss_fn=ce, optimizer=opt,
            memory_limit="8MiB", start=512)  # fmt: skip


def test_the_model_and_optimizer_go_through_the_shared_public_check() -> None:
    import ast

    from lrkit._checks import check_model_optimizer
    from lrkit.finder import batch_size

    model, _, (x, y) = _setup()
    stray = torch.optim.SGD(nn.Linear(64, 2).parameters(), lr=0.1)
    match = "2 of the optimizer's parameters are not parameters of the model"
    with pytest.raises(ValueError, match=match):
        check_model_optimizer(model, stray)
    with pytest.raises(ValueError, match=match):
        largest_batch(model, (x, y), loss_fn=nn.functional.cross_entropy, optimizer=stray,
                      memory_limit="1GiB")  # fmt: skip
    with pytest.raises(TypeError, match=r"optimizer must be a torch\.optim\.Optimizer"):
        check_model_optimizer(model, "sgd")  # type: ignore[arg-type]
    tree = ast.parse(Path(batch_size.__file__).read_text())
    private = [
        a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for a in node.names
        if a.name.startswith("_")
    ]
    assert private == []


def test_parse_memory_reads_units() -> None:
    assert parse_memory("2GiB") == 2 * 2**30 and parse_memory("1.5 MB") == 1_500_000
    assert parse_memory("512kib") == 512 * 1024 and parse_memory(4096) == 4096
    for bad in ("", "12", "1 XB", "-1MiB", "0B"):
        with pytest.raises(ValueError):
            parse_memory(bad)
    with pytest.raises(TypeError):
        parse_memory(1.5)  # type: ignore[arg-type]


def test_exported_from_lrkit() -> None:
    assert lrkit.largest_batch is largest_batch and lrkit.BatchSizeResult is BatchSizeResult


@pytest.mark.slow
def test_cli_prints_the_largest_batch_and_writes_json(tmp_path: Path) -> None:
    def lrkit_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lrkit", "largest-batch", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        )

    ok = lrkit_cli("--task", "breast-cancer-mlp", "--memory-limit", "100KiB", "--out", "lb")
    assert ok.returncode == 0, ok.stderr
    found = json.loads((tmp_path / "lb" / "largest_batch.json").read_text())
    sizes, peaks, largest = found["sizes"], found["peaks"], found["largest"]
    assert sizes[0] == 32 and all(b == 2 * a for a, b in itertools.pairwise(sizes))
    assert found["stop_reason"] == "memory_limit" and found["optimizer"] == "SGD"
    assert peaks[-1] > 100 * 2**10 >= peaks[sizes.index(largest)] and largest == sizes[-2]
    assert largest * 2 <= found["data_size"] == 455  # the limit, not the data, stopped it
    assert f"largest batch that fits: {largest}" in ok.stdout
    assert f"32 -> {largest}" in ok.stdout and "Goyal" in ok.stdout
    assert "USDT" not in ok.stderr and "profiler" not in ok.stderr
    bad = lrkit_cli("--task", "breast-cancer-mlp", "--out", "lb2")
    assert bad.returncode == 2 and "give --memory-limit" in bad.stderr
    assert not (tmp_path / "lb2").exists()


def test_data_size_caps_the_search_and_the_advice_says_so() -> None:
    model, opt, batch = _setup()
    before = capture(model, opt)
    ce = nn.functional.cross_entropy
    found = largest_batch(
        model, batch, loss_fn=ce, optimizer=opt, memory_limit="1GiB", data_size=100
    )
    assert found.sizes == (8, 16, 32, 64) and found.largest == 64  # 128 > 100 examples
    assert found.stop_reason == "data_size" and found.data_size == 100
    advice = found.advice(8, 0.1)
    assert advice.batch == 64 and advice.linear_lr == pytest.approx(0.8)
    assert "8 -> 64 (capped by the data: 100 training examples; the next size, 128" in advice.text
    with pytest.raises(ValueError, match=r"batch 128 is larger than the data \(100 training"):
        found.advice(8, 0.1, batch=128)
    assert "capped" not in found.advice(8, 0.1, batch=32).text
    assert BatchSizeResult.from_dict(json.loads(json.dumps(found.to_dict()))) == found
    assert_same_state(before, capture(model, opt))
    unknown = largest_batch(model, batch, loss_fn=ce, memory_limit="1GiB", max_batch=256)
    assert unknown.sizes[-1] == 256 and unknown.stop_reason == "max_batch"
    assert unknown.data_size is None and "capped" not in unknown.advice(8, 0.1).text
    for bad in (4, 0, 100.0, True):
        with pytest.raises(ValueError, match="data_size must be the number of training"):
            largest_batch(model, batch, loss_fn=ce, memory_limit="1GiB", data_size=bad)  # type: ignore[arg-type]
    assert_same_state(before, capture(model, opt))


@pytest.mark.slow
def test_cli_never_advises_a_batch_larger_than_the_tasks_data(tmp_path: Path) -> None:
    args = ["largest-batch", "--task", "wine-mlp", "--memory-limit", "1GiB", "--out", "lb"]
    done = subprocess.run(
        [sys.executable, "-m", "lrkit", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stderr
    found = json.loads((tmp_path / "lb" / "largest_batch.json").read_text())
    assert found["sizes"] == [32, 64, 128] and found["largest"] == 128  # wine: 142 examples
    assert found["stop_reason"] == "data_size" and found["data_size"] == 142
    out = " ".join(done.stdout.split())
    assert "largest batch that fits: 128 (stopped: the next size would be larger than the " in out
    assert "data, 142 training examples, limit 1GiB)" in out
    assert "batch 32 -> 128 (capped by the data: 142 training examples;" in out
