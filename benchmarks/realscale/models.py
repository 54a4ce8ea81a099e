"""Real-size models with random weights, built from the published architecture configs beside this file.

No checkpoint is downloaded: each network is constructed with its parameters on the meta device (accelerate's
``init_empty_weights``; buffers such as position ids and attention masks stay real), then every parameter is
materialised in the requested dtype and device from one fixed block of N(0, 1) draws (:class:`RandomInit`), scaled
to ``1 / sqrt(fan_in)`` (norm weights 1, biases 0), so activations stay finite through dozens of layers. Building
SDXL's 3.5 B parameters this way takes seconds instead of the minutes of per-layer ``nn.init`` calls.

Every builder checks its parameter count against the published one (``published_params`` in the JSON) and raises
if the architecture differs.

Tokenizers are NOT the real ones (their vocabularies are files we cannot download): the CLIP and BERT tokenizers of
the tests' tiny models (byte-level BPE without merges, a small WordPiece) feed token ids into the full-size
embedding tables. HPS v2 uses open_clip's own bundled tokenizer. Tokenisation cost is negligible either way.
"""

from __future__ import annotations

import json
import math
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for _path in (ROOT, ROOT / "tests"):  # the project packages and the tests' tokenizer builders
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

#: elements in the random block every parameter is cut from (a prime, so rows of a matrix never repeat exactly)
BLOCK = 1_000_003


def load_config(name: str) -> dict[str, Any]:
    """The architecture JSON ``name`` (without ``.json``), with comment fields (``_source``, ...) dropped."""
    return _strip_comments(json.loads((HERE / f"{name}.json").read_text()))


def _strip_comments(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_comments(v) for k, v in value.items() if not k.startswith("_")}
    return value


def published(name: str) -> dict[str, Any]:
    return load_config(name).get("published_params", {})


# ---------------------------------------------------------------------------------------------- fast random init
@contextmanager
def empty_parameters(buffers: bool = False) -> Iterator[None]:
    """Modules built inside get meta parameters (no memory, no init cost); buffers are built for real unless
    ``buffers`` (a count on the meta device: SD 3's positional table alone is 0.9 GB in float32)."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=buffers):
        yield


class RandomInit:
    """Deterministic, fast random values for meta parameters: windows of one seeded N(0, 1) block, tiled.

    The block is kept pre-scaled per (std, dtype) (a few dozen distinct fan-ins per model), so a parameter costs one
    copy in its own dtype: memory bandwidth, not random-number generation or arithmetic.
    """

    def __init__(self, seed: int = 0, device: torch.device | str = "cpu"):
        """``device="meta"`` builds nothing: the architecture and its parameter count, for free."""
        self.device = torch.device(device)
        generator = torch.Generator().manual_seed(seed)
        self.block = torch.randn(BLOCK, generator=generator).to(self.device)
        self._scaled: dict[tuple[float, torch.dtype], torch.Tensor] = {}
        self.offset = 0

    def _doubled(self, std: float, dtype: torch.dtype) -> torch.Tensor:
        """``std * block`` twice in a row, so that any window of up to ``BLOCK`` elements is a view."""
        key = (std, dtype)
        if key not in self._scaled:
            scaled = (self.block * std).to(dtype)
            self._scaled[key] = torch.cat([scaled, scaled])
        return self._scaled[key]

    def normal(self, shape: tuple[int, ...], std: float, dtype: torch.dtype) -> torch.Tensor:
        n = math.prod(shape)
        start = self.offset % BLOCK
        self.offset += n + 7919  # consecutive tensors start at unrelated places in the block
        window = self._doubled(std, dtype)[start:start + BLOCK]
        values = window.repeat(-(-n // BLOCK))[:n] if n > BLOCK else window[:n].clone()
        return values.view(shape)

    def value(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        leaf = name.rsplit(".", 1)[-1]
        if len(shape) == 0:  # CLIP's logit scale: exp() = 100, as in the trained models
            return torch.full(shape, math.log(100.0) if leaf == "logit_scale" else 0.0, dtype=dtype,
                              device=self.device)
        if len(shape) == 1:
            if leaf == "bias":
                return torch.zeros(shape, dtype=dtype, device=self.device)
            if leaf == "weight":  # 1-D weights are the scales of LayerNorm / GroupNorm
                return torch.ones(shape, dtype=dtype, device=self.device)
            return self.normal(shape, 0.02, dtype)  # class embeddings and the like
        return self.normal(shape, 1.0 / math.sqrt(math.prod(shape[1:])), dtype)

    def materialise(self, module: nn.Module, dtype: torch.dtype) -> nn.Module:
        """Replace every meta parameter of ``module`` with random values (tied parameters stay tied), move the
        buffers to the device, and return the module in eval mode without gradients."""
        made: dict[int, nn.Parameter] = {}
        for module_name, sub in module.named_modules():
            for name, param in list(sub.named_parameters(recurse=False)):
                if id(param) not in made:
                    full = f"{module_name}.{name}" if module_name else name
                    if param.device.type == "meta":
                        made[id(param)] = nn.Parameter(self.value(full, tuple(param.shape), dtype),
                                                       requires_grad=False)
                    else:
                        made[id(param)] = nn.Parameter(param.detach().to(self.device, dtype), requires_grad=False)
                setattr(sub, name, made[id(param)])
        nn.Module.to(module, device=self.device, dtype=dtype)  # buffers (masks) too; not diffusers' .to() override
        still_meta = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.device.type == "meta"]
        if still_meta and self.device.type != "meta":  # device "meta": a free check of the architecture alone
            raise RuntimeError(f"{type(module).__name__}: {len(still_meta)} tensors left on the meta device, e.g. "
                               f"{still_meta[:3]}")
        return module.eval().requires_grad_(False)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def check_count(what: str, module: nn.Module, expected: int | None = None, millions: float | None = None) -> int:
    """The parameter count of ``module``; raises if it differs from the published ``expected`` (exact) or
    ``millions`` (rounded to two decimals, as open_clip's model profile lists them)."""
    n = count_parameters(module)
    if expected is not None and n != expected:
        raise AssertionError(f"{what}: {n:,} parameters, the published architecture has {expected:,}")
    if millions is not None and abs(n / 1e6 - millions) > 0.005:
        raise AssertionError(f"{what}: {n / 1e6:.2f} M parameters, the published architecture has {millions} M")
    return n


# ---------------------------------------------------------------------------------------------- text encoders
def _clip_text_config(cfg: dict[str, Any], tokenizer):
    from transformers import CLIPTextConfig

    # the special-token ids are the stand-in tokenizer's; every size is the published one
    return CLIPTextConfig(**{k: v for k, v in cfg.items() if k != "class"}, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def _clip_text_encoder(cfg: dict[str, Any], tokenizer, with_projection: bool):
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return cls(_clip_text_config(cfg, tokenizer))


# ---------------------------------------------------------------------------------------------- pipelines
def sdxl_pipeline(dtype: torch.dtype = torch.bfloat16, device: torch.device | str = "cpu", seed: int = 0):
    """SDXL base 1.0 (UNet 2.57 B, CLIP ViT-L text 123 M, OpenCLIP bigG text 695 M, VAE 84 M), random weights."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from tiny_models import clip_tokenizer

    cfg = load_config("sdxl_base_1_0")
    counts = cfg["published_params"]
    tok, tok2 = clip_tokenizer(), clip_tokenizer()
    with empty_parameters():
        unet = UNet2DConditionModel(**cfg["unet"])
        te = _clip_text_encoder(cfg["text_encoder"], tok, with_projection=False)
        te2 = _clip_text_encoder(cfg["text_encoder_2"], tok2, with_projection=True)
        vae = AutoencoderKL(**cfg["vae"])
    init = RandomInit(seed, device)
    for what, module in (("unet", unet), ("text_encoder", te), ("text_encoder_2", te2), ("vae", vae)):
        init.materialise(module, dtype)
        check_count(f"SDXL {what}", module, counts[what])
    scheduler = EulerDiscreteScheduler(**cfg["scheduler"])
    return StableDiffusionXLPipeline(vae=vae, text_encoder=te, text_encoder_2=te2, tokenizer=tok, tokenizer_2=tok2,
                                     unet=unet, scheduler=scheduler, add_watermarker=False, **cfg["pipeline"])


def sd21_pipeline(dtype: torch.dtype = torch.bfloat16, device: torch.device | str = "cpu", seed: int = 0):
    """Stable Diffusion 2.1 (v-prediction; UNet 866 M, OpenCLIP ViT-H text 340 M, VAE 84 M), random weights."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from tiny_models import clip_tokenizer

    cfg = load_config("sd_2_1")
    counts = cfg["published_params"]
    tok = clip_tokenizer()
    with empty_parameters():
        unet = UNet2DConditionModel(**cfg["unet"])
        te = _clip_text_encoder(cfg["text_encoder"], tok, with_projection=False)
        vae = AutoencoderKL(**cfg["vae"])
    init = RandomInit(seed, device)
    for what, module in (("unet", unet), ("text_encoder", te), ("vae", vae)):
        init.materialise(module, dtype)
        check_count(f"SD-2.1 {what}", module, counts[what])
    return StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet,
                                   scheduler=DDIMScheduler(**cfg["scheduler"]), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


# ---------------------------------------------------------------------------------------------- flow-matching models
def _t5_encoder(cfg: dict[str, Any], tokenizer, umt5: bool = False):
    """A T5 / UMT5 encoder of the published sizes (special-token ids of the stand-in tokenizer); its input embedding
    is tied to ``shared`` again after the empty-parameter build (which unties them)."""
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    config = (UMT5Config if umt5 else T5Config)(**cfg,
                                                 pad_token_id=tokenizer.pad_token_id,
                                                 eos_token_id=tokenizer.eos_token_id,
                                                 decoder_start_token_id=tokenizer.pad_token_id)
    return (UMT5EncoderModel if umt5 else T5EncoderModel)(config)


def _finish(modules: dict[str, nn.Module], counts: dict[str, Any], what: str, dtype: torch.dtype,
            device: torch.device | str, seed: int) -> None:
    """Tie, materialise and check every module against its published count."""
    init = RandomInit(seed, device)
    for name, module in modules.items():
        if hasattr(module, "tie_weights"):
            module.tie_weights()
        init.materialise(module, dtype)
        if name == "transformer" and hasattr(module, "pos_embed") and hasattr(module.pos_embed, "pos_embed"):
            check_sd3_transformer(what, module, counts)
        else:
            check_count(f"{what} {name}", module, counts[name])


def check_sd3_transformer(what: str, module: nn.Module, counts: dict[str, Any]) -> int:
    """An SD 3 transformer's checkpoint elements: its parameters plus the positional table, a buffer in diffusers
    that the checkpoint stores (exact, or to the published precision in billions)."""
    elements = count_parameters(module) + module.pos_embed.pos_embed.numel()
    if "transformer_elements" in counts and elements != counts["transformer_elements"]:
        raise AssertionError(f"{what} transformer: {elements:,} checkpoint elements, the published architecture has "
                             f"{counts['transformer_elements']:,}")
    if "transformer_billions" in counts and abs(elements / 1e9 - counts["transformer_billions"]) > 0.05:
        raise AssertionError(f"{what} transformer: {elements / 1e9:.3f} B checkpoint elements, the published "
                             f"architecture has {counts['transformer_billions']} B")
    return elements


def flow_transformer(name: str, dtype: torch.dtype = torch.bfloat16, device: torch.device | str = "cpu",
                     seed: int = 0) -> tuple[nn.Module, dict[str, Any]]:
    """The transformer alone of the architecture ``name`` (``sd_3_5_medium``, ``sd_3_5_large``, ``flux_1_dev``,
    ``wan_2_1_t2v_1_3b``, ``wan_2_1_t2v_14b``), random weights, checked against the published count; and its
    config (for the benchmarks' real-shaped conditioning)."""
    import diffusers

    cfg = load_config(name)
    cls = {"sd": diffusers.SD3Transformer2DModel, "fl": diffusers.FluxTransformer2DModel,
           "wa": diffusers.WanTransformer3DModel}[name[:2]]
    with empty_parameters(buffers=torch.device(device).type == "meta"):
        transformer = cls(**cfg["transformer"])
    _finish({"transformer": transformer}, cfg["published_params"], name, dtype, device, seed)
    return transformer, cfg


def sd35_pipeline(variant: str = "medium", dtype: torch.dtype = torch.bfloat16, device: torch.device | str = "cpu",
                  seed: int = 0, t5: bool = True):
    """Stable Diffusion 3.5 Medium or Large (MMDiT, CLIP-L + OpenCLIP-bigG with projections, T5-XXL encoder 4.76 B,
    16-channel VAE, flow matching with shift 3), random weights; ``t5=False`` leaves the T5 encoder out."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from diffusers import StableDiffusion3Pipeline
    from tiny_models import clip_tokenizer, t5_tokenizer

    name = f"sd_3_5_{variant}"
    cfg = load_config(name)
    tok, tok2, tok3 = clip_tokenizer(), clip_tokenizer(), t5_tokenizer(model_max_length=512)
    with empty_parameters(buffers=torch.device(device).type == "meta"):
        modules = {"transformer": SD3Transformer2DModel(**cfg["transformer"]),
                   "text_encoder": _clip_text_encoder(cfg["text_encoder"], tok, with_projection=True),
                   "text_encoder_2": _clip_text_encoder(cfg["text_encoder_2"], tok2, with_projection=True),
                   "vae": AutoencoderKL(**cfg["vae"])}
        if t5:
            modules["text_encoder_3"] = _t5_encoder(cfg["text_encoder_3"], tok3)
    _finish(modules, cfg["published_params"], f"SD 3.5 {variant}", dtype, device, seed)
    scheduler = FlowMatchEulerDiscreteScheduler(**cfg["scheduler"])
    return StableDiffusion3Pipeline(scheduler=scheduler, tokenizer=tok, tokenizer_2=tok2,
                                    tokenizer_3=tok3 if t5 else None, text_encoder_3=modules.get("text_encoder_3"),
                                    **{k: v for k, v in modules.items() if k != "text_encoder_3"})


def flux_pipeline(dtype: torch.dtype = torch.bfloat16, device: torch.device | str = "cpu", seed: int = 0):
    """FLUX.1-dev (transformer 11.9 B with guidance embedding, CLIP-L pooled, T5-XXL encoder, 16-channel VAE, dynamic
    shifting), random weights."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from tiny_models import clip_tokenizer, t5_tokenizer

    cfg = load_config("flux_1_dev")
    tok, tok2 = clip_tokenizer(), t5_tokenizer(model_max_length=512)
    with empty_parameters(buffers=torch.device(device).type == "meta"):
        modules = {"transformer": FluxTransformer2DModel(**cfg["transformer"]),
                   "text_encoder": _clip_text_encoder(cfg["text_encoder"], tok, with_projection=False),
                   "text_encoder_2": _t5_encoder(cfg["text_encoder_2"], tok2),
                   "vae": AutoencoderKL(**cfg["vae"])}
    _finish(modules, cfg["published_params"], "FLUX.1-dev", dtype, device, seed)
    return FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(**cfg["scheduler"]), tokenizer=tok,
                        tokenizer_2=tok2, **modules)


def wan_pipeline(variant: str = "1_3b", dtype: torch.dtype = torch.bfloat16, device: torch.device | str = "cpu",
                 seed: int = 0):
    """Wan 2.1 T2V 1.3B or 14B (WanTransformer3DModel, UMT5-XXL encoder 5.68 B, Wan VAE, UniPC flow scheduler),
    random weights."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from tiny_models import t5_tokenizer

    name = f"wan_2_1_t2v_{variant}"
    cfg = load_config(name)
    tok = t5_tokenizer(model_max_length=512)
    with empty_parameters(buffers=torch.device(device).type == "meta"):
        modules = {"transformer": WanTransformer3DModel(**cfg["transformer"]),
                   "text_encoder": _t5_encoder(cfg["text_encoder"], tok, umt5=True),
                   "vae": AutoencoderKLWan(**cfg["vae"])}
    _finish(modules, cfg["published_params"], f"Wan 2.1 {variant}", dtype, device, seed)
    return WanPipeline(tokenizer=tok, scheduler=UniPCMultistepScheduler(**cfg["scheduler"]), **modules)


PIPELINES = {"sdxl": sdxl_pipeline, "sd21": sd21_pipeline}


# ---------------------------------------------------------------------------------------------- scorer networks
def open_clip_vit_h(dtype: torch.dtype, device: torch.device | str = "cpu", seed: int = 1):
    """open_clip ViT-H-14 (HPS v2's network, 986.11 M parameters) and open_clip's tokenizer for it."""
    import open_clip

    cfg = load_config("open_clip_vit_h_14")
    arch = {k: cfg[k] for k in ("embed_dim", "vision_cfg", "text_cfg")}
    bundled = open_clip.get_model_config(cfg["model"])  # what HPS v2's loader builds: it must be the published one
    if bundled != arch:
        raise AssertionError(f"open_clip's bundled {cfg['model']} config {bundled} differs from the published {arch}")
    with empty_parameters():
        model = open_clip.CLIP(**arch)
    RandomInit(seed, device).materialise(model, dtype)
    check_count("open_clip ViT-H-14", model, millions=cfg["published_params"]["total_millions"])
    return model, open_clip.get_tokenizer(cfg["model"])


def clip_model(name: str, dtype: torch.dtype, device: torch.device | str = "cpu", seed: int = 2):
    """A transformers ``CLIPModel`` of the architecture ``name`` (``clip_vit_h_14`` for PickScore,
    ``clip_vit_large_patch14`` for the aesthetic predictor and CLIP score) and its stand-in tokenizer."""
    from tiny_models import clip_tokenizer
    from transformers import CLIPConfig, CLIPModel

    cfg = load_config(name)
    tok = clip_tokenizer()
    text = {**cfg["text_config"], "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id}
    config = CLIPConfig(text_config=text, vision_config=cfg["vision_config"], projection_dim=cfg["projection_dim"])
    with empty_parameters():
        model = CLIPModel(config)
    RandomInit(seed, device).materialise(model, dtype)
    counts = cfg["published_params"]
    check_count(name, model, counts.get("total"), counts.get("total_millions"))
    return model, tok


def image_reward_model(dtype: torch.dtype, device: torch.device | str = "cpu", seed: int = 3):
    """ImageReward's BLIP ViT-L/16 + cross-attending BERT + reward MLP (the metric's own module classes), its
    med_config, and the stand-in BERT tokenizer with BLIP's two added tokens."""
    from metrics.heads import RewardMLP
    from metrics.image_reward import ImageRewardModel, blip_text_config
    from tiny_models import bert_tokenizer
    from tiny_scorers import FULL_IR, image_reward_reference_shapes
    from transformers import BlipTextModel, BlipVisionConfig, BlipVisionModel

    cfg = load_config("image_reward")
    tokenizer = bert_tokenizer()
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    vision_cfg = BlipVisionConfig(**cfg["vision"], hidden_act="gelu", attention_dropout=0.0)
    with empty_parameters():
        vision = BlipVisionModel(vision_cfg)
        text = BlipTextModel(blip_text_config(cfg["med_config"], vision_cfg.hidden_size, tokenizer),
                             add_pooling_layer=False)
        model = ImageRewardModel(vision, text, RewardMLP(cfg["head_input"]))
    RandomInit(seed, device).materialise(model, dtype)
    model.head.float()  # as the metric runs it
    # the reference checkpoint's tensors, less the contrastive projections and the position-id buffer it also holds
    reference = image_reward_reference_shapes(**FULL_IR)
    expected = sum(math.prod(shape) for key, shape in reference.items()
                   if not key.startswith(("blip.vision_proj", "blip.text_proj")) and not key.endswith("position_ids"))
    check_count("ImageReward", model, expected)
    return model, tokenizer, cfg["med_config"]


def release_memory() -> None:
    """Collect dropped models and hand cached CUDA blocks back (call after ``del`` of the last reference)."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
