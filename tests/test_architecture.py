"""The layers README.md's "Architecture" section states, checked on the source: each package
imports only the floors below it, no module imports another's private names, no import cycles,
and every module and function stays readable (600 and 70 lines)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "lrkit"
SHARED = {"_checks", "_extras", "_files", "_threads", "_optimizers", "_ray"}
"""Small helper modules at the package root that any floor may use."""
ALLOWED: dict[str, set[str]] = {
    "schedules": set(),
    "driver": {"schedules"},
    "engine": set(),
    "plot": {"schedules", "engine"},
    "tasks": {"engine"},
    "finder": {"engine", "driver", "schedules", "tasks", "plot"},
    "train": {"engine", "driver", "schedules", "tasks"},
    "experiments": {"engine", "driver", "schedules", "tasks", "finder", "train", "plot"},
    "keras": {"engine", "driver", "schedules", "finder", "plot"},
    "lightning": {"engine", "driver", "schedules", "finder", "plot"},
    "huggingface": {"engine", "driver", "schedules", "finder", "plot", "tasks"},
}
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 70


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[str, str, int]]:
    """``(module imported, name imported or "", line)`` for every import of lrkit code."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target == "lrkit" or target.startswith("lrkit."):
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    yield (sub if sub in MODULES else target), alias.name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lrkit"):
                    yield alias.name, "", node.lineno


def _floor(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "lrkit"


def test_each_floor_imports_only_the_floors_below_it() -> None:
    wrong = []
    for name, path in MODULES.items():
        mine = _floor(name)
        if mine not in ALLOWED:
            continue
        for target, _, line in _imports(name, path):
            theirs = _floor(target)
            if theirs in (mine, "lrkit") or theirs in SHARED:
                continue
            if theirs not in ALLOWED[mine]:
                wrong.append(f"{path.relative_to(SRC)}:{line} ({mine}) imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_another_modules_private_names() -> None:
    wrong = [
        f"{path.relative_to(SRC)}:{line} imports {target}.{what}"
        for name, path in MODULES.items()
        for target, what, line in _imports(name, path)
        if what.startswith("_") and not what.startswith("__") and target != name
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_at_module_level() -> None:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = ast.Module(body=[n for n in tree.body if not isinstance(n, ast.If)], type_ignores=[])
        graph[name] = set()
        for target, _, _ in _imports_of(name, path, top):
            if target in MODULES and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node)


def _imports_of(name: str, path: Path, tree: ast.Module) -> Iterator[tuple[str, str, int]]:
    """:func:`_imports` over the statements of ``tree`` alone (the module's top level)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in MODULES else target), alias.name, node.lineno


def test_modules_and_functions_stay_readable() -> None:
    long = []
    for path in MODULES.values():
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            long.append(f"{path.relative_to(SRC)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = node.body
            doc = (
                isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            )
            start = body[1].lineno if doc and len(body) > 1 else body[0].lineno
            size = (node.end_lineno or start) - start + 1
            if size > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}: {size} lines")
    assert not long, "\n".join(long)
