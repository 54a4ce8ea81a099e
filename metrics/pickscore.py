"""PickScore v1: ``logit_scale.exp() * cos(image, text)`` (the scalar of the PickScore README, about 100 * cos; SD-class
images score about 20-23). Not divided by 26 (flow_grpo's training reward) and not the raw cosine (t2v_metrics).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .base import SampleMetric
from .clip_backbone import load_clip, matched_cosine

PICKSCORE_MODEL = "yuvalkirstain/PickScore_v1"
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"


def pickscore_from_embeddings(image_embeds: torch.Tensor, text_embeds: torch.Tensor,
                              logit_scale: torch.Tensor | float) -> torch.Tensor:
    """``logit_scale * cos`` of matching rows, ``(N,)``; ``logit_scale`` is already exponentiated."""
    cos = matched_cosine(image_embeds, text_embeds)
    return torch.as_tensor(logit_scale, dtype=cos.dtype, device=cos.device) * cos


class PickScore(SampleMetric):
    """``model``: the PickScore CLIP weights; ``processor``: tokenizer and image settings (the LAION ViT-H/14 repo;
    only its small config and tokenizer files are read)."""

    name = "pickscore"

    def __init__(self, model: str = PICKSCORE_MODEL, processor: str = PICKSCORE_PROCESSOR, **kwargs: Any):
        super().__init__(**kwargs)
        self.model, self.processor = model, processor

    def _load(self, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        return {"clip": load_clip(self.model, device, dtype, metric=self.name, option="model",
                                  processor=self.processor, processor_option="processor")}

    def score_batch(self, media: torch.Tensor, prompts: Sequence[str],
                    metadata: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        backbone = self.models["clip"]
        image_embeds = backbone.embed_images(media, rounding="floor")  # transformers' CLIPImageProcessor
        return {self.name: pickscore_from_embeddings(image_embeds, backbone.embed_texts(prompts),
                                                     backbone.logit_scale)}

    def conventions(self) -> dict[str, Any]:
        return {"pickscore_model": self.model, "pickscore_processor": self.processor,
                "pickscore_scale": "logit_scale.exp()*cos (not /26, not raw cos)", "pickscore_dtype": self.precision()}
