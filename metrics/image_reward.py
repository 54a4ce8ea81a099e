"""ImageReward v1.0 (THUDM/ImageReward), reimplemented on transformers' BLIP modules.

Reference (``ImageReward/ImageReward.py``): BLIP ViT-L/16 image embeddings (all 197 tokens) are cross-attended by a
BERT-base text encoder over the prompt (``padding='max_length', max_length=35``); the ``[CLS]`` output goes through a
768-1024-128-64-16-1 linear MLP and is z-scored with the training mean 0.16717362830052426 and std
1.0333394966054072. Papers report IR x 100 (``scale=100`` here). Preprocessing is OpenAI CLIP's (shortest side 224,
bicubic, centre crop 224, CLIP mean/std).

The ``image-reward`` package itself does not import on transformers >= 4.56 (its BLIP ``med.py`` imports helpers that
moved), pulls in diffusers/fairscale/old timm, and loads the checkpoint with ``strict=False`` so that a wrong file
gives a random model silently. Here the checkpoint's keys are converted explicitly
(:func:`convert_image_reward_state_dict`) and every module is loaded strictly.

transformers' ``BlipTextModel`` is BLIP's ``med.py`` BERT: with ``is_decoder=True`` in the config each layer gets a
cross-attention block, and ``forward(is_decoder=False)`` keeps the self-attention bidirectional, which is med.py's
``mode='multimodal'`` that ImageReward uses.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .base import SampleMetric
from .heads import RewardMLP
from .preprocess import clip_preprocess
from .weights import (WeightsMismatchError, cached, freeze, is_hub_id, load_state_dict_file, load_strictly,
                      resolve_file, resolve_folder)

IR_REPO = "THUDM/ImageReward"
IR_CHECKPOINT = "ImageReward.pt"
IR_MED_CONFIG = "med_config.json"
IR_TOKENIZER = "bert-base-uncased"
IR_MEAN = 0.16717362830052426
IR_STD = 1.0333394966054072
IR_MAX_LENGTH = 35

# reference key -> transformers key, per part; applied in order, first match wins
_VISION_RULES = [
    (r"cls_token", r"embeddings.class_embedding"),
    (r"pos_embed", r"embeddings.position_embedding"),
    (r"patch_embed\.proj\.(weight|bias)", r"embeddings.patch_embedding.\1"),
    (r"blocks\.(\d+)\.norm1\.(weight|bias)", r"encoder.layers.\1.layer_norm1.\2"),
    (r"blocks\.(\d+)\.norm2\.(weight|bias)", r"encoder.layers.\1.layer_norm2.\2"),
    (r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)", r"encoder.layers.\1.self_attn.qkv.\2"),
    (r"blocks\.(\d+)\.attn\.proj\.(weight|bias)", r"encoder.layers.\1.self_attn.projection.\2"),
    (r"blocks\.(\d+)\.mlp\.fc([12])\.(weight|bias)", r"encoder.layers.\1.mlp.fc\2.\3"),
    (r"norm\.(weight|bias)", r"post_layernorm.\1"),
]
# in the checkpoint but not used for scoring: BLIP's contrastive projections and a non-learned buffer
_UNUSED = re.compile(r"blip\.(vision_proj|text_proj)\.(weight|bias)|blip\.text_encoder\.embeddings\.position_ids")


def convert_image_reward_state_dict(state: dict[str, torch.Tensor],
                                    source: str = "the ImageReward.pt state dict") -> dict[str, dict[str, torch.Tensor]]:
    """Split an ``ImageReward.pt`` state dict into ``{"vision", "text", "head"}`` state dicts with the key names of
    ``BlipVisionModel``, ``BlipTextModel`` and :class:`RewardMLP`. A key that is neither converted nor known to be
    unused is an error (a wrong file must not load as a half-random model)."""
    parts: dict[str, dict[str, torch.Tensor]] = {"vision": {}, "text": {}, "head": {}}
    unknown = []
    for key, tensor in state.items():
        if key.startswith("blip.visual_encoder."):
            rest = key.removeprefix("blip.visual_encoder.")
            for pattern, target in _VISION_RULES:
                if re.fullmatch(pattern, rest):
                    parts["vision"][re.sub(pattern, target, rest)] = tensor
                    break
            else:
                unknown.append(key)
        elif key.startswith("blip.text_encoder.") and not _UNUSED.fullmatch(key):
            parts["text"][key.removeprefix("blip.text_encoder.")] = tensor
        elif key.startswith("mlp.layers."):
            parts["head"][key.removeprefix("mlp.")] = tensor
        elif not _UNUSED.fullmatch(key):
            unknown.append(key)
    if unknown:
        raise WeightsMismatchError("image_reward", source, unexpected=unknown)
    for part, tensors in parts.items():
        if not tensors:
            raise WeightsMismatchError("image_reward", source, missing=[f"every {part} tensor"])
    return parts


def blip_vision_config(vision_state: dict[str, torch.Tensor], head_dim: int = 64):
    """The ``BlipVisionConfig`` of a converted BLIP ViT, read off its tensor shapes (heads = width / ``head_dim``;
    BLIP's ViT: LayerNorm eps 1e-6, exact GELU, qkv bias)."""
    from transformers import BlipVisionConfig

    width = vision_state["embeddings.class_embedding"].shape[-1]
    patch = vision_state["embeddings.patch_embedding.weight"].shape[-1]
    grid = math.isqrt(vision_state["embeddings.position_embedding"].shape[1] - 1)
    layers = 1 + max(int(k.split(".")[2]) for k in vision_state if k.startswith("encoder.layers."))
    if width % head_dim:
        raise ValueError(f"image_reward: vision width {width} is not a multiple of head_dim {head_dim}")
    return BlipVisionConfig(hidden_size=width,
                            intermediate_size=vision_state["encoder.layers.0.mlp.fc1.weight"].shape[0],
                            num_hidden_layers=layers, num_attention_heads=width // head_dim, image_size=grid * patch,
                            patch_size=patch, layer_norm_eps=1e-6, hidden_act="gelu", attention_dropout=0.0)


def blip_text_config(med_config: dict[str, Any], encoder_width: int, tokenizer=None):
    """The ``BlipTextConfig`` of ImageReward's BERT (``med_config.json``) cross-attending ``encoder_width`` features."""
    from transformers import BlipTextConfig

    special = {}
    if tokenizer is not None:
        special = {"bos_token_id": tokenizer.bos_token_id, "sep_token_id": tokenizer.sep_token_id,
                   "eos_token_id": tokenizer.sep_token_id}
    return BlipTextConfig(
        vocab_size=med_config["vocab_size"], hidden_size=med_config["hidden_size"],
        encoder_hidden_size=encoder_width, intermediate_size=med_config["intermediate_size"],
        num_hidden_layers=med_config["num_hidden_layers"], num_attention_heads=med_config["num_attention_heads"],
        max_position_embeddings=med_config["max_position_embeddings"], hidden_act=med_config.get("hidden_act", "gelu"),
        layer_norm_eps=med_config.get("layer_norm_eps", 1e-12),
        hidden_dropout_prob=med_config.get("hidden_dropout_prob", 0.1),
        attention_probs_dropout_prob=med_config.get("attention_probs_dropout_prob", 0.1),
        pad_token_id=med_config.get("pad_token_id", 0), is_decoder=True, **special)


class ImageRewardModel(nn.Module):
    """BLIP ViT + cross-attending BERT + reward MLP; returns the raw (not z-scored) reward."""

    def __init__(self, vision: nn.Module, text: nn.Module, head: RewardMLP):
        super().__init__()
        self.vision, self.text, self.head = vision, text, head

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:
        image_embeds = self.vision(pixel_values=pixel_values).last_hidden_state
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        text = self.text(input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=image_embeds,
                         encoder_attention_mask=image_mask, is_decoder=False)
        cls = text.last_hidden_state[:, 0, :].float()
        return self.head(cls.to(self.head.layers[0].weight.dtype)).squeeze(-1).float()

    @classmethod
    def from_checkpoint(cls, state: dict[str, torch.Tensor], med_config: dict[str, Any], tokenizer=None,
                        vision_head_dim: int = 64, source: str = "the ImageReward.pt state dict") -> "ImageRewardModel":
        """Build and strictly load from an ``ImageReward.pt`` state dict (``source`` names it in errors)."""
        from transformers import BlipTextModel, BlipVisionModel

        parts = convert_image_reward_state_dict(state, source)
        vision_cfg = blip_vision_config(parts["vision"], vision_head_dim)
        vision = load_strictly(BlipVisionModel(vision_cfg), parts["vision"], metric="image_reward", source=source)
        text = BlipTextModel(blip_text_config(med_config, vision_cfg.hidden_size, tokenizer), add_pooling_layer=False)
        load_strictly(text, parts["text"], metric="image_reward", source=source)
        return cls(vision, text, RewardMLP.from_state_dict(parts["head"], metric="image_reward", source=source))


def load_blip_tokenizer(folder: Path):
    """BERT tokenizer with BLIP's two added special tokens (``[DEC]`` as bos, ``[ENC]``), as ImageReward's
    ``init_tokenizer`` builds it."""
    from transformers import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(str(folder))
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


def image_reward_from_raw(raw: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The reported ImageReward: ``scale * (raw - mean) / std``."""
    return scale * (raw.float() - IR_MEAN) / IR_STD


def _build(checkpoint: Path, med_config: Path, tokenizer_dir: Path, vision_head_dim: int, device: torch.device,
           dtype: torch.dtype):
    tokenizer = load_blip_tokenizer(tokenizer_dir)
    config = json.loads(med_config.read_text())
    if len(tokenizer) > config["vocab_size"]:
        raise ValueError(f"image_reward: tokenizer has {len(tokenizer)} tokens, med_config vocab_size is "
                         f"{config['vocab_size']}")
    model = ImageRewardModel.from_checkpoint(load_state_dict_file(checkpoint), config, tokenizer, vision_head_dim,
                                             source=str(checkpoint))
    model = freeze(model, device, dtype)
    model.head.float()
    return model, tokenizer


class ImageReward(SampleMetric):
    """``checkpoint``: ``ImageReward.pt`` (file, folder or hub repo); ``med_config``: its BERT config (default: next
    to the checkpoint); ``tokenizer``: ``bert-base-uncased`` (hub id or folder)."""

    name = "image_reward"

    def __init__(self, checkpoint: str = IR_REPO, med_config: str | None = None, tokenizer: str = IR_TOKENIZER,
                 scale: float = 100.0, vision_head_dim: int = 64, **kwargs: Any):
        super().__init__(**kwargs)
        self.checkpoint, self.med_config, self.tokenizer = checkpoint, med_config, tokenizer
        self.scale, self.vision_head_dim = float(scale), vision_head_dim

    def _load(self, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        checkpoint = resolve_file(self.checkpoint, IR_CHECKPOINT, metric=self.name, option="checkpoint")
        if self.med_config is None:  # beside the checkpoint (a folder or hub repo holds both)
            med_ref = self.checkpoint if is_hub_id(self.checkpoint) else checkpoint.parent
            med_config = resolve_file(med_ref, IR_MED_CONFIG, metric=self.name, option="med_config")
        else:
            med_config = resolve_file(self.med_config, IR_MED_CONFIG, metric=self.name, option="med_config")
        tokenizer_dir = resolve_folder(self.tokenizer, metric=self.name, option="tokenizer",
                                       needs=(("vocab.txt", "tokenizer.json"),))
        key = ("image_reward", str(checkpoint.resolve()), str(med_config.resolve()), str(tokenizer_dir.resolve()),
               self.vision_head_dim, str(device), dtype)
        model, tokenizer = cached(key, lambda: _build(checkpoint, med_config, tokenizer_dir, self.vision_head_dim,
                                                      device, dtype))
        return {"model": model, "tokenizer": tokenizer}

    def score_batch(self, media: torch.Tensor, prompts: Sequence[str],
                    metadata: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        model, tokenizer = self.models["model"], self.models["tokenizer"]
        size = model.vision.config.image_size
        pixels = clip_preprocess(media, resize_to=size, crop_to=size, rounding="torchvision")
        tokens = tokenizer(list(prompts), padding="max_length", truncation=True, max_length=IR_MAX_LENGTH,
                           return_tensors="pt")
        raw = model(pixels.to(media.device, next(model.vision.parameters()).dtype),
                    tokens["input_ids"].to(media.device), tokens["attention_mask"].to(media.device))
        return {self.name: image_reward_from_raw(raw, self.scale)}

    def conventions(self) -> dict[str, Any]:
        return {"image_reward_checkpoint": f"{self.checkpoint}:{IR_CHECKPOINT}", "image_reward_scale": self.scale,
                "image_reward_normalisation": f"(r - {IR_MEAN}) / {IR_STD}",
                "image_reward_impl": "transformers BLIP port of ImageReward v1.0 (strict key conversion)",
                "image_reward_dtype": self.precision()}
