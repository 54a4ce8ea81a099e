"""The image metrics on real-size random-weight networks, through their ordinary ``build_metric`` / ``load`` path.

Each metric loads its networks once per process through :func:`metrics.weights.cached`. :func:`install` builds the
real-size network in memory, puts it in that cache under the key the metric's ``_load`` computes for a small
placeholder folder (configs and tokenizer files, weight files empty), and returns the constructor options that point
the metric at that folder. ``metric.load(device)`` then finds the network in the cache; everything after it
(preprocessing, tokenisation, the scorer formula) is the metric's own code. :func:`load_installed` checks that the
metric really got the installed network (if a metric changes its cache key, it would read the empty placeholder
files and fail; this says why).

The aesthetic head (0.8 M parameters) is written as a real ``.pth`` file and loaded by the metric itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from . import models

#: image metric -> the architecture JSON of its real-size network
NETWORKS = {"hpsv2": "open_clip_vit_h_14", "pickscore": "clip_vit_h_14", "image_reward": "image_reward",
            "aesthetic": "clip_vit_large_patch14", "clip_score": "clip_vit_large_patch14"}
REAL_SIZE_METRICS = tuple(NETWORKS)

#: network name -> ((folder, device, dtype), the installed module)
_INSTALLED: dict[str, tuple[tuple, torch.nn.Module]] = {}


def metric_device(device: torch.device | str) -> torch.device:
    """The device as ``SampleMetric.load`` normalises it (a bare ``cuda`` becomes the current ``cuda:N``)."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _placeholder(path: Path) -> Path:
    """An empty weight file: the metric's file lookup finds it; nothing ever reads it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _clip_folder(folder: Path, model, tokenizer, preprocess: dict[str, int]) -> Path:
    from transformers import CLIPImageProcessor

    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": preprocess["shortest_edge"]},
                       crop_size={"height": preprocess["crop_size"], "width": preprocess["crop_size"]}
                       ).save_pretrained(folder)
    _placeholder(folder / "model.safetensors")
    return folder


def _install_clip(name: str, folder: Path, device: torch.device, dtype: torch.dtype):
    """A real-size CLIP as the shared ``ClipBackbone`` of ``folder`` (model and processor from the same folder)."""
    from metrics.clip_backbone import ClipBackbone
    from metrics.preprocess import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    from metrics.weights import cached

    cfg = models.load_config(name)
    model, tokenizer = models.clip_model(name, dtype, device)
    _clip_folder(folder, model, tokenizer, cfg["preprocessor"])
    backbone = ClipBackbone(model, tokenizer, source=str(folder), processor_source=str(folder),
                            resize_to=cfg["preprocessor"]["shortest_edge"], crop_to=cfg["preprocessor"]["crop_size"],
                            mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD)
    key = ("clip", str(folder), str(folder), str(device), dtype)
    return cached(key, lambda: backbone)


def install(name: str, folder: str | Path, device: torch.device | str, dtype: torch.dtype) -> dict[str, Any]:
    """Build metric ``name``'s real-size network on ``device`` in ``dtype`` (once: the aesthetic predictor and CLIP
    score share theirs), put it where the metric's loader looks, and return the ``build_metric`` options (including
    ``dtype``) that use it."""
    if name not in NETWORKS:
        raise ValueError(f"no real-size network for metric {name!r}; these have one: {', '.join(NETWORKS)}")
    folder = Path(folder).resolve()
    device = metric_device(device)
    network = NETWORKS[name]
    where = (folder, device, dtype)
    if _INSTALLED.get(network, (None,))[0] != where:
        _INSTALLED[network] = (where, _BUILD[network](folder, device, dtype))
    return _OPTIONS[name](folder, dtype)


def _build_hps(folder: Path, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from metrics.hpsv2 import HPS_FILES
    from metrics.weights import cached

    path = _placeholder(folder / "hpsv2" / HPS_FILES["v2.1"])
    model, tokenizer = models.open_clip_vit_h(dtype, device)
    key = ("hpsv2", models.load_config("open_clip_vit_h_14")["model"], str(path), str(device), dtype)
    return cached(key, lambda: (model, tokenizer))[0]


def _build_image_reward(folder: Path, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from metrics.image_reward import IR_CHECKPOINT, IR_MED_CONFIG
    from metrics.weights import cached

    ir = folder / "image_reward"
    model, tokenizer, med_config = models.image_reward_model(dtype, device)
    checkpoint = _placeholder(ir / IR_CHECKPOINT)
    (ir / IR_MED_CONFIG).write_text(json.dumps(med_config))
    tokenizer.save_pretrained(ir / "tokenizer")
    key = ("image_reward", str(checkpoint), str(ir / IR_MED_CONFIG), str(ir / "tokenizer"), 64, str(device), dtype)
    return cached(key, lambda: (model, tokenizer))[0]


def _aesthetic_options(folder: Path, dtype: torch.dtype) -> dict[str, Any]:
    from metrics.heads import RewardMLP

    head = folder / "aesthetic_head.pth"
    if not head.is_file():
        torch.manual_seed(0)
        torch.save(RewardMLP(models.load_config("clip_vit_large_patch14")["aesthetic_head_input"]).state_dict(), head)
    return {"clip": str(folder / "clip_vit_large_patch14"), "head": str(head), "dtype": dtype}


_BUILD = {
    "open_clip_vit_h_14": _build_hps,
    "clip_vit_h_14": lambda folder, device, dtype: _install_clip("clip_vit_h_14", folder / "clip_vit_h_14", device,
                                                                 dtype).model,
    "clip_vit_large_patch14": lambda folder, device, dtype: _install_clip(
        "clip_vit_large_patch14", folder / "clip_vit_large_patch14", device, dtype).model,
    "image_reward": _build_image_reward,
}
_OPTIONS = {
    "hpsv2": lambda folder, dtype: {"checkpoint": str(folder / "hpsv2"), "version": "v2.1",
                                    "architecture": models.load_config("open_clip_vit_h_14")["model"], "dtype": dtype},
    "pickscore": lambda folder, dtype: {"model": str(folder / "clip_vit_h_14"),
                                        "processor": str(folder / "clip_vit_h_14"), "dtype": dtype},
    "image_reward": lambda folder, dtype: {"checkpoint": str(folder / "image_reward"),
                                           "tokenizer": str(folder / "image_reward" / "tokenizer"), "dtype": dtype},
    "aesthetic": _aesthetic_options,
    "clip_score": lambda folder, dtype: {"clip": str(folder / "clip_vit_large_patch14"), "dtype": dtype},
}


def installed_network(name: str) -> torch.nn.Module:
    """The real-size network installed for metric ``name``."""
    return _INSTALLED[NETWORKS[name]][1]


def load_installed(metric, device: torch.device | str) -> None:
    """``metric.load(device)``, then a check that it holds the installed real-size network."""
    try:
        metric.load(device)
    except Exception as err:
        raise RuntimeError(f"{metric.name}: the metric did not find the installed real-size network in the weight "
                           f"cache (did its cache key change?): {type(err).__name__}: {err}") from err
    expected = installed_network(metric.name)
    held = [getattr(m, "model", m) for m in metric.models.values()]
    if not any(h is expected for h in held):
        raise RuntimeError(f"{metric.name}: loaded something other than the installed real-size network")


def uninstall() -> None:
    """Drop every installed network (the metrics' weight cache) and return the memory."""
    from metrics.weights import clear_cache

    _INSTALLED.clear()
    clear_cache()
    models.release_memory()
