"""One transformers CLIP per (weights, processor, device, dtype) per process, shared by every metric that uses it.

The aesthetic predictor, GenEval's colour classifier, CLIP score and MTScore-CLIP all default to
``openai/clip-vit-large-patch14``; they get the same :class:`ClipBackbone` object, loaded once. PickScore is a CLIP
with other weights and the LAION processor, so it gets its own.

Embeddings are the projected pooled outputs, computed as ``visual_projection(vision_model(x).pooler_output)`` and
``text_projection(text_model(ids).pooler_output)``: transformers 5 returns output objects from
``get_image_features``/``get_text_features``, and the explicit form means the same thing in every version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from .base import SampleMetric
from .preprocess import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, CropRounding, clip_preprocess
from .weights import cached, freeze, from_pretrained_strictly, resolve_folder

DEFAULT_CLIP = "openai/clip-vit-large-patch14"
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer_config.json")


def matched_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of matching rows of ``(N, D)`` embeddings, ``(N,)`` in float32."""
    return (F.normalize(a.float(), dim=-1) * F.normalize(b.float(), dim=-1)).sum(-1)


def _side(value, default: int) -> int:
    """A size entry of ``preprocessor_config.json``: an int, or a dict with shortest_edge / height."""
    if value is None:
        return default
    if isinstance(value, int):
        return value
    return int(value.get("shortest_edge", value.get("height", default)))


class ClipBackbone:
    """A loaded CLIP: model, tokenizer and the image preprocessing its processor config describes."""

    def __init__(self, model, tokenizer, *, source: str, processor_source: str, resize_to: int, crop_to: int,
                 mean: Sequence[float], std: Sequence[float]):
        self.model, self.tokenizer = model, tokenizer
        self.source, self.processor_source = source, processor_source
        self.resize_to, self.crop_to = resize_to, crop_to
        self.mean, self.std = tuple(mean), tuple(std)
        self._text_cache: dict[tuple[str, ...], torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        return self.model.text_projection.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.text_projection.weight.dtype

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.float().exp()

    def preprocess(self, images: torch.Tensor, rounding: CropRounding = "torchvision") -> torch.Tensor:
        """Float images in [0, 1] -> normalised pixel values at the model's resolution, in the model's dtype."""
        pixels = clip_preprocess(images, resize_to=self.resize_to, crop_to=self.crop_to, mean=self.mean,
                                 std=self.std, rounding=rounding)
        return pixels.to(self.device, self.dtype)

    def embed_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected image embeddings (not normalised), float32."""
        pooled = self.model.vision_model(pixel_values=pixel_values).pooler_output
        return self.model.visual_projection(pooled).float()

    def embed_images(self, images: torch.Tensor, rounding: CropRounding = "torchvision") -> torch.Tensor:
        return self.embed_pixels(self.preprocess(images, rounding))

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Projected text embeddings (not normalised), float32; CLIP's 77-token limit, truncated keeping EOS."""
        max_len = min(self.tokenizer.model_max_length, self.model.config.text_config.max_position_embeddings)
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        out = self.model.text_model(input_ids=tokens["input_ids"].to(self.device),
                                    attention_mask=tokens["attention_mask"].to(self.device))
        return self.model.text_projection(out.pooler_output).float()

    def embed_fixed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """:meth:`embed_texts` for a fixed list (class prompts, captions), computed once per backbone."""
        key = tuple(texts)
        if key not in self._text_cache:
            with torch.no_grad():
                self._text_cache[key] = self.embed_texts(key)
        return self._text_cache[key]


def _build(model_dir: Path, processor_dir: Path, source: str, processor_source: str, device: torch.device,
           dtype: torch.dtype, metric: str) -> ClipBackbone:
    from transformers import AutoTokenizer, CLIPModel

    model = freeze(from_pretrained_strictly(CLIPModel, model_dir, metric=metric, dtype=dtype), device, dtype)
    tokenizer = AutoTokenizer.from_pretrained(str(processor_dir))
    image_size = model.config.vision_config.image_size
    config_file = processor_dir / "preprocessor_config.json"
    cfg = json.loads(config_file.read_text()) if config_file.is_file() else {}
    return ClipBackbone(model, tokenizer, source=source, processor_source=processor_source,
                        resize_to=_side(cfg.get("size"), image_size), crop_to=_side(cfg.get("crop_size"), image_size),
                        mean=cfg.get("image_mean", OPENAI_CLIP_MEAN), std=cfg.get("image_std", OPENAI_CLIP_STD))


def load_clip(model: str, device: torch.device, dtype: torch.dtype, *, metric: str, option: str,
              processor: str | None = None, processor_option: str | None = None) -> ClipBackbone:
    """The shared CLIP for ``model`` weights (hub id or local folder) and ``processor`` (tokenizer and image
    settings; default: the model's own folder)."""
    model_dir = resolve_folder(model, metric=metric, option=option)
    if processor is None:
        processor_dir = model_dir
        resolve_folder(model_dir, metric=metric, option=option, needs=(_TOKENIZER_FILES,))
    else:
        processor_dir = resolve_folder(processor, metric=metric, option=processor_option or "processor",
                                       needs=(_TOKENIZER_FILES,))
    key = ("clip", str(model_dir.resolve()), str(processor_dir.resolve()), str(device), dtype)
    return cached(key, lambda: _build(model_dir, processor_dir, str(model), str(processor or model), device, dtype,
                                      metric))


class ClipMetric(SampleMetric):
    """A metric whose only weights are one shared CLIP: the ``clip`` option (hub id or local folder)."""

    def __init__(self, clip: str = DEFAULT_CLIP, **kwargs: Any):
        super().__init__(**kwargs)
        self.clip = clip

    def _load(self, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        return {"clip": load_clip(self.clip, device, dtype, metric=self.name, option="clip")}
