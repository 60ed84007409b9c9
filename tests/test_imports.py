"""The house has no knots: no module of `backend/` imports itself through others, and no two of its packages import
each other. Every import counts, those under `TYPE_CHECKING` and inside functions included."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def _modules(package: str = "backend") -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imported(path: Path, module: str, is_package: bool) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(package: str = "backend") -> dict[str, set[str]]:
    """Module -> the modules of the package it imports (`from a import b` counts `a.b` when that is a module)."""
    modules = _modules(package)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {name for name in _imported(path, module, path.name == "__init__.py") if name in modules}
        graph[module] = targets - {module}
    return graph


def module_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def package_of(module: str) -> str:
    """`backend.api.routes.predict` -> `api`; a loose module (`backend.wiring`) is a package of its own."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_pairs(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    edges = {(package_of(a), package_of(b)) for a, targets in graph.items() for b in targets}
    return sorted((a, b) for a, b in edges if a < b and (b, a) in edges)


def test_no_module_imports_itself_through_others() -> None:
    assert module_cycles(import_graph()) == []


def test_no_two_packages_import_each_other() -> None:
    pairs = package_pairs(import_graph())
    assert pairs == [], "package pairs importing each other: " + ", ".join(f"{a} <-> {b}" for a, b in pairs)


def test_the_check_sees_a_cycle_and_a_pair() -> None:
    graph = {"backend.a.x": {"backend.b.y"}, "backend.b.y": {"backend.a.z"}, "backend.a.z": {"backend.a.x"}}
    assert module_cycles(graph) == [["backend.a.x", "backend.a.z", "backend.b.y"]]
    assert package_pairs(graph) == [("a", "b")]
    assert module_cycles({"backend.a": {"backend.b"}, "backend.b": set()}) == []
