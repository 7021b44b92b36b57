"""Write one benchmark's section into BENCHMARKS.md, leaving the other sections as they are."""

from __future__ import annotations

import platform
import re
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "BENCHMARKS.md"
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


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of BENCHMARKS.md with ``body``."""
    text = TARGET.read_text() if TARGET.exists() else HEADER
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    TARGET.write_text(text)
