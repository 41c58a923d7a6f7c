"""Imports run one way, down the layers of docs/architecture.md, and no module imports, even inside a function, one that imports it back."""

from __future__ import annotations

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("schemas", "transforms", "pipelines", "runners", "readers", "deploy")

# The packages each package may import, lowest layer first. readers/ may import only those modules of
# transforms/ that never import Beam, however indirectly: a trainer installs no Beam.
MAY_IMPORT = {
    "schemas": set(),
    "transforms": {"schemas"},
    "readers": {"schemas", "transforms"},
    "runners": {"schemas", "transforms"},
    "pipelines": {"schemas", "transforms", "readers", "runners"},
    "deploy": {"schemas", "transforms", "readers", "runners", "pipelines"},
}


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


def imported_names(path: str) -> set[str]:
    """Every module a file names in an import, wherever in the file (a function's import is a dependency too)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    named = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            named |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            named |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return named


def import_graph() -> dict[str, set[str]]:
    """Each module's tokenmill imports."""
    modules = module_files()
    return {module: {n for n in imported_names(path) if n in modules and n != module} for module, path in modules.items()}


def reaches_beam(graph: dict[str, set[str]]) -> set[str]:
    """The modules that import Beam, themselves or through other tokenmill modules."""
    files = module_files()
    beam = {m for m, path in files.items() if any(n.split(".")[0] == "apache_beam" for n in imported_names(path))}
    grown = True
    while grown:
        grown = False
        for module, deps in graph.items():
            if module not in beam and deps & beam:
                beam.add(module)
                grown = True
    return beam


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Each import from a lower layer to a higher one (or to Beam code from readers/), as `a -> b`."""
    beam = reaches_beam(graph)
    wrong = []
    for module, deps in sorted(graph.items()):
        package = module.split(".")[0]
        for dep in sorted(deps):
            target = dep.split(".")[0]
            if target != package and target not in MAY_IMPORT[package]:
                wrong.append(f"{module} -> {dep}")
            elif package == "readers" and target == "transforms" and dep in beam:
                wrong.append(f"{module} -> {dep} (imports Beam)")
    return wrong


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
    assert {"runners.remote", "runners.local", "pipelines.build"} <= graph["pipelines.cli"]
    assert "pipelines.cli" in graph["deploy.template"]


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    cycles = [cycle_through(graph, module) for module in sorted(graph)]
    assert [" -> ".join(c) for c in cycles if c] == []


def test_no_module_imports_a_higher_layer():
    assert upward_imports(import_graph()) == []


def test_the_layer_check_sees_an_upward_import():
    graph = import_graph()
    graph["transforms.write"] = graph["transforms.write"] | {"pipelines.build"}
    graph["readers.records"] = graph["readers.records"] | {"transforms.write"}
    graph["schemas"] = graph["schemas"] | {"transforms.codec"}
    assert upward_imports(graph) == [
        "readers.records -> transforms.write (imports Beam)",
        "schemas -> transforms.codec",
        "transforms.write -> pipelines.build",
    ]
