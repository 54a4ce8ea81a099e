"""Adapters whose ``model`` names a pipeline built in this process, so that ``zeta_eval predict`` (run in-process)
can use a real-size random-weight pipeline without writing 7 GB of weights to disk and reading them back.

    register("realscale/sdxl", pipe)
    # config: model.adapter = {class_path: benchmarks.realscale.inmemory.InMemorySDXLAdapter,
    #                          init_args: {model: realscale/sdxl, height: 256, width: 256}}
"""

from __future__ import annotations

from typing import Any

import torch

from zeta_eval.adapters.base import ModelLoadError
from zeta_eval.adapters.sd import SDAdapter
from zeta_eval.adapters.sdxl import SDXLAdapter

_PIPELINES: dict[str, Any] = {}


def register(name: str, pipeline: Any) -> str:
    """Make ``pipeline`` loadable by the in-memory adapters as ``model: name``; returns ``name``."""
    _PIPELINES[name] = pipeline
    return name


def unregister(name: str) -> None:
    _PIPELINES.pop(name, None)


class _InMemory:
    """Mixed in before a pipeline adapter: ``load`` takes the registered pipeline instead of ``from_pretrained``."""

    model: str

    def load(self, device: torch.device | str, pipeline: Any = None) -> None:
        if pipeline is None:
            if self.model not in _PIPELINES:
                raise ModelLoadError(f"no pipeline registered in this process as {self.model!r} (registered: "
                                     f"{sorted(_PIPELINES) or 'none'})")
            pipeline = _PIPELINES[self.model]
        super().load(device, pipeline)  # type: ignore[misc]


class InMemorySDXLAdapter(_InMemory, SDXLAdapter):
    """The ``sdxl`` adapter on a registered ``StableDiffusionXLPipeline``."""


class InMemorySDAdapter(_InMemory, SDAdapter):
    """The ``sd`` adapter on a registered ``StableDiffusionPipeline``."""


IN_MEMORY_ADAPTERS = {"sdxl": f"{__name__}.InMemorySDXLAdapter", "sd": f"{__name__}.InMemorySDAdapter"}
