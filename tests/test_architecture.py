"""The house plan, checked: imports go down (no cycle, module-level and function-level imports
alike), no module imports another's private name, and no module or function outgrows a screen
or two (the few that do are listed with the reason)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGES = ("envs", "rewards", "selfplay")
MODULE_LINES = 600
FUNCTION_LINES = 80
LONG_MODULES: dict[str, str] = {}
"""Module path -> why it is longer than ``MODULE_LINES``."""
LONG_FUNCTIONS: dict[str, str] = {}
"""``path:function`` -> why it is longer than ``FUNCTION_LINES``."""


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str | None, int]]:
    """``(module, imported name or None, line)`` for every import of a project module in
    ``path``, wherever it stands (module level, inside a function, under TYPE_CHECKING)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names if a.name in known]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    found.append((f"{target}.{alias.name}", None, node.lineno))
                elif target in known:
                    found.append((target, alias.name, node.lineno))
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a package's own ``__init__`` left out: Python
    imports it first anyway, and it may gather its children)."""
    known = modules()
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for target, _, _ in imports(name, path, known):
            if target != name and not name.startswith(target + "."):
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_no_private_name_is_imported_from_another_module():
    known = modules()
    private = [
        f"{path.relative_to(ROOT)}:{line} imports {target}.{imported}"
        for name, path in known.items()
        for target, imported, line in imports(name, path, known)
        if imported and imported.startswith("_") and not imported.startswith("__")
    ]
    assert private == []


def test_modules_fit():
    long = {
        str(path.relative_to(ROOT)): n
        for path in modules().values()
        if (n := len(path.read_text().splitlines())) > MODULE_LINES
    }
    assert {k: v for k, v in long.items() if k not in LONG_MODULES} == {}


def test_functions_fit():
    long = {}
    for path in modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                key = f"{path.relative_to(ROOT)}:{node.name}"
                if n > FUNCTION_LINES and key not in LONG_FUNCTIONS:
                    long[key] = n
    assert long == {}


def test_the_exceptions_are_still_needed():
    """An entry in LONG_MODULES or LONG_FUNCTIONS that no longer applies is removed."""
    known = {str(p.relative_to(ROOT)): p for p in modules().values()}
    for key in LONG_MODULES:
        assert key in known and len(known[key].read_text().splitlines()) > MODULE_LINES, key
    for key in LONG_FUNCTIONS:
        file, _, function = key.partition(":")
        tree = ast.parse(known[file].read_text())
        sizes = [
            n.end_lineno - n.lineno + 1
            for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == function
        ]
        assert sizes and max(sizes) > FUNCTION_LINES, key
