"""The import graph of service/ and workers/: no module imports another module's `_private` names,
and no two modules import each other, directly or round a longer circle (lazy imports inside
functions and TYPE_CHECKING imports count too).

import-linter checks the layers (pyproject.toml); ruff's PLC2701 checks only `from x import _y`
across top-level packages. These tests cover what neither does, and print what they find.
"""

import ast
from collections import deque
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("service", "workers")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = {
    _module_name(path): path
    for package in PACKAGES
    for path in sorted((ROOT / package).rglob("*.py"))
}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The module a `from ... import` names, with relative imports resolved."""
    if node.level == 0:
        return node.module or ""
    package = module if SOURCES[module].name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _private_uses(module: str) -> Iterator[str]:
    """`from other import _name`, and `other._name` where `other` names an imported module."""
    path = SOURCES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = path.relative_to(ROOT)
    bound: dict[str, str] = {}  # local name -> the module of ours it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    top = alias.name.partition(".")[0]
                    bound[top] = top
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                if f"{source}.{alias.name}" in SOURCES:
                    bound[alias.asname or alias.name] = f"{source}.{alias.name}"
                if _is_private(alias.name) and source in SOURCES and source != module:
                    yield f"{where}:{node.lineno}: from {source} import {alias.name}"
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
            continue
        chain: list[str] = []
        value = node.value
        while isinstance(value, ast.Attribute):
            chain.insert(0, value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in bound:
            target = ".".join([bound[value.id], *chain])
            if target in SOURCES and target != module:
                yield f"{where}:{node.lineno}: {target}.{node.attr}"


def test_no_module_uses_another_modules_private_names() -> None:
    found = sorted(use for module in SOURCES for use in _private_uses(module))

    print("\n".join(["private names used across modules:", *found] if found else ["none found"]))
    assert not found, (
        "make the name public (with a docstring) where it belongs, or move the code that uses it:\n"
        + "\n".join(found)
    )


def _circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    imports = {
        module: sorted(graph.find_modules_directly_imported_by(module)) for module in graph.modules
    }
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(imports):
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            module, position = work.pop()
            if position == 0:
                index[module] = lowest[module] = len(index)
                stack.append(module)
                on_stack.add(module)
            if position < len(imports[module]):
                work.append((module, position + 1))
                imported = imports[module][position]
                if imported not in index:
                    work.append((imported, 0))
                elif imported in on_stack:
                    lowest[module] = min(lowest[module], index[imported])
                continue
            if lowest[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
            if work:
                parent = work[-1][0]
                lowest[parent] = min(lowest[parent], lowest[module])
    return components


def _line(graph: grimp.ImportGraph, importer: str, imported: str) -> int:
    return int(graph.get_import_details(importer=importer, imported=imported)[0]["line_number"])


def _one_circle(graph: grimp.ImportGraph, members: list[str]) -> str:
    """The shortest circle from the component's first module back to it, with the import lines."""
    start, within = members[0], set(members)
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for imported in sorted(graph.find_modules_directly_imported_by(module) & within):
            if imported == start:
                path = [module]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                steps = [*reversed(path), start]
                return (
                    " -> ".join(
                        f"{importer} (l.{_line(graph, importer, imported)})"
                        for importer, imported in pairwise(steps)
                    )
                    + f" -> {start}"
                )
            if imported not in previous:
                previous[imported] = module
                queue.append(imported)
    raise AssertionError(f"no circle through {start}")


def test_no_import_circles() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    found = [
        f"{', '.join(members)}\n    e.g. {_one_circle(graph, members)}"
        for members in _circles(graph)
    ]

    print("\n".join(["import circles:", *found] if found else ["no import circles"]))
    assert not found, "modules that import each other (break each circle):\n" + "\n".join(found)
