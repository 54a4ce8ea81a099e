"""ChronoMagic-Bench MTScore (metamorphic score, ``MTScore/step0-get_MTScore.py``) with a CLIP video embedding.

Reference: 4 frames (``step = F // 4; frames[::step][:4]``) embedded by InternVideo2-stage2 1B, probabilities
``softmax(100 * cos(video, caption))`` over 10 fixed captions (5 "normal video", 5 "time-lapse"), and the score is
the probability mass among the top 5 that falls on the time-lapse captions, in [0, 1].

Here the video embedding is CLIP's: the L2-normalised mean of the 4 frames' normalised CLIP image embeddings (CLIP
preprocessing, not InternVideo2's squash resize with ImageNet statistics). Same frames, captions, temperature and
top-5 rule; NOT comparable with the leaderboard's InternVideo2 numbers.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .clip_backbone import ClipMetric

# the 10 captions of the reference, in its order: 0-4 normal video, 5-9 time-lapse
MT_CAPTIONS = (
    "A conventional video, not a time-condensed video.",
    "A usual video, not an accelerated video sequence.",
    "A normal video, not a time-lapse video.",
    "A standard video, not a time-lapse.",
    "An ordinary video, different from a fast-motion video.",
    "A time-lapse video, distinct from a regular recording.",
    "A time-lapse footage, not your typical video.",
    "A fast-motion video, unlike a standard video.",
    "A time-condensed video, not a conventional video.",
    "An accelerated video sequence, not a usual video.",
)
TIMELAPSE = range(5, 10)


def sample_frame_indices(num_frames: int, count: int = 4) -> list[int]:
    """``range(num_frames)[::num_frames // count][:count]``, the reference's frame choice."""
    if num_frames < count:
        raise ValueError(f"mtscore: needs at least {count} frames, got {num_frames}")
    return list(range(0, num_frames, num_frames // count))[:count]


def video_embedding(frame_embeds: torch.Tensor) -> torch.Tensor:
    """``(B, K, D)`` frame embeddings -> ``(B, D)``: normalised mean of the normalised frames."""
    return F.normalize(F.normalize(frame_embeds.float(), dim=-1).mean(1), dim=-1)


def mtscore_from_embeddings(video_embeds: torch.Tensor, caption_embeds: torch.Tensor, topk: int = 5,
                            temperature: float = 100.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(metamorphic, general)`` probability mass, each ``(B,)``, among the top-``topk`` captions."""
    logits = temperature * F.normalize(video_embeds.float(), dim=-1) @ F.normalize(caption_embeds.float(), dim=-1).T
    probs, index = logits.softmax(-1).topk(topk, dim=-1)
    is_timelapse = (index >= TIMELAPSE.start) & (index < TIMELAPSE.stop)
    return (probs * is_timelapse).sum(-1), (probs * ~is_timelapse).sum(-1)


class MTScoreCLIP(ClipMetric):
    """``clip``: a transformers CLIP (hub id or folder), shared with the other CLIP metrics."""

    name = "mtscore_clip"
    media_kind = "video"
    min_frames = 4

    def score_batch(self, media: torch.Tensor, prompts: Sequence[str],
                    metadata: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        backbone = self.models["clip"]
        frames = media[:, sample_frame_indices(media.shape[1])]  # (B, 4, 3, H, W)
        embeds = backbone.embed_images(frames.flatten(0, 1), rounding="torchvision").view(*frames.shape[:2], -1)
        metamorphic, general = mtscore_from_embeddings(video_embedding(embeds), backbone.embed_fixed_texts(MT_CAPTIONS))
        return {self.name: metamorphic, f"{self.name}/general": general}

    def conventions(self) -> dict[str, Any]:
        return {"mtscore_clip_impl": "NOT leaderboard-comparable: CLIP video embedding (normalised mean of 4 frames) "
                                     "instead of InternVideo2", "mtscore_clip_model": self.clip,
                "mtscore_clip_rule": "softmax(100*cos) over ChronoMagic's 10 captions, top-5 mass on time-lapse",
                "mtscore_clip_dtype": self.precision()}
