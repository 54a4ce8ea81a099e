"""Tiny random-weight scorer models, saved to folders/files the metrics load through their ordinary paths.

Same architecture classes as the real weights, shrunk: transformers CLIP / BLIP / Mask2Former, an open_clip config
registered at test time, ImageReward checkpoints written with the *reference* key names (derived from ImageReward's
module structure: timm-style BLIP ViT ``blip.visual_encoder.*``, med.py BERT ``blip.text_encoder.*``, ``mlp.layers.*``),
torchvision AlexNet features and RAFT with random weights (``weights=None``, nothing downloaded). Every builder seeds
torch, so a folder is the same on every run. Also home of the worker of the two-process sync test.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from metrics.base import SampleMetric

SEED = 0
TINY_OPEN_CLIP = "zeta-tiny-ViT"
CLIP_IMAGE = 32


# ---------------------------------------------------------------------------------------------- CLIP (transformers)
def build_clip(folder, *, image_size: int = CLIP_IMAGE, logit_scale: float | None = None,
               with_processor: bool = True) -> str:
    """A tiny ``CLIPModel`` with tokenizer and ``preprocessor_config.json`` (shortest edge and crop = image_size)."""
    from tiny_models import clip_tokenizer
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(SEED)
    tok = clip_tokenizer()
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=image_size, patch_size=8),
        projection_dim=16)
    model = CLIPModel(cfg).eval()
    if logit_scale is not None:
        with torch.no_grad():
            model.logit_scale.fill_(float(torch.tensor(logit_scale).log()))
    folder = Path(folder)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    if with_processor:
        CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
                           ).save_pretrained(folder)
    return str(folder)


def build_clip_processor(folder, *, image_size: int = CLIP_IMAGE) -> str:
    """Only the tokenizer and image settings (as the LAION processor repo is used by PickScore)."""
    from tiny_models import clip_tokenizer
    from transformers import CLIPImageProcessor

    folder = Path(folder)
    clip_tokenizer().save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
                       ).save_pretrained(folder)
    return str(folder)


# ---------------------------------------------------------------------------------------------- HPS (open_clip)
def register_tiny_open_clip(folder) -> str:
    """Register a tiny ViT CLIP config with open_clip (idempotent) and return its name."""
    import open_clip

    if TINY_OPEN_CLIP not in open_clip.list_models():
        cfg = {"embed_dim": 16,
               "vision_cfg": {"image_size": CLIP_IMAGE, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
               "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}
        path = Path(folder) / f"{TINY_OPEN_CLIP}.json"
        path.write_text(json.dumps(cfg))
        open_clip.add_model_config(path)
    return TINY_OPEN_CLIP


def build_hps_checkpoint(folder, filename: str = "HPS_v2.1_compressed.pt") -> Path:
    """An HPS-style checkpoint of the tiny open_clip model: ``{'state_dict': {'module.' + key: fp16 tensor}}``."""
    import open_clip

    name = register_tiny_open_clip(folder)
    torch.manual_seed(SEED)
    model = open_clip.create_model(name, pretrained=None)
    state = {f"module.{k}": v.half() for k, v in model.state_dict().items()}
    path = Path(folder) / filename
    torch.save({"state_dict": state}, path)
    return path


# ---------------------------------------------------------------------------------------------- ImageReward
FULL_IR = dict(vision_width=1024, vision_depth=24, patch=16, image_size=224, text_width=768, text_depth=12,
               text_intermediate=3072, vocab=30524, max_positions=512, proj=256)
TINY_IR = dict(vision_width=32, vision_depth=2, patch=16, image_size=32, text_width=32, text_depth=2,
               text_intermediate=64, vocab=None, max_positions=40, proj=8)


def image_reward_reference_shapes(vision_width, vision_depth, patch, image_size, text_width, text_depth,
                                  text_intermediate, vocab, max_positions, proj) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an ``ImageReward.pt`` state dict, from ImageReward's modules: ``ImageReward.blip`` is
    ``BLIP_Pretrain`` (``visual_encoder`` = BLIP's timm-style VisionTransformer, ``text_encoder`` = med.py
    ``BertModel(add_pooling_layer=False)`` with cross-attention in every layer and a persistent ``position_ids``
    buffer, ``vision_proj``/``text_proj``) and ``ImageReward.mlp.layers`` the 5-linear head."""
    w, t, i = vision_width, text_width, text_intermediate
    shapes: dict[str, tuple[int, ...]] = {
        "blip.visual_encoder.cls_token": (1, 1, w),
        "blip.visual_encoder.pos_embed": (1, (image_size // patch) ** 2 + 1, w),
        "blip.visual_encoder.patch_embed.proj.weight": (w, 3, patch, patch),
        "blip.visual_encoder.patch_embed.proj.bias": (w,),
    }
    for b in range(vision_depth):
        p = f"blip.visual_encoder.blocks.{b}."
        shapes.update({p + "norm1.weight": (w,), p + "norm1.bias": (w,), p + "attn.qkv.weight": (3 * w, w),
                       p + "attn.qkv.bias": (3 * w,), p + "attn.proj.weight": (w, w), p + "attn.proj.bias": (w,),
                       p + "norm2.weight": (w,), p + "norm2.bias": (w,), p + "mlp.fc1.weight": (4 * w, w),
                       p + "mlp.fc1.bias": (4 * w,), p + "mlp.fc2.weight": (w, 4 * w), p + "mlp.fc2.bias": (w,)})
    shapes.update({"blip.visual_encoder.norm.weight": (w,), "blip.visual_encoder.norm.bias": (w,)})
    e = "blip.text_encoder.embeddings."
    shapes.update({e + "position_ids": (1, max_positions), e + "word_embeddings.weight": (vocab, t),
                   e + "position_embeddings.weight": (max_positions, t), e + "LayerNorm.weight": (t,),
                   e + "LayerNorm.bias": (t,)})
    for layer in range(text_depth):
        p = f"blip.text_encoder.encoder.layer.{layer}."
        for block, kv_width in (("attention", t), ("crossattention", w)):
            shapes.update({p + f"{block}.self.query.weight": (t, t), p + f"{block}.self.query.bias": (t,),
                           p + f"{block}.self.key.weight": (t, kv_width), p + f"{block}.self.key.bias": (t,),
                           p + f"{block}.self.value.weight": (t, kv_width), p + f"{block}.self.value.bias": (t,),
                           p + f"{block}.output.dense.weight": (t, t), p + f"{block}.output.dense.bias": (t,),
                           p + f"{block}.output.LayerNorm.weight": (t,), p + f"{block}.output.LayerNorm.bias": (t,)})
        shapes.update({p + "intermediate.dense.weight": (i, t), p + "intermediate.dense.bias": (i,),
                       p + "output.dense.weight": (t, i), p + "output.dense.bias": (t,),
                       p + "output.LayerNorm.weight": (t,), p + "output.LayerNorm.bias": (t,)})
    shapes.update({"blip.vision_proj.weight": (proj, w), "blip.vision_proj.bias": (proj,),
                   "blip.text_proj.weight": (proj, t), "blip.text_proj.bias": (proj,)})
    for index, (out_f, in_f) in zip((0, 2, 4, 6, 7), ((1024, t), (128, 1024), (64, 128), (16, 64), (1, 16))):
        shapes.update({f"mlp.layers.{index}.weight": (out_f, in_f), f"mlp.layers.{index}.bias": (out_f,)})
    return shapes


def med_config(text_width, text_depth, text_intermediate, vocab, max_positions, heads) -> dict:
    """ImageReward's ``med_config.json`` fields (BERT with cross-attention)."""
    return {"architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "hidden_size": text_width, "initializer_range": 0.02,
            "intermediate_size": text_intermediate, "layer_norm_eps": 1e-12, "max_position_embeddings": max_positions,
            "model_type": "bert", "num_attention_heads": heads, "num_hidden_layers": text_depth, "pad_token_id": 0,
            "type_vocab_size": 2, "vocab_size": vocab, "encoder_width": 768, "add_cross_attention": True}


def build_bert_tokenizer(folder) -> str:
    from tiny_models import bert_tokenizer

    bert_tokenizer().save_pretrained(folder)
    return str(folder)


def build_image_reward(folder) -> dict[str, str]:
    """``ImageReward.pt`` (reference key names, random values, LayerNorms at 1/0) + ``med_config.json`` in
    ``folder/ir``, and a BERT tokenizer folder ``folder/bert``. Returns the paths and the reference state dict."""
    from tiny_models import bert_tokenizer

    folder = Path(folder)
    (folder / "ir").mkdir(parents=True, exist_ok=True)
    tokenizer_dir = build_bert_tokenizer(folder / "bert")
    vocab = len(bert_tokenizer()) + 2  # BLIP adds [DEC] and [ENC]
    dims = dict(TINY_IR, vocab=vocab)
    torch.manual_seed(SEED)
    state = {}
    for key, shape in image_reward_reference_shapes(**dims).items():
        if key.endswith("position_ids"):
            state[key] = torch.arange(shape[1]).view(shape)
        elif "norm" in key.lower() and key.endswith("weight"):
            state[key] = 1 + 0.1 * torch.randn(shape)
        else:
            state[key] = 0.2 * torch.randn(shape)
    torch.save(state, folder / "ir" / "ImageReward.pt")
    (folder / "ir" / "med_config.json").write_text(json.dumps(med_config(
        dims["text_width"], dims["text_depth"], dims["text_intermediate"], vocab, dims["max_positions"], heads=2)))
    return {"folder": str(folder / "ir"), "checkpoint": str(folder / "ir" / "ImageReward.pt"),
            "med_config": str(folder / "ir" / "med_config.json"), "tokenizer": tokenizer_dir, "state": state}


# ---------------------------------------------------------------------------------------------- GenEval detector
def build_mask2former(folder) -> str:
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

    torch.manual_seed(SEED)
    backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                          window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"])
    cfg = Mask2FormerConfig(backbone_config=backbone, num_labels=80, num_queries=10, hidden_dim=32,
                            mask_feature_size=32, feature_size=32, encoder_feedforward_dim=64, dim_feedforward=64,
                            encoder_layers=1, decoder_layers=2, num_attention_heads=2, common_stride=4)
    Mask2FormerForUniversalSegmentation(cfg).eval().save_pretrained(folder)
    return str(folder)


# ---------------------------------------------------------------------------------------------- torchvision nets
def build_alexnet_features(path) -> Path:
    """torchvision AlexNet ``features.*`` with random weights, plus one small ``classifier`` tensor standing in for
    the (unused, 230 MB) classifier of the real file."""
    from torchvision.models import alexnet

    torch.manual_seed(SEED)
    state = {k: v for k, v in alexnet(weights=None).features.state_dict().items()}
    state = {f"features.{k}": v for k, v in state.items()}
    state["classifier.6.bias"] = torch.zeros(1000)
    torch.save(state, path)
    return Path(path)


def build_raft(path, arch: str = "raft_small") -> Path:
    from torchvision.models import optical_flow

    torch.manual_seed(SEED)
    torch.save(getattr(optical_flow, arch)(weights=None).state_dict(), path)
    return Path(path)


# ---------------------------------------------------------------------------------------------- two-process sync
def sync_rank(rank: int, world_size: int, rendezvous: str, out_dir: str, videos: torch.Tensor,
              scores: torch.Tensor, tags: list[str]) -> None:
    """One rank of the gloo sync test: score its share of samples (round robin) with ``frame_ssim`` and a tagged
    metric, ``compute()`` (collective: every rank calls it) and write the results to ``out_dir/rank<r>.json``."""
    from datetime import timedelta

    import torch.distributed as dist

    from metrics import build_metric

    dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=300))
    try:
        mine = list(range(rank, len(videos), world_size))
        ssim = build_metric("frame_ssim")
        ssim.update(ssim.score(videos[mine], ["p"] * len(mine)))
        tagged = TaggedEcho()
        meta = [{"tag": tags[i], "value": float(scores[i])} for i in mine]
        tagged.update(tagged.score(torch.zeros(len(mine), 3, 1, 1), ["p"] * len(mine), meta), meta)
        result = {"frame_ssim": ssim.compute(), "echo": tagged.compute()}
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def sync_child(*args) -> None:
    """Entry point of the spawned rank (a fresh interpreter: one thread, like the test process)."""
    torch.set_num_threads(1)
    sync_rank(*args)


class TaggedEcho(SampleMetric):
    """Test metric: the per-sample value is ``metadata["value"]``; two tags."""

    name = "echo"
    tags = ("a", "b")

    def score_batch(self, media, prompts, metadata):
        return {self.name: torch.tensor([m["value"] for m in metadata], dtype=torch.float64)}
