"""CLIP score as torchmetrics ``CLIPScore`` computes it: 100 * cos(image, text) per sample; the reported mean is
clamped at 0 (``max(mean, 0)``, the clamp is on the mean, not per sample as in Hessel et al.'s ``2.5 * max(cos, 0)``).

torchmetrics 1.9.0 itself cannot be used with transformers 5 (``get_image_features`` returns an output object;
fixed on torchmetrics master only), and it runs ``update`` twice under ``forward`` (``full_state_update=True``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .clip_backbone import ClipMetric, matched_cosine


def clip_score_from_embeddings(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """``100 * cos`` of matching rows, ``(N,)``."""
    return 100.0 * matched_cosine(image_embeds, text_embeds)


class ClipScore(ClipMetric):
    """``clip``: a transformers CLIP (hub id or folder with weights, tokenizer and ``preprocessor_config.json``)."""

    name = "clip_score"

    def score_batch(self, media: torch.Tensor, prompts: Sequence[str],
                    metadata: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        backbone = self.models["clip"]
        image_embeds = backbone.embed_images(media, rounding="floor")  # transformers' CLIPProcessor
        return {self.name: clip_score_from_embeddings(image_embeds, backbone.embed_texts(prompts))}

    def compute(self) -> dict[str, float]:
        out = super().compute()
        out[self.name] = max(out[self.name], 0.0)  # NaN (no samples) stays NaN
        return out

    def conventions(self) -> dict[str, Any]:
        return {"clip_score_model": self.clip, "clip_score_dtype": self.precision(),
                "clip_score_scale": "100*cos per sample; mean clamped at 0 (torchmetrics CLIPScore)"}
