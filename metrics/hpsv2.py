"""HPS v2.0 / v2.1 (tgxs002/HPSv2): cosine of the L2-normalised open_clip ViT-H-14 image and text features of the
HPS checkpoint, no logit scale; the benchmark reports it x100 (``evaluation.py``), which is ``scale=100`` here.

Loaded through open-clip-torch directly (not the ``hpsv2`` package, which re-reads the 2 GB checkpoint on every call
and first downloads the LAION ViT-H-14 weights that the checkpoint overwrites anyway). Preprocessing is the
reference's ``light_augmentation`` eval transform: 8-bit image -> ``ResizeMaxSize(224)`` (longer side to 224,
bicubic on the tensor, black padding, no crop) -> OpenAI mean/std.

v2.0 and v2.1 scores are not comparable with each other; the version is recorded in every row.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .base import SampleMetric
from .preprocess import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, normalize, resize_longest_and_pad, to_uint8_levels
from .weights import WeightsMismatchError, cached, check_keys, freeze, reading_weights, resolve_file

HPS_REPO = "xswu/HPSv2"
HPS_FILES = {"v2.0": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}


def hps_pixels(images: torch.Tensor, image_size: int, mean: Sequence[float] = OPENAI_CLIP_MEAN,
               std: Sequence[float] = OPENAI_CLIP_STD) -> torch.Tensor:
    """HPS v2 image preprocessing of float images in [0, 1]."""
    return normalize(resize_longest_and_pad(to_uint8_levels(images), image_size), mean, std)


def hps_from_features(image_features: torch.Tensor, text_features: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``scale * <image, text>`` of matching rows of already L2-normalised features, ``(N,)``."""
    return scale * (image_features.float() * text_features.float()).sum(-1)


def _build(architecture: str, path, device: torch.device, dtype: torch.dtype):
    """open_clip's own checkpoint reader (``weights_only=True``, the ``state_dict`` wrapper and ``module.`` prefixes
    removed, old formats converted); every key difference is then a :class:`WeightsMismatchError` naming the keys."""
    import open_clip

    model = open_clip.create_model(architecture, pretrained=None, device="cpu")
    with reading_weights(path, "the hpsv2 checkpoint"):
        try:
            incompatible = open_clip.load_checkpoint(model, str(path), strict=False)
        except RuntimeError as err:  # shapes that do not fit: load_state_dict raises even when not strict
            raise WeightsMismatchError("hpsv2", str(path), mismatched=[str(err).splitlines()[-1].strip()]) from None
    check_keys("hpsv2", path, incompatible.missing_keys, incompatible.unexpected_keys)
    return freeze(model, device, dtype), open_clip.get_tokenizer(architecture)


class HPSv2(SampleMetric):
    """``checkpoint``: the HPS ``.pt`` file, a folder holding it, or the hub repo (``xswu/HPSv2``); ``version``:
    ``"v2.0"`` or ``"v2.1"`` (the file name); ``architecture``: the open_clip config (ViT-H-14)."""

    name = "hpsv2"

    def __init__(self, checkpoint: str = HPS_REPO, version: str = "v2.1", scale: float = 100.0,
                 architecture: str = "ViT-H-14", **kwargs: Any):
        super().__init__(**kwargs)
        if version not in HPS_FILES:
            raise ValueError(f"hpsv2: version must be one of {sorted(HPS_FILES)}, got {version!r}")
        self.checkpoint, self.version, self.scale, self.architecture = checkpoint, version, float(scale), architecture

    def _load(self, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        path = resolve_file(self.checkpoint, HPS_FILES[self.version], metric=self.name, option="checkpoint")
        model, tokenizer = cached(("hpsv2", self.architecture, str(path.resolve()), str(device), dtype),
                                  lambda: _build(self.architecture, path, device, dtype))
        return {"model": model, "tokenizer": tokenizer}

    def score_batch(self, media: torch.Tensor, prompts: Sequence[str],
                    metadata: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        model, tokenizer = self.models["model"], self.models["tokenizer"]
        size = model.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        dtype = next(model.parameters()).dtype
        pixels = hps_pixels(media, size).to(media.device, dtype)
        image_features = model.encode_image(pixels, normalize=True)
        text_features = model.encode_text(tokenizer(list(prompts)).to(media.device), normalize=True)
        return {self.name: hps_from_features(image_features, text_features, self.scale)}

    def conventions(self) -> dict[str, Any]:
        return {"hpsv2_version": self.version, "hpsv2_scale": self.scale,
                "hpsv2_checkpoint": f"{self.checkpoint}:{HPS_FILES[self.version]}",
                "hpsv2_preprocess": "8-bit, resize longest side to 224 (bicubic, antialias) + black pad, no crop",
                "hpsv2_dtype": self.precision()}
