"""The import graph of ``bench`` and ``criteria``: no cycle, at most 10 levels.

A module's level is one above the highest-level project module it imports (a module that
imports none is level 1); imports inside functions count, since they run as well; imports
under ``if TYPE_CHECKING:`` (annotations only) do not.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "criteria")
MAX_LEVELS = 10


def module_names() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules that ``name`` (file ``path``) imports anywhere in its body."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # annotations only: ``if TYPE_CHECKING:`` blocks never run
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    known = set(modules)
    return {name: imports_of(path, name, known) for name, path in modules.items()}


def levels(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each module's level; raises ``ValueError`` naming a cycle."""
    level: dict[str, int] = {}
    visiting: list[str] = []

    def visit(name: str) -> int:
        if name in level:
            return level[name]
        if name in visiting:
            raise ValueError("import cycle: " + " -> ".join(visiting[visiting.index(name):] + [name]))
        visiting.append(name)
        level[name] = 1 + max((visit(m) for m in graph[name]), default=0)
        visiting.pop()
        return level[name]

    for name in sorted(graph):
        visit(name)
    return level


def test_the_level_rule_on_a_known_graph():
    graph = {"a": set(), "b": {"a"}, "c": {"a", "b"}, "d": {"c"}}
    assert levels(graph) == {"a": 1, "b": 2, "c": 3, "d": 4}
    try:
        levels({"a": {"b"}, "b": {"a"}})
    except ValueError as err:
        assert "a -> b -> a" in str(err)
    else:
        raise AssertionError("a cycle was not found")


def test_imports_are_read_from_the_source(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom typing import TYPE_CHECKING\nfrom bench import space\n\n"
                      "def f():\n    from bench.stats import kendall\n\n"
                      "if TYPE_CHECKING:\n    from bench.supernet import Supernet\n")
    assert imports_of(module, "bench.m", {"bench", "bench.space", "bench.stats", "bench.supernet"}) == {
        "bench", "bench.space", "bench.stats"}


def test_the_project_import_graph_has_no_cycle_and_at_most_ten_levels():
    graph = import_graph()
    assert len(graph) > 20
    level = levels(graph)
    deepest = max(level.values())
    chain = sorted(level, key=level.get)[-1]
    assert deepest <= MAX_LEVELS, f"{chain} sits at level {deepest}"
