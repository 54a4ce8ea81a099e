"""Model adapters, one per model family, picked by short name in configs (``adapter: sdxl``).

``ADAPTERS`` maps a short name to its adapter class; classes are imported on first use, so importing this package
does not import diffusers. Plugins add model families through the ``zeta_eval.adapters`` entry-point group.
``build_adapter(name, **options)`` checks the name and the options at config time.
"""

from __future__ import annotations

import inspect
from typing import Any

from samplers.registry import Registry

from .base import ModelAdapter, ModelLoadError, hub_error_message, parse_dtype

#: every model family by name (its ``family``), each module imported when first used
ADAPTERS: Registry[type[ModelAdapter]] = Registry("model family", ModelAdapter, {
    "sd": "zeta_eval.adapters.sd:SDAdapter",
    "sdxl": "zeta_eval.adapters.sdxl:SDXLAdapter",
    "hunyuan_dit": "zeta_eval.adapters.hunyuan_dit:HunyuanDiTAdapter",
    "cogvideox": "zeta_eval.adapters.cogvideox:CogVideoXAdapter",
    "modelscope": "zeta_eval.adapters.modelscope:ModelScopeAdapter",
    "sd3": "zeta_eval.adapters.sd3:SD3Adapter",
    "flux": "zeta_eval.adapters.flux:FluxAdapter",
    "wan": "zeta_eval.adapters.wan:WanAdapter",
    "shapebench": "zeta_eval.adapters.shapebench:ShapeBenchAdapter",
}, group="zeta_eval.adapters", name_attr="family", plural="model families")


def build_adapter(name: str, **options: Any) -> ModelAdapter:
    """The adapter ``name`` built from config options (no weights are loaded until ``adapter.load(device)``)."""
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


__all__ = ["ADAPTERS", "ModelAdapter", "ModelLoadError", "build_adapter", "hub_error_message", "parse_dtype"]
