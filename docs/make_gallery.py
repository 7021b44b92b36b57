"""Draw the README's gallery with the ``lrkit schedule`` command itself.

python docs/make_gallery.py     (or: make gallery)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "gallery"

GALLERY: dict[str, list[str]] = {
    "one_cycle": ["one-cycle", "--peak", "0.8", "--steps", "1000"],
    "one_cycle_three_phase": ["one-cycle", "--peak", "0.8", "--steps", "1000", "--three-phase"],
    "triangular": ["triangular", "--peak", "0.1", "--steps", "3000", "--step-size", "250"],
    "triangular2": ["triangular2", "--peak", "0.1", "--steps", "3000", "--step-size", "250"],
    "exp_range": [
        "exp-range",
        "--peak",
        "0.1",
        "--steps",
        "3000",
        "--step-size",
        "250",
        "--gamma",
        "0.9994",
    ],
    "hann_window": [
        "triangular",
        "--peak",
        "0.1",
        "--steps",
        "3000",
        "--step-size",
        "250",
        "--window",
        "hann",
    ],
    "welch_window": [
        "triangular",
        "--peak",
        "0.1",
        "--steps",
        "3000",
        "--step-size",
        "250",
        "--window",
        "welch",
    ],
    "cosine": ["cosine", "--peak", "0.1", "--steps", "1000"],
    "warmup_cosine": ["warmup-cosine", "--peak", "0.1", "--steps", "1000", "--warmup-steps", "100"],
    "sgdr": [
        "sgdr",
        "--peak",
        "0.1",
        "--steps",
        "1500",
        "--cycle-steps",
        "100",
        "--cycle-mult",
        "2",
    ],
    "wsd": ["wsd", "--peak", "0.1", "--steps", "1000"],
    "multistep": ["multistep", "--peak", "0.1", "--steps", "1000", "--milestones", "500,750"],
}


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    for name, args in GALLERY.items():
        out = HERE / f"{name}.png"
        subprocess.run(
            [sys.executable, "-m", "lrkit", "schedule", *args, "--out", str(out)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"wrote {out}")
    bench = HERE.parent.parent / "benchmarks"
    if (bench.parent / "runs" / "bench-finetune" / "results.json").exists():
        subprocess.run([sys.executable, "finetune.py", "--figure-only"], check=True, cwd=bench)
        print(f"wrote {HERE / 'finetune_grid.png'} from benchmarks/finetune.py's results")


if __name__ == "__main__":
    main()
