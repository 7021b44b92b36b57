"""Run the GPU checks (`pytest -m cuda`: mixed precision with a GradScaler, skipped steps, device
moves, the CUDA RNG restore, the trainer's bitwise resume) and record the outcome per test in
BENCHMARKS.md. Without CUDA it says so and writes nothing, so a CPU run never overwrites the
record of a GPU run.

    python benchmarks/gpu_checks.py
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import torch

from _report import machine, write_section

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device here: the GPU checks were not run and BENCHMARKS.md is unchanged")
        return 0
    pytest = ["-m", "pytest", "-m", "cuda", "-p", "no:xdist", "-v", "tests/test_cuda.py"]
    proc = subprocess.run(
        [sys.executable, *pytest],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    print(proc.stdout[-20000:], proc.stderr[-5000:], sep="\n")
    outcomes = re.findall(
        r"^(tests/test_cuda\.py::\S+) (PASSED|FAILED|SKIPPED|ERROR)", proc.stdout, re.M
    )
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "no output"
    rows = "\n".join(f"| `{name.split('::', 1)[1]}` | {result} |" for name, result in outcomes)
    body = (
        "## GPU checks\n\n"
        f"`python benchmarks/gpu_checks.py` on {torch.cuda.get_device_name(0)} "
        f"(CUDA {torch.version.cuda}; {machine()}): {summary.strip('= ')}.\n\n"
        "| check | result |\n|---|---|\n" + rows
    )
    write_section("gpu_checks", body)
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
