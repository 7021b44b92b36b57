"""Write one benchmark's section into BENCHMARKS.md or README.md, leaving the rest as it is."""

from __future__ import annotations

import platform
import re
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "BENCHMARKS.md"
README = ROOT / "README.md"
HEADER = (
    "# lrkit benchmarks\n\n"
    "Each section is written by the script it names (`make bench` runs them all). Ratios are "
    "measured side by side in one run, so they hold on other machines better than the absolute "
    "times do.\n"
)


def machine() -> str:
    """One line describing where the numbers were taken."""
    return (
        f"{platform.machine()}, {torch.get_num_threads()} torch threads, Python "
        f"{platform.python_version()}, torch {torch.__version__}, {date.today().isoformat()}"
    )


def write_section(name: str, body: str, target: Path = TARGET) -> None:
    """Replace the section ``name`` of ``target`` (default BENCHMARKS.md) with ``body``.

    BENCHMARKS.md is created when missing and a new section is appended at its end. Any other
    file (README.md) must already hold the markers ``<!-- name:start -->`` and
    ``<!-- name:end -->`` where the section belongs; without them nothing is written and
    ``ValueError`` says which markers to add.
    """
    main = target == TARGET
    if not (main or target.exists()):
        raise ValueError(f"{target} does not exist; the section {name!r} goes into a file there")
    text = target.read_text() if target.exists() else HEADER
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    elif main:
        text = text.rstrip() + "\n\n" + block + "\n"
    else:
        raise ValueError(
            f"{target} has no section {name!r}: put the lines {start} and {end} where it "
            "belongs, then run again"
        )
    target.write_text(text)
