"""Config files: short names for adapters, samplers, metrics and data, expanded to LightningCLI's class_path form.

Any of these is accepted in a config file::

    model:
      adapter: {class_path: zeta_eval.adapters.sdxl.SDXLAdapter, init_args: {model: ...}}   # LightningCLI's form
      adapter: {class_path: sdxl, init_args: {model: ...}}                                   # short class_path
      adapter: {name: sdxl, model: ...}                                                      # flat
      samplers:
        - standard                                       # a bare name
        - {name: zeta, warmup_steps: 3}                  # flat
        - {class_path: zigzag, init_args: {gamma1: 5.5}}
      metrics: [hpsv2, {name: pickscore, model: /weights/PickScore_v1}]
    data: {source: drawbench, batch_size: 4}            # no class_path: datamodules.PromptDataModule

Short names come from the libraries' registries (``samplers.SAMPLERS``, ``zeta_eval.adapters.ADAPTERS``,
``metrics.METRICS``), plugins included. The expansion runs inside jsonargparse's loader (``parser_mode="zeta"``), so
it applies to every ``--config`` file, overlays included, before LightningCLI validates anything.
"""

from __future__ import annotations

from typing import Any

import yaml

DATAMODULE = "datamodules.PromptDataModule"
MODE = "zeta"


def _registry(kind: str) -> Any:
    """The registry of short names for ``kind`` (each library owns its own)."""
    if kind == "sampler":
        from samplers import SAMPLERS

        return SAMPLERS
    if kind == "adapter":
        from .adapters import ADAPTERS

        return ADAPTERS
    if kind == "metric":
        from metrics import METRICS

        return METRICS
    raise KeyError(kind)


def class_path_of(kind: str, name: str) -> str:
    """Full import path for a short name (or the name itself if it is already a dotted path). A plugin that cannot
    be imported is reported here, in one line."""
    if "." in name:
        return name
    return _registry(kind).class_path(name)


def _expand_component(kind: str, value: Any) -> Any:
    if isinstance(value, str):
        return {"class_path": class_path_of(kind, value)}
    if isinstance(value, dict):
        if "class_path" in value:
            return {**value, "class_path": class_path_of(kind, str(value["class_path"]))}
        if "name" in value:
            rest = {k: v for k, v in value.items() if k != "name"}
            init = rest.pop("init_args", {}) or {}
            return {"class_path": class_path_of(kind, str(value["name"])), "init_args": {**rest, **init}}
    return value  # e.g. an init_args-only overlay: jsonargparse merges it into the class given before


def expand_config(cfg: Any) -> Any:
    """Expand the short forms of a whole config (or a predict-subcommand config)."""
    if not isinstance(cfg, dict):
        return cfg
    cfg = dict(cfg)
    model = cfg.get("model")
    if isinstance(model, dict):
        model = dict(model)
        target = model.get("init_args", model) if "class_path" in model else model
        if "adapter" in target:
            target["adapter"] = _expand_component("adapter", target["adapter"])
        if isinstance(target.get("samplers"), list):
            target["samplers"] = [_expand_component("sampler", s) for s in target["samplers"]]
        if isinstance(target.get("metrics"), list):
            target["metrics"] = [_expand_component("metric", m) for m in target["metrics"]]
        cfg["model"] = model
    data = cfg.get("data")
    if isinstance(data, dict) and "class_path" not in data:
        init = data.get("init_args", data)
        cfg["data"] = {"class_path": DATAMODULE, "init_args": dict(init)}
    elif isinstance(data, str):
        cfg["data"] = {"class_path": DATAMODULE, "init_args": {"source": data}}
    return cfg


def load(text: str) -> Any:
    return expand_config(yaml.safe_load(text))


def register_loader() -> None:
    from jsonargparse import set_loader

    set_loader(MODE, load, exceptions=(yaml.YAMLError, ValueError))
