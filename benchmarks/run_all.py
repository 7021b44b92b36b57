"""Run every benchmark in this folder; each writes its own section of BENCHMARKS.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

RUNS = [
    ["step_overhead.py"],
    ["range_test_cost.py"],
    ["tune_overhead.py"],
    ["suggestion_regret.py"],
    ["suggestion_regret.py", "--suite", "heldout"],
    ["time_to_accuracy.py"],
    ["claims.py"],  # after time_to_accuracy.py: it reads that cache
    ["ray_overhead.py"],
    ["gpu_checks.py"],
    ["finetune.py"],
    # the ground truth is data in the repository (`distribution.py truth` re-measures it: hours)
    ["distribution.py", "methods", "--half", "all"],
    ["distribution.py", "report", "--half", "all"],
]

if __name__ == "__main__":
    listed = {run[0] for run in RUNS}
    scripts = {p.name for p in HERE.glob("*.py") if not p.name.startswith("_")}
    modules = {"run_all.py", "heldout_tasks.py", "task_distribution.py"}  # imported, not run
    missing = scripts - listed - modules
    if missing:
        raise SystemExit(f"benchmarks not listed in run_all.py: {', '.join(sorted(missing))}")
    for run in RUNS:
        print(f"== {' '.join(run)}", flush=True)
        subprocess.run([sys.executable, *run], check=True, cwd=HERE)
