"""Copy what ``lrkit demo`` found into the repository: ``docs/demo.json`` and README.md's demo
section, so that the figures the README quotes are the ones the main job printed.

python docs/update_demo.py runs/demo     (``make demo`` runs it after the demo)

``tests/test_demo.py`` checks that README.md's section is this script's rendering of
``docs/demo.json``, and that the peaks recorded there are the ones the finder gives today, so a
change to the finder cannot leave a stale figure behind.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COPY = ROOT / "docs" / "demo.json"
README = ROOT / "README.md"
START = "<!-- demo:start: written by docs/update_demo.py from the run of `make demo` -->"
END = "<!-- demo:end -->"


def collect(run_dir: Path) -> dict[str, Any]:
    """The demo run's task, settings, findings and the two peaks lrkit chose, from its folder."""
    from lrkit.experiments.report import read_findings
    from lrkit.experiments.store import RunDir
    from lrkit.finder import RangeTestResult, TuneResult

    cfg = RunDir(run_dir).config
    (tune,) = sorted((run_dir / "tune").glob("*.json"))
    (sweep,) = sorted((run_dir / "range_tests").glob("*.json"))
    tuned = TuneResult.from_json(tune)
    suggested = RangeTestResult.from_json(sweep).suggestion
    return {
        "task": cfg["task"],
        "seeds": cfg["seeds"],
        "steps": cfg["steps"],
        "tune_lr": {"budget": tuned.budget, "total_steps": cfg["steps"], "peak": tuned.peak},
        "range_test": {"suggestion": suggested},
        "findings": read_findings(run_dir),
    }


def render(found: dict[str, Any]) -> str:
    """README.md's demo section (between its markers) for the contents of ``docs/demo.json``."""
    lines = [
        START,
        f"What `make demo` printed last on this machine (task `{found['task']}`, one cycle of "
        f"{found['steps']} steps, {found['seeds']} seeds per arm):",
        "",
    ]
    lines += [f"- {line}" for line in found["findings"]]
    return "\n".join([*lines, END])


def readme_section(text: str) -> str:
    """The demo section of README.md's ``text``, markers included."""
    start = text.index(START)
    return text[start : text.index(END, start) + len(END)]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    found = collect(Path(argv[0]))
    COPY.write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
    text = README.read_text(encoding="utf-8")
    README.write_text(text.replace(readme_section(text), render(found)), encoding="utf-8")
    print(f"wrote {COPY.relative_to(ROOT)} and README.md's demo section from {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
