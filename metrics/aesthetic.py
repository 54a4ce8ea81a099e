"""LAION aesthetic predictor v2 (improved-aesthetic-predictor, ``sac+logos+ava1-l14-linearMSE``).

score = MLP(e / ||e||), e = CLIP ViT-L/14 image embedding. The output is on the AVA-like 1-10 scale (SD images
score about 5-6.5) and is not rescaled. Without the L2 normalisation scores come out at 20-30 (LAION-AI/aesthetic-
predictor#5), so the normalisation is part of the formula.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .base import SampleMetric
from .clip_backbone import DEFAULT_CLIP, load_clip
from .heads import RewardMLP
from .weights import cached, freeze, load_state_dict_file, resolve_file

AESTHETIC_HEAD = "sac+logos+ava1-l14-linearMSE.pth"


def aesthetic_from_embeddings(image_embeds: torch.Tensor, head: RewardMLP) -> torch.Tensor:
    """``(N, D)`` CLIP image embeddings -> ``(N,)`` aesthetic scores."""
    normalised = F.normalize(image_embeds.float(), dim=-1)
    return head(normalised.to(head.layers[0].weight.dtype)).squeeze(-1).float()


class Aesthetic(SampleMetric):
    """``clip``: CLIP ViT-L/14 (hub id or folder); ``head``: the MLP ``.pth`` (file, folder or hub id; the original
    is in github.com/christophschuhmann/improved-aesthetic-predictor). The head runs in fp32."""

    name = "aesthetic"

    def __init__(self, clip: str = DEFAULT_CLIP, head: str = AESTHETIC_HEAD, **kwargs: Any):
        super().__init__(**kwargs)
        self.clip, self.head = clip, head

    def _load(self, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        backbone = load_clip(self.clip, device, dtype, metric=self.name, option="clip")
        path = resolve_file(self.head, AESTHETIC_HEAD, metric=self.name, option="head")
        head = cached(("aesthetic_head", str(path.resolve()), str(device)),
                      lambda: freeze(RewardMLP.from_state_dict(load_state_dict_file(path), metric=self.name,
                                                               source=str(path)), device, torch.float32))
        return {"clip": backbone, "head": head}

    def score_batch(self, media: torch.Tensor, prompts: Sequence[str],
                    metadata: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        embeds = self.models["clip"].embed_images(media, rounding="torchvision")  # OpenAI clip.load preprocessing
        return {self.name: aesthetic_from_embeddings(embeds, self.models["head"])}

    def conventions(self) -> dict[str, Any]:
        return {"aesthetic_clip": self.clip, "aesthetic_head": str(self.head),
                "aesthetic_embedding": "L2-normalised CLIP image embedding", "aesthetic_scale": "raw (1-10)",
                "aesthetic_dtype": f"CLIP {self.precision()}, head float32"}
