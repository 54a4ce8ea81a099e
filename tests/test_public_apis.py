"""First-party code uses only the public APIs of Lightning, torchmetrics and diffusers.

A private name (``_x``) of those libraries can change in any minor release. Two checks:

- by import: no first-party class that derives from one of their classes defines (overrides) a private attribute
  that one of its third-party bases defines, as a class attribute or as an instance attribute (``self._x = ...``);
- by reading the source (``ast``; classes built inside functions and scripts in benchmarks/ included): no attribute
  access ``obj._x`` of a private name that the libraries define, unless first-party code defines that name itself
  (its own private); through ``super()`` it is always the library's.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = ("zeta_eval", "samplers", "datamodules", "metrics", "benchmarks")
IMPORTABLE = ("zeta_eval", "samplers", "datamodules", "metrics")
THIRD_PARTY = ("lightning", "pytorch_lightning", "torchmetrics", "diffusers")
_PRIVATE = re.compile(r"^_[A-Za-z0-9]\w*$")  # not a dunder
_DEFINED = re.compile(r"(?:def|class)\s+(_[A-Za-z0-9]\w*)|(?:^|\s|\.)(_[A-Za-z0-9]\w*)\s*(?::[^=\n]*)?=[^=]", re.M)


#: set on every class by Python's own machinery (ABCMeta), not by the class's author
_MACHINERY = {"_abc_impl"}


def _is_private(name: str) -> bool:
    return bool(_PRIVATE.match(name)) and not name.endswith("__") and name not in _MACHINERY


def _third_party(cls: type) -> bool:
    return cls.__module__.split(".")[0] in THIRD_PARTY


def _first_party_files() -> list[Path]:
    return [p for package in FIRST_PARTY for p in sorted((ROOT / package).rglob("*.py"))]


@lru_cache(maxsize=None)
def _library_private_names() -> frozenset[str]:
    """Every private name the three libraries define (functions, classes, attributes), read from their source."""
    names: set[str] = set()
    for package in THIRD_PARTY:
        try:
            root = Path(importlib.import_module(package).__file__).parent
        except ImportError:
            continue
        for path in root.rglob("*.py"):
            for match in _DEFINED.finditer(path.read_text(encoding="utf-8", errors="replace")):
                names.add(match.group(1) or match.group(2))
    return frozenset(n for n in names if _is_private(n))


@lru_cache(maxsize=None)
def _first_party_definitions() -> frozenset[str]:
    """Private names that first-party code defines itself: defs, classes, assignments (``self._x = ...``)."""
    names: set[str] = set()
    for path in _first_party_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for sub in ast.walk(target):
                        if isinstance(sub, ast.Attribute):
                            names.add(sub.attr)
                        elif isinstance(sub, ast.Name):
                            names.add(sub.id)
            elif isinstance(node, ast.alias):
                names.add(node.asname or node.name.split(".")[-1])
    return frozenset(n for n in names if _is_private(n))


def _is_super_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def private_accesses(source: str, where: str) -> list[str]:
    """``where:line obj._x`` for every access of a library's private name in ``source``."""
    library, ours = _library_private_names(), _first_party_definitions()
    found = []
    for node in ast.walk(ast.parse(source, where)):
        if isinstance(node, ast.Attribute) and _is_private(node.attr) and node.attr in library:
            if _is_super_call(node.value) or node.attr not in ours:
                found.append(f"{where}:{node.lineno} {ast.unparse(node)}")
    return found


def test_no_private_name_of_the_libraries_is_used():
    offending = [hit for path in _first_party_files()
                 for hit in private_accesses(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]
    assert not offending, "private names of Lightning/torchmetrics/diffusers used:\n" + "\n".join(offending)


def test_the_source_check_sees_what_it_must():
    sample = ("import importlib\n"
              "class Metric:\n    def _wrap_update(self, update):\n        return super()._wrap_update(update)\n"
              "importlib.import_module('diffusers.utils.deprecation_utils')._resolve_dtype\n"
              "self._held.models\n")  # a private of our own: allowed
    hits = [h.split(" ", 1)[1] for h in private_accesses(sample, "sample.py")]
    assert sorted(hits) == ["importlib.import_module('diffusers.utils.deprecation_utils')._resolve_dtype",
                            "super()._wrap_update"]
    assert {"_wrap_update", "_run_subcommand", "_prepare_subcommand_parser"} <= _library_private_names()


# ---------------------------------------------------------------------------------------------- by import
def _first_party_classes() -> list[type]:
    classes = []
    for package in IMPORTABLE:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            module = importlib.import_module(name)
            classes += [obj for obj in vars(module).values()
                        if inspect.isclass(obj) and obj.__module__ == name and any(map(_third_party, obj.__mro__))]
    return classes


def _instance_privates(cls: type) -> set[str]:
    """``self._x`` names that the body of ``cls`` (its own source only) assigns."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return set()
    return {n for n in re.findall(r"self\.(_\w+)\s*(?::[^=\n]*)?=[^=]", source) if _is_private(n)}


def overridden_privates(cls: type) -> list[str]:
    """``Class._x (base Base)`` for each private attribute ``cls`` (or a first-party base) defines that a
    third-party base also defines."""
    ours = [c for c in cls.__mro__ if not _third_party(c) and c.__module__.split(".")[0] in FIRST_PARTY]
    theirs = [c for c in cls.__mro__ if _third_party(c)]
    found = []
    for own in ours:
        names = {n for n in vars(own) if _is_private(n)} | _instance_privates(own)
        for name in sorted(names):
            base = next((b for b in theirs if name in vars(b) or name in _instance_privates(b)), None)
            if base is not None:
                found.append(f"{own.__module__}.{own.__qualname__}.{name} (defined by {base.__module__}."
                             f"{base.__qualname__})")
    return found


def test_no_first_party_class_overrides_a_private_attribute_of_its_library_bases():
    classes = _first_party_classes()
    assert any(c.__name__ == "SampleMetric" for c in classes)  # the walk found the classes that matter
    offending = sorted({hit for cls in classes for hit in overridden_privates(cls)})
    assert not offending, "private attributes of Lightning/torchmetrics/diffusers overridden:\n" + "\n".join(offending)


def test_the_import_check_sees_an_override():
    from torchmetrics import Metric

    class Leaky(Metric):
        def _wrap_update(self, update):  # pragma: no cover - never called
            return update

        def update(self) -> None:  # pragma: no cover
            pass

        def compute(self) -> None:  # pragma: no cover
            pass

    Leaky.__module__ = "metrics.leaky"
    assert any("_wrap_update" in hit for hit in overridden_privates(Leaky))


@pytest.mark.parametrize("name", ["_resolve_dtype", "_get_add_time_ids"])
def test_library_private_names_include_the_ones_we_used_to_call(name):
    assert name in _library_private_names()
