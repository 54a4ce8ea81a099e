"""Reward, alignment and video-consistency scores as torchmetrics Metrics, picked by name.

    from metrics import build_metric
    metric = build_metric("hpsv2", checkpoint="/weights/HPSv2", version="v2.1")
    columns = metric.update(images, prompts, metadata)   # per-sample values for the rows
    summary = metric.compute()                           # collective under DDP

=============  ======  ==========================================================================================
name           media   weight options (hub id, local folder or file) and their defaults
=============  ======  ==========================================================================================
hpsv2          image   checkpoint=xswu/HPSv2 (HPS_v2.1_compressed.pt / HPS_v2_compressed.pt by version), x100
pickscore      image   model=yuvalkirstain/PickScore_v1, processor=laion/CLIP-ViT-H-14-laion2B-s32B-b79K
image_reward   image   checkpoint=THUDM/ImageReward (ImageReward.pt), med_config (beside it),
                       tokenizer=bert-base-uncased; x100
aesthetic      image   clip=openai/clip-vit-large-patch14, head=sac+logos+ava1-l14-linearMSE.pth
clip_score     image   clip=openai/clip-vit-large-patch14
geneval        image   detector=facebook/mask2former-swin-small-coco-instance, clip=openai/clip-vit-large-patch14
frame_lpips    video   backbone=alexnet-owt-7be5be79.pth (in $TORCH_HOME/hub/checkpoints), head=lpips package's
frame_ssim     video   none
chscore_flow   video   raft=raft_large, weights=raft_large_C_T_SKHT_V2-ff5fadd5.pth (in $TORCH_HOME)
mtscore_clip   video   clip=openai/clip-vit-large-patch14
=============  ======  ==========================================================================================

The CLIP ViT-L/14 of aesthetic, geneval, clip_score and mtscore_clip is loaded once per process and device. A
missing weight raises :class:`WeightsNotFoundError` with a one-line message naming the file and the option. Each
metric's ``conventions()`` says how its numbers were made (scale, version, ports that are not leaderboard-comparable).

Importing this package is cheap: the model libraries (transformers, open_clip, lpips, torchvision's RAFT) are
imported when a metric first loads its weights.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from .base import METRICS, SampleMetric, WeightsNotFoundError, register_metric
# importing the modules registers their metrics
from . import aesthetic, chscore, clip_score, frame_consistency, geneval, hpsv2, image_reward  # noqa: F401
from . import mtscore, pickscore  # noqa: F401

__all__ = ["METRICS", "SampleMetric", "UnknownMetricError", "WeightsNotFoundError", "build_metric", "metric_names",
           "register_metric"]

#: modules of this package that are helpers, not metrics
HELPER_MODULES = frozenset({"base", "weights", "preprocess", "heads", "clip_backbone"})


class UnknownMetricError(ValueError):
    """A metric name that is neither registered nor a metric module of this package; the message lists them all."""


def metric_names() -> list[str]:
    """Every metric that :func:`build_metric` can build: the registered names, and the metric modules not imported
    yet (such a module registers its metric under its own name when imported, e.g. ``shapebench``)."""
    import pkgutil
    import sys

    lazy = {m.name for m in pkgutil.iter_modules(__path__)
            if m.name not in HELPER_MODULES and not m.name.startswith("_") and f"{__name__}.{m.name}" not in sys.modules}
    return sorted(set(METRICS) | lazy)


def build_metric(name: str, **kwargs: Any) -> SampleMetric:
    """The metric registered as ``name``, constructed with ``kwargs`` (weight locations, scale, ...).

    A name that is not registered yet but is a module of this package (``metrics/<name>.py``) is imported first,
    so a module that registers its metric with :func:`register_metric` needs no edit here.
    """
    if (name not in METRICS and name.isidentifier() and name not in HELPER_MODULES
            and importlib.util.find_spec(f"{__name__}.{name}") is not None):
        importlib.import_module(f"{__name__}.{name}")
    if name not in METRICS:
        raise UnknownMetricError(f"unknown metric {name!r}; known metrics: {', '.join(metric_names())}")
    return METRICS[name](**kwargs)
