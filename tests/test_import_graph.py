"""The import graph of the four packages, read statically with ``ast`` (imports inside functions count too).

``samplers``, ``datamodules`` and ``metrics`` are libraries; ``zeta_eval`` is the application that composes them, so
no library module may import ``zeta_eval``. ``samplers`` is the lowest layer: the standard library and torch only.
Inside ``zeta_eval`` no two modules import each other, not even lazily (a lazy import that closes a cycle only
hides it).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("samplers", "datamodules", "metrics")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(package: str) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


def _imports(path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """``(line, module, names)`` of every import in ``path`` (relative ones made absolute), and of every
    ``importlib.import_module`` of a literal name."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module, tuple(alias.name for alias in node.names)))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value, ()))
    return found


def _targets(module: str, names: tuple[str, ...], known: dict[str, Path]) -> set[str]:
    """The first-party modules an import statement loads: ``from pkg import mod`` names a module, ``from pkg import
    obj`` the package itself."""
    out = {f"{module}.{n}" for n in names if f"{module}.{n}" in known}
    if module in known and (len(out) < len(names) or not names):
        out.add(module)
    return out


@pytest.mark.parametrize("package", LIBRARIES)
def test_no_library_imports_the_application(package):
    offending = [f"{path.relative_to(ROOT)}:{line} imports {module}"
                 for path in _modules(package).values() for line, module, _ in _imports(path)
                 if module.split(".")[0] == "zeta_eval"]
    assert not offending, "libraries must not import zeta_eval:\n" + "\n".join(offending)


def test_samplers_import_only_the_standard_library_and_torch():
    allowed = set(sys.stdlib_module_names) | {"torch", "samplers"}
    offending = [f"{path.relative_to(ROOT)}:{line} imports {module}"
                 for path in _modules("samplers").values() for line, module, _ in _imports(path)
                 if module.split(".")[0] not in allowed]
    assert not offending, "samplers may import the standard library and torch only:\n" + "\n".join(offending)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def _application_graph() -> dict[str, set[str]]:
    known = _modules("zeta_eval")
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set()
        for _, module, names in _imports(path):
            if module.split(".")[0] == "zeta_eval":
                targets |= _targets(module, names, known)
        # a package's __init__ is loaded before its modules: importing ``zeta_eval.x`` is not an edge back to it
        graph[name] = {t for t in targets if t != name and not name.startswith(t + ".")}
    return graph


def test_the_graph_reader_sees_lazy_imports_and_cycles():
    graph = _application_graph()
    assert "zeta_eval.parts" in graph["zeta_eval.experiment"]  # a module-level import
    assert "zeta_eval.report" in graph["zeta_eval.experiment"]  # an import inside a function
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_inside_the_application():
    cycles = _cycles(_application_graph())
    assert not cycles, "modules of zeta_eval that import each other (directly or through others):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)
