"""Model adapters, one per model family, picked by short name in configs (``adapter: sdxl``).

``ADAPTERS`` maps a short name to its adapter class; classes are imported on first use, so importing this package
does not import diffusers (``ADAPTER_PATHS`` gives the "module.Class" path without importing anything). ``build_adapter(name, **options)`` checks the name and the options at config time.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any, Iterator

from .base import ModelAdapter, ModelLoadError, hub_error_message, parse_dtype

_PATHS = {
    "sd": "zeta_eval.adapters.sd:SDAdapter",
    "sdxl": "zeta_eval.adapters.sdxl:SDXLAdapter",
    "hunyuan_dit": "zeta_eval.adapters.hunyuan_dit:HunyuanDiTAdapter",
    "cogvideox": "zeta_eval.adapters.cogvideox:CogVideoXAdapter",
    "modelscope": "zeta_eval.adapters.modelscope:ModelScopeAdapter",
    "shapebench": "zeta_eval.adapters.shapebench:ShapeBenchAdapter",
}


class _LazyRegistry(Mapping):
    """Short name -> adapter class, importing each class's module on first access."""

    def __init__(self, paths: dict[str, str]):
        self._paths = dict(paths)
        self._classes: dict[str, type[ModelAdapter]] = {}

    def __getitem__(self, name: str) -> type[ModelAdapter]:
        if name not in self._paths:
            raise KeyError(name)
        if name not in self._classes:
            module, attr = self._paths[name].split(":")
            self._classes[name] = getattr(importlib.import_module(module), attr)
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)


ADAPTERS: Mapping[str, type[ModelAdapter]] = _LazyRegistry(_PATHS)
#: short name -> "module.Class", for tools that need a class path without importing the class (config expansion)
ADAPTER_PATHS: dict[str, str] = {name: path.replace(":", ".") for name, path in _PATHS.items()}


def build_adapter(name: str, **options: Any) -> ModelAdapter:
    """The adapter ``name`` built from config options (no weights are loaded until ``adapter.load(device)``)."""
    if name not in ADAPTERS:
        raise ValueError(f"unknown model family {name!r}; known families: {', '.join(sorted(ADAPTERS))}")
    cls = ADAPTERS[name]
    accepted, required = _options_of(cls)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"adapter {name!r} has no option(s) {', '.join(unknown)}; its options are "
                         f"{', '.join(sorted(accepted))}")
    missing = sorted(required - set(options))
    if missing:
        raise ValueError(f"adapter {name!r} needs option(s) {', '.join(missing)}")
    return cls(**options)


def _options_of(cls: type) -> tuple[set[str], set[str]]:
    """Keyword options an adapter class accepts (following ``**kwargs`` up the class chain) and those it requires."""
    accepted: set[str] = set()
    required: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in klass.__dict__:
            continue
        params = list(inspect.signature(klass.__dict__["__init__"]).parameters.values())[1:]
        for p in params:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                if p.name not in accepted and p.default is p.empty:
                    required.add(p.name)
                accepted.add(p.name)
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return accepted, required


__all__ = ["ADAPTERS", "ADAPTER_PATHS", "ModelAdapter", "ModelLoadError", "build_adapter", "hub_error_message", "parse_dtype"]
