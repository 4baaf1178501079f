"""The layout the design contract promises: one-way app imports, no import cycle, no long module.

Read from the source with ``ast`` (every ``import`` counts, at module level or inside a
function), so a lazy import cannot hide a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("chat", "scheduling", "labeling", "companion")
MAX_MODULE_LINES = 500


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (the deepest module an import statement names)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_lazy_imports_inside_functions() -> None:
    graph = import_graph(project_modules())
    # SchedulingConfig.ready imports the services inside a method; the graph must still see it.
    assert "scheduling.services" in graph["scheduling.apps"]
    assert "scheduling.services.planning" in graph["scheduling.services"]


def test_no_import_cycle_among_the_projects_modules() -> None:
    assert cycles(import_graph(project_modules())) == []


def test_a_cycle_is_reported_with_its_members() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_apps_import_in_one_direction() -> None:
    graph = import_graph(project_modules())
    allowed = {
        "chat": {"chat"},
        "scheduling": {"scheduling", "chat", "companion.generator"},
        "labeling": {"labeling", "chat", "companion.generator"},
        "companion.generator": {"companion.generator"},
    }
    violations = []
    for module, targets in graph.items():
        owner = next((app for app in allowed if module == app or module.startswith(f"{app}.")), None)
        if owner is None:
            continue
        for target in targets:
            if not any(target == ok or target.startswith(f"{ok}.") for ok in allowed[owner]):
                violations.append(f"{module} -> {target}")
    assert violations == []


def test_no_module_is_longer_than_500_lines() -> None:
    long_modules = {
        name: length
        for name, path in project_modules().items()
        if (length := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long_modules == {}
