"""Versions of the packages that determine a result, recorded in every row."""

from __future__ import annotations

import functools
from importlib import metadata

_PACKAGES = ("zeta_eval", "torch", "diffusers", "transformers", "lightning", "torchmetrics", "datasets",
             "open_clip_torch", "lpips", "pyarrow")


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
