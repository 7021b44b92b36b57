"""A lean install: with only torch and numpy, lrkit imports, schedules, drives an optimizer and
runs a range test; plotting, the built-in tasks and the command line name the extra to install.

Each check runs in a fresh interpreter whose import finders find none of the optional
dependencies, so that ``import sklearn`` raises ``ModuleNotFoundError`` and
``importlib.util.find_spec("sklearn")`` returns ``None``, as when they are not installed.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

OPTIONAL = (
    "matplotlib",
    "typer",
    "rich",
    "sklearn",
    "mnist1d",
    "pytorch_lightning",
    "lightning",
    "transformers",
    "keras",
    "ray",
)

BLOCKER = f"""
import sys

ATTEMPTED = []


class _NotInstalled:
    \"\"\"Wraps a finder of sys.meta_path and finds none of the optional packages.\"\"\"

    def __init__(self, finder):
        self._finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {OPTIONAL!r}:
            ATTEMPTED.append(name)
            return None
        return self._finder.find_spec(name, path, target)

    def __getattr__(self, attr):
        return getattr(self._finder, attr)


sys.meta_path[:] = [_NotInstalled(finder) for finder in sys.meta_path]
"""

CORE = """
import json
import math
import sys

import torch

import lrkit

imported_by_lrkit = list(ATTEMPTED)

hyper = lrkit.schedules.one_cycle(peak=0.5, total_steps=10)
param = torch.nn.Parameter(torch.zeros(2))
opt = torch.optim.SGD([param], lr=1.0, momentum=0.9)
sched = lrkit.Scheduler(opt, hyper)
seen = []
for _ in range(10):
    seen.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
    opt.step()
    sched.step()

torch.manual_seed(0)
model = torch.nn.Linear(3, 1)
x = torch.randn(64, 3)
y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 64, 8)]
before = [p.detach().clone() for p in model.parameters()]
result = lrkit.range_test(
    model,
    torch.optim.SGD(model.parameters(), lr=0.1),
    batches,
    torch.nn.functional.mse_loss,
    start_lr=1e-4,
    end_lr=1.0,
    steps=20,
)
restored = all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def error_of(call):
    try:
        call()
    except ImportError as err:
        return f"{type(err).__name__}: {err}"
    return None


print(json.dumps({
    "imported_by_lrkit": imported_by_lrkit,
    "seen": seen,
    "lr": [float(hyper.lr(t)) for t in range(10)],
    "momentum": [float(hyper.momentum(t)) for t in range(10)],
    "lrs": [float(v) for v in result.lrs],
    "losses_finite": all(math.isfinite(float(v)) for v in result.losses),
    "stop_reason": result.stop_reason,
    "restored": restored,
    "plot": error_of(lambda: result.plot("never.png")),
    "plot_schedule": error_of(lambda: lrkit.plot_schedule(hyper)),
    "mnist1d": error_of(lambda: lrkit.get_task("mnist1d-mlp")),
    "digits": error_of(lambda: lrkit.get_task("digits-cnn")),
    "lightning": error_of(lambda: __import__("lrkit.lightning")),
    "optional_loaded": sorted(m for m in sys.modules if m.partition(".")[0] in OPTIONAL),
}))
"""


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(BLOCKER) + f"OPTIONAL = {OPTIONAL!r}\n" + code],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_core_works_without_any_extra(tmp_path: Path) -> None:
    proc = _run(textwrap.dedent(CORE), tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["imported_by_lrkit"] == []
    for (lr, momentum), want_lr, want_momentum in zip(
        out["seen"], out["lr"], out["momentum"], strict=True
    ):
        assert abs(lr - want_lr) < 1e-12 and abs(momentum - want_momentum) < 1e-12
    assert abs(out["lr"][2] - 0.5) < 1e-12  # the peak, at 30% of 10 steps
    assert abs(out["lr"][0] - 0.5 / 25) < 1e-12 and out["momentum"][0] == 0.95
    lrs = out["lrs"]
    assert abs(lrs[0] - 1e-4) < 1e-12 and all(b > a for a, b in itertools.pairwise(lrs))
    assert out["losses_finite"] and out["restored"]
    assert out["stop_reason"] in ("completed", "diverged")
    assert out["optional_loaded"] == []
    assert out["plot"] == 'MissingExtraError: plotting needs matplotlib: pip install "lrkit[plot]"'
    assert out["plot_schedule"] == out["plot"]
    assert out["mnist1d"] == (
        "MissingExtraError: task 'mnist1d-mlp' needs mnist1d: pip install \"lrkit[tasks]\""
    )
    assert out["digits"] == (
        "MissingExtraError: task 'digits-cnn' needs scikit-learn: pip install \"lrkit[tasks]\""
    )
    assert out["lightning"] is not None and "lrkit[lightning]" in out["lightning"]


def test_the_command_line_names_its_extra(tmp_path: Path) -> None:
    proc = _run("import runpy\nrunpy.run_module('lrkit', run_name='__main__')\n", tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == 'error: the lrkit command needs typer: pip install "lrkit[cli]"\n'


def test_the_command_line_names_the_tasks_extra(tmp_path: Path) -> None:
    blocked_tasks_only = BLOCKER.replace(
        '.partition(".")[0] in', '.partition(".")[0] in ("sklearn", "mnist1d") and name in'
    )
    code = "import sys\nsys.argv = ['lrkit', 'tasks']\nfrom lrkit.cli import main\nmain()\n"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(blocked_tasks_only) + code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: task 'breast-cancer-mlp' needs scikit-learn: pip install \"lrkit[tasks]\""
    ]


def test_the_ray_backend_names_its_extra(tmp_path: Path) -> None:
    blocked_ray_only = BLOCKER.replace(
        '.partition(".")[0] in', '.partition(".")[0] == "ray" and name in'
    )
    code = textwrap.dedent(
        """
        from lrkit.experiments import RunDir, Trial, run_trials

        try:
            run_trials([Trial("a", {})], dict, RunDir("run", {}), backend="ray")
        except ImportError as err:
            print(f"{type(err).__name__}: {err}")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(blocked_ray_only) + code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == 'MissingExtraError: the Ray backend needs ray: pip install "lrkit[ray]"\n'
    assert not (tmp_path / "run" / "trials.jsonl").exists()
    assert not (tmp_path / "run" / ".lock").exists()
