"""The ShapeBench model: a small pixel-space ``UNet2DConditionModel``, a small ``CLIPTextModel`` and a word-level
tokenizer over the grammar's vocabulary, with a DDIM (v-prediction, cosine schedule) scheduler config.

On disk (diffusers / transformers folder formats, all loaded with ``from_pretrained``)::

    model_index.json    ShapeBench manifest: component folders, image size, prediction type, provenance
    unet/               config.json + diffusion_pytorch_model.safetensors
    text_encoder/       config.json + model.safetensors
    tokenizer/          tokenizer.json (tokenizers WordLevel) + tokenizer_config.json (PreTrainedTokenizerFast)
    scheduler/          scheduler_config.json (DDIMScheduler)

Pixels are the latents: the model works on images in [-1, 1], (B, 3, 32, 32).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from datamodules.shapebench.prompts import vocabulary
from datamodules.shapebench.world import IMAGE_SIZE

MAX_TOKENS = 16
SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")
MANIFEST = "model_index.json"
FORMAT = "zeta_eval.shapebench/2"

#: 0.32 GFLOP per sample: the upsampling convolutions at 32x32 and 16x16 dominate, so the top levels stay thin and
#: the capacity (and all attention) sits at 8x8 and 4x4 (see docs/shapebench/README.md for the speed budget). v2 widens
#: the 4x4 level from 96 to 128 channels (v1: 0.27 GFLOP): in a GPU pilot at equal steps it learned the nine close
#: colours markedly faster (colors 58% against 27% at guidance 3 after 3,600 steps)
UNET_CONFIG: dict[str, Any] = {
    "sample_size": IMAGE_SIZE,
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
    "block_out_channels": [16, 32, 64, 128],
    "layers_per_block": 1,
    "norm_num_groups": 8,  # GroupNorm: one sample's output never depends on the rest of its batch
    "cross_attention_dim": 128,
    "attention_head_dim": 4,  # diffusers' legacy name: the number of heads
    "transformer_layers_per_block": 1,
}
TEXT_CONFIG: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "max_position_embeddings": MAX_TOKENS,
    "projection_dim": 128,
}
SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "v_prediction",
    "clip_sample": False,
    "thresholding": False,
    "set_alpha_to_one": True,
    "steps_offset": 0,
    "timestep_spacing": "trailing",
}


def build_tokenizer():
    """A ``PreTrainedTokenizerFast`` over the grammar's words: "<bos> words <eos>", padded to ``MAX_TOKENS``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for w in vocabulary():
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>", model_max_length=MAX_TOKENS, padding_side="right")


def build_text_encoder(tokenizer, seed: int = 0):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **TEXT_CONFIG)
    torch.manual_seed(seed)
    return CLIPTextModel(config)


def build_unet(seed: int = 0):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(**UNET_CONFIG)


def build_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SCHEDULER_CONFIG)


@dataclass
class ShapeBenchModel:
    """The loaded components."""

    unet: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    manifest: dict[str, Any]

    def tokenize(self, prompts: Sequence[str]) -> torch.Tensor:
        return tokenize(self.tokenizer, prompts)

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Token states (B, MAX_TOKENS, hidden) of the prompts ("" = the unconditional prompt)."""
        ids = self.tokenize(prompts).to(self.text_encoder.device)
        return self.text_encoder(input_ids=ids).last_hidden_state


def tokenize(tokenizer, prompts: Sequence[str]) -> torch.Tensor:
    """Token ids (B, MAX_TOKENS), always padded to the full length (so a sample never depends on its batch).

    Raises ValueError for a word outside the vocabulary or a prompt longer than the context.
    """
    if isinstance(prompts, str):
        raise ValueError("prompts must be a sequence of strings, not one string")
    unk = tokenizer.unk_token_id
    enc = tokenizer(list(prompts), padding="max_length", max_length=MAX_TOKENS, truncation=False,
                    return_tensors="pt")
    ids = enc["input_ids"]
    if ids.shape[1] > MAX_TOKENS:
        raise ValueError(f"a prompt is longer than {MAX_TOKENS - 2} words, the ShapeBench context")
    bad = [p for p, row in zip(prompts, ids) if bool((row == unk).any())]
    if bad:
        raise ValueError(f"prompt {bad[0]!r} has words outside the ShapeBench vocabulary "
                         f"({', '.join(vocabulary())})")
    return ids


def new_model(seed: int = 0) -> ShapeBenchModel:
    tokenizer = build_tokenizer()
    return ShapeBenchModel(unet=build_unet(seed), text_encoder=build_text_encoder(tokenizer, seed + 1),
                           tokenizer=tokenizer, scheduler=build_scheduler(), manifest=manifest())


def manifest(**extra: Any) -> dict[str, Any]:
    return {"format": FORMAT, "unet": "unet", "text_encoder": "text_encoder", "tokenizer": "tokenizer",
            "scheduler": "scheduler", "image_size": IMAGE_SIZE, "pixel_range": [-1.0, 1.0],
            "prediction_type": SCHEDULER_CONFIG["prediction_type"], "max_tokens": MAX_TOKENS, **extra}


def save_model(model: ShapeBenchModel, folder: str | os.PathLike, **provenance: Any) -> None:
    """Write the model folder (safetensors weights + configs + manifest)."""
    os.makedirs(folder, exist_ok=True)
    model.unet.save_pretrained(os.path.join(folder, "unet"), safe_serialization=True)
    model.text_encoder.save_pretrained(os.path.join(folder, "text_encoder"), safe_serialization=True)
    model.tokenizer.save_pretrained(os.path.join(folder, "tokenizer"))
    model.scheduler.save_pretrained(os.path.join(folder, "scheduler"))
    info = {**model.manifest, **provenance}
    with open(os.path.join(folder, MANIFEST), "w") as f:
        json.dump(info, f, indent=2, sort_keys=True)
        f.write("\n")


def load_model(folder: str | os.PathLike, device: str | torch.device = "cpu") -> ShapeBenchModel:
    """Load a ShapeBench model folder with ``from_pretrained`` (local files only)."""
    from diffusers import DDIMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel

    from metrics.weights import reading_weights

    folder = os.fspath(folder)
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{folder!r} is not a ShapeBench model folder (no {MANIFEST}); export one with "
                                "`python -m zeta_eval.shapebench.export CHECKPOINT --out DIR`")
    with open(path) as f:
        info = json.load(f)
    if info.get("format") != FORMAT:
        raise ValueError(f"{path}: format must be {FORMAT!r}, got {info.get('format')!r}")
    sub = lambda key: os.path.join(folder, info[key])  # noqa: E731
    with reading_weights(folder, f"the ShapeBench model {folder!r}"):  # a truncated or corrupt file: one line
        unet = UNet2DConditionModel.from_pretrained(sub("unet"), local_files_only=True).to(device).eval()
        text = CLIPTextModel.from_pretrained(sub("text_encoder"), local_files_only=True).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(sub("tokenizer"), local_files_only=True)
        scheduler = DDIMScheduler.from_pretrained(sub("scheduler"), local_files_only=True)
    return ShapeBenchModel(unet=unet, text_encoder=text, tokenizer=tokenizer, scheduler=scheduler, manifest=info)


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
