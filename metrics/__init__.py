"""Reward, alignment and video-consistency scores as torchmetrics Metrics, picked by name from :data:`METRICS`.

    from metrics import build_metric
    metric = build_metric("hpsv2", checkpoint="/weights/HPSv2", version="v2.1")
    columns = metric.score(images, prompts, metadata)    # per-sample values for the rows (no state change)
    metric.update(columns, metadata)                     # accumulate them
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

from typing import Any

from .base import METRICS, SampleMetric, UnknownMetricError, WeightsNotFoundError

__all__ = ["METRICS", "SampleMetric", "UnknownMetricError", "WeightsNotFoundError", "build_metric", "metric_names"]


def metric_names() -> list[str]:
    """Every metric that :func:`build_metric` can build (built-in and plugins), without importing any."""
    return METRICS.names()


def build_metric(name: str, **kwargs: Any) -> SampleMetric:
    """The metric registered as ``name``, constructed with ``kwargs`` (weight locations, scale, ...)."""
    return METRICS[name](**kwargs)
