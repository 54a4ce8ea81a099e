"""Reward, alignment and video-consistency scores as torchmetrics Metrics, picked by name.

    from metrics import build_metric
    metric = build_metric("hpsv2", checkpoint="/weights/HPSv2", version="v2.1")
    columns = metric.update(images, prompts, metadata)   # per-sample values for the rows
    summary = metric.compute()                           # collective under DDP

Importing this package is cheap: the model libraries (transformers, open_clip, lpips, torchvision's RAFT) are
imported when a metric first loads its weights.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from .base import METRICS, SampleMetric, WeightsNotFoundError, register_metric
from . import aesthetic, chscore, clip_score, frame_consistency, geneval, hpsv2, image_reward, mtscore, pickscore  # noqa: F401,E501  (registration)

__all__ = ["METRICS", "SampleMetric", "WeightsNotFoundError", "build_metric", "register_metric"]


def build_metric(name: str, **kwargs: Any) -> SampleMetric:
    """The metric registered as ``name``, constructed with ``kwargs`` (weight locations, scale, ...).

    A name that is not registered yet but is a module of this package (``metrics/<name>.py``) is imported first,
    so a module that registers its metric with :func:`register_metric` needs no edit here.
    """
    if name not in METRICS and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        importlib.import_module(f"{__name__}.{name}")
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; known: {sorted(METRICS)}")
    return METRICS[name](**kwargs)
