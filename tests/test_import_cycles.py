"""Imports run one way: no module of tokenmill imports, even inside a function, a module that imports it back."""

from __future__ import annotations

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("schemas", "transforms", "pipelines", "runners", "readers")


def module_files() -> dict[str, str]:
    modules = {}
    for package in PACKAGES:
        for directory, _, files in os.walk(os.path.join(REPO, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    module = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                    modules[module.removesuffix(".__init__")] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """Each module's tokenmill imports, wherever in the module they are (a function's import is a dependency too)."""
    modules = module_files()
    graph = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        named = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                named |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                named |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        graph[module] = {name for name in named if name in modules and name != module}
    return graph


def cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path start -> ... -> start, if there is one."""
    stack, seen = [(start, [start])], set()
    while stack:
        module, path = stack.pop()
        for dep in sorted(graph[module]):
            if dep == start:
                return path + [start]
            if dep not in seen:
                seen.add(dep)
                stack.append((dep, path + [dep]))
    return None


def test_the_graph_sees_the_imports_the_cli_makes():
    graph = import_graph()
    assert {"runners.dataflow", "runners.local", "pipelines.build"} <= graph["pipelines.cli"]
    assert "pipelines.cli" in graph["runners.template"]


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    cycles = [cycle_through(graph, module) for module in sorted(graph)]
    assert [" -> ".join(c) for c in cycles if c] == []
